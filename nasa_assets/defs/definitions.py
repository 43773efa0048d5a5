import os
from collections.abc import Mapping

import dagster as dg

from nasa_assets.defs.datasets import dataset_definitions
from nasa_assets.defs.resources import S3DatasetStorage
from nasa_assets.defs.sensors import interval_seconds
from nasa_assets.defs.settings import (
    datasets_from_env,
    repair_policy_from_env,
    resources_from_env,
    total_hits_drop_share,
)


def definitions_from_env(env: Mapping[str, str]) -> dg.Definitions:
    resources = resources_from_env(env)
    sensor_settings = dict(interval=interval_seconds(env), drop_share=total_hits_drop_share(env),
                           policy=repair_policy_from_env(env))
    datasets = [dataset_definitions(spec, **sensor_settings) for spec in datasets_from_env(env)]
    assets = [a for d in datasets for a in d.assets]
    if isinstance(resources["storage"], S3DatasetStorage):
        # Kinds are fixed when an asset is defined; where its tables and images go is known here.
        assets = dg.map_asset_specs(lambda spec: spec.merge_attributes(kinds={"s3"}), assets)
    # Every run executes its steps in one process, the run worker: a page's steps are short and
    # I/O-bound, so a subprocess per step (the multiprocess default) would cost more in start-up
    # and imports than the steps themselves. Downloads are concurrent inside moon_images; pools
    # and step retries work the same in process.
    return dg.Definitions(
        executor=dg.in_process_executor,
        assets=assets,
        jobs=[j for d in datasets for j in d.jobs],
        sensors=[s for d in datasets for s in d.sensors],
        resources=resources,
    )


defs = definitions_from_env(os.environ)
