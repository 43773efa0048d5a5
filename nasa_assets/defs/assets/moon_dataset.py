"""moon_dataset: every stored image of the pages materialized so far, in one table."""

import dagster as dg
import pandas as pd
from pydantic import Field

from nasa_assets.dataset.consolidate import (
    add_duplicates,
    build_manifest,
    known_phashes,
    published_table,
)
from nasa_assets.dataset.datasets import DatasetSpec, parse_split_fractions
from nasa_assets.dataset.keys import CARD_KEY
from nasa_assets.dataset.markdown import cell, table
from nasa_assets.dataset.pages import MAX_PAGES, page_ranges
from nasa_assets.dataset.summary import Summary, human_bytes, summarize
from nasa_assets.defs.assets.moon_dataset_checks import (
    NO_GROUP_ACROSS_SPLITS,
    SHA256_SAMPLE,
    SHRINK_WITHIN_LIMIT,
    UNIQUE_NASA_ID,
    URIS_EXIST,
    check_groups_within_splits,
    check_sha256_sample,
    check_shrink,
    check_unique,
    check_uris,
)
from nasa_assets.defs.assets.pages import MOON, asset_options, key_of
from nasa_assets.defs.io_manager import dataset_store, table_path
from nasa_assets.defs.resources import (
    CurationSettings,
    DatasetSettings,
    DatasetStorage,
    NasaApiResource,
    resolved,
)
from nasa_assets.storage import ObjectStore

PREVIEW_IMAGES = 6

# Why not eager(): it waits for *all* upstream partitions (100 pages) to exist, so it would
# never fire while some pages are unmaterialized. Why not eager() minus any_deps_missing (the
# docs' "eager_allow_missing"): in Dagster 1.13 AND/OR drop the timestamps SinceCondition uses to
# order a trigger and a reset seen on the same tick, so a page that lands between the tick that
# requested a rebuild and the next tick is forgotten (verified in test_dataset). Here the trigger
# (some page of moon_images / sampled_manifest updated) and the reset (a rebuild was requested)
# both carry their timestamps, so a later page update survives and causes one more rebuild.
# Nothing is requested while any page or the dataset itself is being materialized (queued runs
# included), so a backfill or a burst of page runs gives one rebuild, not one per page.
AUTOMATION = (
    dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
    .since(dg.AutomationCondition.newly_requested())
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("any_page_updated_since_last_request")


class MoonDatasetConfig(dg.Config):
    sha256_sample_size: int = Field(
        20, ge=0, description="How many stored images the sha256_sample check re-reads and hashes."
    )
    accept_shrink: bool = Field(
        False, description="Publish the table even when it has fewer rows than the published one "
        "by more than MAX_DATASET_SHRINK: a person's acceptance of a real shrink, for this run only.",
    )


def _count_table(counts: dict[str, int], name: str) -> dg.MetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({name: k, "images": v}) for k, v in counts.items()],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, "string"), dg.TableColumn("images", "int")]),
    )


def preview_grid(manifest: pd.DataFrame, limit: int = PREVIEW_IMAGES, per_row: int = 3) -> str:
    """A Markdown grid of the first few images: a link to each and a caption."""
    if manifest.empty:
        return "_no images yet_"
    cells = [f"[**{cell(row.nasa_id)}**]({row.image_uri})<br>{cell(str(row.title or '')[:60])}<br>"
             f"{row.width}x{row.height} {row.format}, {row.split}"
             for row in manifest.head(limit).itertuples()]
    cells += [""] * (-len(cells) % per_row)
    rows = [cells[i:i + per_row] for i in range(0, len(cells), per_row)]
    return "\n".join(table([""] * per_row, rows))


def _duplicate_metadata(dups: dict) -> dict:
    counts = dups["counts"]
    return {
        "exact_copies": counts["exact_copies"],
        "near_copies": counts["near_copies"],
        "duplicate_groups": counts["duplicate_groups"],
        "largest_duplicate_group": counts["largest_group"],
        "phash_computed": dups["hashed"],
        "phash_reused": dups["reused"],
        "phash_missing": len(dups["unhashable"]),
        "phash_missing_examples": dg.MetadataValue.json(dups["unhashable"][:10]),
        "hash_seconds": dups["hash_seconds"],
        "group_seconds": dups["group_seconds"],
    }


def _metadata(summary: Summary, manifest: pd.DataFrame, stats: dict, included: list[str],
              store: ObjectStore, dups: dict, table: str) -> dict:
    return {
        **_duplicate_metadata(dups),
        "row_count": summary.images,
        "per_split": dg.MetadataValue.json(summary.per_split),
        "per_center": _count_table(summary.per_center, "center"),
        "per_decade": _count_table(summary.per_decade, "decade"),
        "date_range": f"{summary.first_date} to {summary.last_date}" if summary.first_date else "none",
        "total_bytes": summary.total_bytes,
        "total_size": human_bytes(summary.total_bytes),
        "pages_included": page_ranges(included),
        "pages_included_count": len(included),
        "pages_missing": MAX_PAGES - len(included),
        "duplicates_dropped": stats["duplicates"],
        # Rows of an earlier page that described a file a later page replaced under the same key.
        "stale_rows_skipped": stats["stale_rows"],
        "images_not_stored": stats["not_stored"],
        "rows_without_metadata": stats["without_metadata"],
        "preview": dg.MetadataValue.md(preview_grid(manifest)),
        "dataset_uri": dg.MetadataValue.path(store.uri(table)),
        "card_uri": dg.MetadataValue.path(store.uri(CARD_KEY)),
    }


def moon_dataset_asset(spec: DatasetSpec = MOON) -> dg.AssetsDefinition:
    """moon_dataset of one dataset: its consolidated table and the checks that gate it."""

    def check(name: str, description: str, blocking: bool = False) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(name, asset=key_of(spec, "moon_dataset"), blocking=blocking,
                                 description=description)

    @dg.asset(
        **asset_options(spec),
        kinds={"python", "parquet"},
        ins={
            "moon_images": dg.AssetIn(key=key_of(spec, "moon_images"),
                                      metadata={"allow_missing_partitions": True}),
            "sampled_manifest": dg.AssetIn(key=key_of(spec, "sampled_manifest"),
                                           metadata={"allow_missing_partitions": True}),
        },
        automation_condition=AUTOMATION,
        # A refused shrink publishes nothing: no Output, so the IO manager keeps the old table.
        output_required=False,
        check_specs=[
            check(SHRINK_WITHIN_LIMIT, "The table has at most MAX_DATASET_SHRINK fewer rows than the "
                  "published one; otherwise the published table and card are kept.", blocking=True),
            check(NO_GROUP_ACROSS_SPLITS, "Every duplicate group (exact or near copies of one picture) "
                  "lies in one split; otherwise the published table and card are kept.", blocking=True),
            check(UNIQUE_NASA_ID, "nasa_id is present and unique."),
            check(URIS_EXIST, "Every image_key exists in storage with its recorded size."),
            check(SHA256_SAMPLE, "The sha256 of a seeded random sample of images matches."),
        ],
    )
    def moon_dataset(
        context: dg.AssetExecutionContext,
        config: MoonDatasetConfig,
        moon_images,
        sampled_manifest,
        nasa: NasaApiResource,
        settings: DatasetSettings,
        storage: DatasetStorage,
        curation: CurationSettings,
    ):
        """All stored images of the pages materialized so far, one row per nasa_id, with NASA's
        metadata, a caption, a perceptual hash and a duplicate group, and a train/validation/test
        split drawn per duplicate group; moon_dataset_card describes it in README.md.

        Pages not materialized yet are skipped and counted (pages_missing). A table that would shrink
        by more than MAX_DATASET_SHRINK is not published unless the run config says accept_shrink."""
        ds = resolved(spec, nasa, settings)
        yield from consolidate(context, config, moon_images, sampled_manifest, settings, storage,
                               curation, ds)

    return moon_dataset


def consolidate(context: dg.AssetExecutionContext, config: MoonDatasetConfig, moon_images,
                sampled_manifest, settings: DatasetSettings, storage: DatasetStorage,
                curation: CurationSettings, ds: DatasetSpec):
    store = dataset_store(storage, context.asset_key)
    fractions = parse_split_fractions(ds.split_fractions)
    images, manifests = moon_images, sampled_manifest  # {page: table} of the pages materialized
    sizes = store.sizes("images/")  # one listing, not a request per image
    manifest, stats = build_manifest(images, manifests, fractions, sizes)
    table = table_path(context.asset_key)
    published = published_table(store, table)
    manifest, dups = add_duplicates(manifest, store, fractions, curation.duplicate_max_distance,
                                    known_phashes(published), workers=settings.download_concurrency)
    if dups["unhashable"]:
        context.log.warning(f"{len(dups['unhashable'])} images have no perceptual hash (each is "
                            f"grouped by its sha256 only): {dups['unhashable'][:3]}")
    included = sorted(images)
    summary = summarize(manifest, list(fractions))
    context.log.info(
        f"{summary.images} images from {len(included)} pages ({page_ranges(included)}); {stats}"
    )
    previous = None if published is None else len(published)
    shrink = check_shrink(previous, len(manifest), settings.max_dataset_shrink, config.accept_shrink)
    within_splits = check_groups_within_splits(manifest)
    checks = [
        shrink,
        within_splits,
        check_unique(manifest),
        check_uris(manifest, sizes),
        check_sha256_sample(manifest, store, config.sha256_sample_size),
    ]
    refused = [c for c in (shrink, within_splits) if not c.passed]
    if refused:
        for check in refused:
            context.log.error(check.description)
        yield from checks  # a blocking check fails the run; consumers keep the published table
        return
    yield dg.Output(manifest, metadata=_metadata(summary, manifest, stats, included, store, dups, table))
    yield from checks


moon_dataset = moon_dataset_asset()
