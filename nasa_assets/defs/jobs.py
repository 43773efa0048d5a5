import dagster as dg

moon_images_job = dg.define_asset_job(
    "moon_images_job",
    selection=dg.AssetSelection.assets("search_results", "sampled_manifest", "moon_images"),
    description="Search one page (or a range), sample it, and store its images and metadata.",
)
