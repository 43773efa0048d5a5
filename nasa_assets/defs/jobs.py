import dagster as dg

from nasa_assets.dataset.datasets import DatasetSpec
from nasa_assets.defs.assets.pages import MOON, key_of


def images_job(spec: DatasetSpec = MOON):
    """`<name>_images_job`: a dataset's page steps (moon_images_job for moon)."""
    return dg.define_asset_job(
        spec.images_job,
        selection=dg.AssetSelection.assets(
            *(key_of(spec, name) for name in ("search_results", "sampled_manifest", "moon_images"))
        ),
        description="Search one page (or a range), sample it, and store its images and metadata.",
    )


def dataset_job(spec: DatasetSpec = MOON):
    """`<name>_dataset_job`: a dataset's table, card and export (moon_dataset_job for moon)."""
    # The WebDataset export follows the table; it writes nothing when the table did not change.
    return dg.define_asset_job(
        spec.dataset_job,
        selection=dg.AssetSelection.assets(
            *(key_of(spec, name) for name in ("moon_dataset", "moon_dataset_card", "moon_webdataset"))
        ),
        description=f"Rebuild {key_of(spec, 'moon_dataset').to_user_string()} from every page stored so "
        "far, its card and its WebDataset export.",
    )


moon_images_job = images_job()
moon_dataset_job = dataset_job()
