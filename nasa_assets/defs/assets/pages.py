"""What the page-partitioned assets share: their options and the shape of their Output."""

import warnings

import dagster as dg
import pandas as pd

from nasa_assets.dataset.datasets import DatasetSpec
from nasa_assets.defs.partitions import search_pages

# backfill_policy is a beta parameter in Dagster 1.13. Single-run page ranges are deliberate
# (a 100-page backfill is one process), so its notice is silenced here, by its exact text.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

# The default dataset: no key prefix, the storage root itself, today's names.
MOON = DatasetSpec()


def asset_options(spec: DatasetSpec) -> dict:
    """Where a dataset's asset goes: its key prefix and its group."""
    return dict(key_prefix=spec.key_prefix, group_name=spec.group)


def page_asset_options(spec: DatasetSpec) -> dict:
    """The options of a dataset's page-partitioned assets. One run may cover a whole page range
    (a 100-page backfill is one process, not 100); the IO manager (defs/io_manager.py) then hands
    over and stores {page: table}."""
    return dict(**asset_options(spec), partitions_def=search_pages,
                backfill_policy=dg.BackfillPolicy.single_run())


def key_of(spec: DatasetSpec, name: str) -> dg.AssetKey:
    """The key of the asset `name` of a dataset."""
    return dg.AssetKey([*spec.key_prefix, name])


def page_output(
    context: dg.AssetExecutionContext, frames: dict[str, pd.DataFrame], per_page: dict[str, dict],
    metadata: dict,
) -> dg.Output:
    """{page: table} for the IO manager, with each page's own figures on its own materialization.
    A range run records one materialization per page and copies the Output's `metadata` onto
    every one of them, so `metadata` holds only what is true of the whole step."""
    for key, figures in per_page.items():
        context.add_asset_metadata(figures, partition_key=key)
    return dg.Output(frames, metadata=metadata)
