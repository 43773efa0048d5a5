import os

import dagster as dg

from nasa_assets.assets.moon_dataset import moon_dataset
from nasa_assets.assets.moon_images import moon_images
from nasa_assets.assets.sampled_manifest import sampled_manifest
from nasa_assets.assets.search_results import search_results
from nasa_assets.jobs import moon_images_job
from nasa_assets.sensors import nasa_search_refresh
from nasa_assets.settings import resources_from_env

defs = dg.Definitions(
    assets=[search_results, sampled_manifest, moon_images, moon_dataset],
    jobs=[moon_images_job],
    sensors=[nasa_search_refresh],
    resources=resources_from_env(os.environ),
)
