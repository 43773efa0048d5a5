import os
from collections.abc import Mapping

import dagster as dg

from nasa_assets.defs.assets.moon_dataset import moon_dataset
from nasa_assets.defs.assets.moon_dataset_card import moon_dataset_card
from nasa_assets.defs.assets.moon_images import moon_images
from nasa_assets.defs.assets.moon_webdataset import moon_webdataset
from nasa_assets.defs.assets.sampled_manifest import sampled_manifest
from nasa_assets.defs.assets.search_results import search_results
from nasa_assets.defs.jobs import moon_dataset_job, moon_images_job
from nasa_assets.defs.resources import S3DatasetStorage
from nasa_assets.defs.sensors import nasa_search_refresh
from nasa_assets.defs.settings import resources_from_env


def definitions_from_env(env: Mapping[str, str]) -> dg.Definitions:
    resources = resources_from_env(env)
    assets = [search_results, sampled_manifest, moon_images, moon_dataset, moon_dataset_card,
              moon_webdataset]
    if isinstance(resources["storage"], S3DatasetStorage):
        # Kinds are fixed when an asset is defined; where its tables and images go is known here.
        assets = dg.map_asset_specs(lambda spec: spec.merge_attributes(kinds={"s3"}), assets)
    # Every run executes its steps in one process, the run worker: a page's steps are short and
    # I/O-bound, so a subprocess per step (the multiprocess default) would cost more in start-up
    # and imports than the steps themselves. Downloads are concurrent inside moon_images; pools
    # and step retries work the same in process.
    return dg.Definitions(
        executor=dg.in_process_executor,
        assets=assets, jobs=[moon_images_job, moon_dataset_job], sensors=[nasa_search_refresh],
        resources=resources,
    )


defs = definitions_from_env(os.environ)
