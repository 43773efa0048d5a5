import os

import dagster as dg

from nasa_assets.assets.moon_dataset import moon_dataset
from nasa_assets.assets.moon_images import moon_images
from nasa_assets.assets.sampled_manifest import sampled_manifest
from nasa_assets.assets.search_results import search_results
from nasa_assets.jobs import moon_images_job
from nasa_assets.sensors import nasa_search_refresh
from nasa_assets.settings import resources_from_env

# Every run executes its steps in one process, the run worker: a page's three steps are short and
# I/O-bound, so a subprocess per step (the multiprocess default) would cost more in start-up and
# imports than the steps themselves. Downloads are concurrent inside moon_images; pools and step
# retries work the same in process.
defs = dg.Definitions(
    executor=dg.in_process_executor,
    assets=[search_results, sampled_manifest, moon_images, moon_dataset],
    jobs=[moon_images_job],
    sensors=[nasa_search_refresh],
    resources=resources_from_env(os.environ),
)
