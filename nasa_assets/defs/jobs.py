import dagster as dg

moon_images_job = dg.define_asset_job(
    "moon_images_job",
    selection=dg.AssetSelection.assets("search_results", "sampled_manifest", "moon_images"),
    description="Search one page (or a range), sample it, and store its images and metadata.",
)

moon_dataset_job = dg.define_asset_job(
    "moon_dataset_job",
    selection=dg.AssetSelection.assets("moon_dataset", "moon_dataset_card"),
    description="Rebuild moon_dataset from every page stored so far, and its card.",
)
