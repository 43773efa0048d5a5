import dagster as dg

moon_images_job = dg.define_asset_job(
    "moon_images_job",
    selection=dg.AssetSelection.assets("search_results", "sampled_manifest", "moon_images"),
    description="Search one page (or a range), sample it, and store its images and metadata.",
)

# The WebDataset export follows the table; it writes nothing when the table did not change.
moon_dataset_job = dg.define_asset_job(
    "moon_dataset_job",
    selection=dg.AssetSelection.assets("moon_dataset", "moon_dataset_card", "moon_webdataset"),
    description="Rebuild moon_dataset from every page stored so far, its card and its WebDataset "
    "export.",
)
