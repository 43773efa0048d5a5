"""One set of definitions per dataset, all from one factory: moon with today's names, any other
dataset under its own key prefix, group, jobs and sensor (nasa_assets/dataset/datasets.py)."""

import dagster as dg

from nasa_assets.dataset.datasets import DatasetSpec
from nasa_assets.defs.assets.moon_dataset import moon_dataset_asset
from nasa_assets.defs.assets.moon_dataset_card import moon_dataset_card_asset
from nasa_assets.defs.assets.moon_images import moon_images_asset
from nasa_assets.defs.assets.moon_webdataset import moon_webdataset_asset
from nasa_assets.defs.assets.sampled_manifest import sampled_manifest_asset
from nasa_assets.defs.assets.search_results import search_results_asset
from nasa_assets.defs.jobs import dataset_job, images_job
from nasa_assets.defs.sensors import refresh_sensor

ASSET_FACTORIES = (search_results_asset, sampled_manifest_asset, moon_images_asset,
                   moon_dataset_asset, moon_dataset_card_asset, moon_webdataset_asset)


def dataset_definitions(spec: DatasetSpec, **sensor_settings) -> dg.Definitions:
    """A dataset's assets, its two jobs and its refresh sensor; `sensor_settings` are
    refresh_sensor's interval, drop_share and policy. Resources are the code location's, shared
    by every dataset: one `nasa` (and so one search rate budget per process), one storage root."""
    page_job = images_job(spec)
    return dg.Definitions(
        assets=[factory(spec) for factory in ASSET_FACTORIES],
        jobs=[page_job, dataset_job(spec)],
        sensors=[refresh_sensor(**sensor_settings, spec=spec, job=page_job)],
    )
