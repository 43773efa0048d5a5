"""Helpers shared by the page-partitioned assets."""

import warnings

import dagster as dg
import pandas as pd

from nasa_assets.defs.partitions import search_pages

# backfill_policy is a beta parameter in Dagster 1.13. Single-run page ranges are deliberate
# (a 100-page backfill is one process), so its notice is silenced here, by its exact text.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

# One run may cover a whole page range (a 100-page backfill is one process, not 100).
PAGE_ASSET_OPTIONS = dict(
    partitions_def=search_pages,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="moon_dataset",
)


def by_page(context: dg.AssetExecutionContext, loaded) -> dict[str, pd.DataFrame]:
    """Upstream input as {page key: table}; Dagster passes a bare table for a single page."""
    if isinstance(loaded, dict):
        return dict(sorted(loaded.items()))
    return {context.partition_keys[0]: loaded}


def single_or_dict(frames: dict[str, pd.DataFrame]):
    return next(iter(frames.values())) if len(frames) == 1 else frames


def record_page_metadata(context: dg.AssetExecutionContext, per_page: dict[str, dict]) -> None:
    """Each page's own figures on its own materialization. A range run records one
    materialization per page, and the step's Output metadata is copied onto every one of them,
    so that metadata keeps only what holds for the whole step."""
    for key, metadata in per_page.items():
        context.add_asset_metadata(metadata, partition_key=key)
