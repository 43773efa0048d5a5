"""moon_dataset: every stored image of the pages materialized so far, in one table, with a card."""

import random
import time
from collections.abc import Mapping

import dagster as dg
import pandas as pd
from pydantic import Field

from nasa_assets import tables
from nasa_assets.captions import caption
from nasa_assets.card import CardFacts, Summary, human_bytes, page_ranges, render_card, summarize
from nasa_assets.dataset import CARD_KEY, MANIFEST_KEY
from nasa_assets.duplicates import (
    assign_splits,
    duplicate_counts,
    example_pairs,
    group_duplicates,
    groups_across_splits,
    phashes_of_stored,
)
from nasa_assets.imaging import sha256_of
from nasa_assets.partitions import MAX_PAGES, page_number
from nasa_assets.resources import CurationSettings, DatasetSettings, DatasetStorage, NasaApiResource
from nasa_assets.sampling import split_for
from nasa_assets.storage import ObjectStore

UNIQUE_NASA_ID = "unique_nasa_id"
URIS_EXIST = "uris_exist"
SHA256_SAMPLE = "sha256_sample"
SHRINK_WITHIN_LIMIT = "shrink_within_limit"
NO_GROUP_ACROSS_SPLITS = "no_duplicate_group_across_splits"
EXAMPLE_PAIRS = 3
STORED = ("stored", "already_stored")
PREVIEW_IMAGES = 6
METADATA_COLUMNS = ("title", "description", "date_created", "center", "keywords", "photographer",
                    "location")
IMAGE_COLUMNS = ("image_key", "image_uri", "rendition", "source_url", "bytes", "sha256", "width",
                 "height", "format")

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


def pages_of(loaded, keys: list[str]) -> dict[str, pd.DataFrame]:
    """Upstream pages as {page key: table}, in page order. The IO manager passes a dict of the
    pages it found, or a bare table when only one page was asked for (`keys` has it)."""
    if loaded is None:
        return {}
    if isinstance(loaded, dict):
        return {k: v for k, v in sorted(loaded.items()) if v is not None}
    return {keys[0]: loaded}


def build_manifest(
    images: dict[str, pd.DataFrame],
    manifests: dict[str, pd.DataFrame],
    fractions: dict[str, float],
    stored_sizes: Mapping[str, int] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per distinct stored nasa_id, in order of first occurrence by page; (table, counts).

    An id stored from several pages (items move between pages) takes the first page's row whose
    size matches the object in storage (`stored_sizes`, from one listing): an older page's row can
    describe a file a later page replaced (another rendition). Without a match, the first row.
    Metadata comes from the chosen page's manifest row, or the first page listing the id when that
    page's manifest was rewritten since its images were stored."""
    by_page = {page: {r["nasa_id"]: r for r in tables.records(m)} for page, m in manifests.items()}
    anywhere: dict[str, dict] = {}
    for page in sorted(by_page):
        for nasa_id, row in by_page[page].items():
            anywhere.setdefault(nasa_id, row)
    candidates: dict[str, list[tuple[str, dict]]] = {}
    stats = {"image_rows": 0, "not_stored": 0, "duplicates": 0, "stale_rows": 0, "without_metadata": 0}
    for page, frame in sorted(images.items()):
        for image in tables.records(frame):
            stats["image_rows"] += 1
            if image["status"] not in STORED:
                stats["not_stored"] += 1
                continue
            candidates.setdefault(image["nasa_id"], []).append((page, image))
    rows = []
    for nasa_id, found in candidates.items():
        stats["duplicates"] += len(found) - 1
        page, image = found[0]
        if stored_sizes is not None and len(found) > 1:
            matching = [c for c in found if stored_sizes.get(c[1]["image_key"]) == c[1]["bytes"]]
            if matching and matching[0] is not found[0]:
                page, image = matching[0]
                stats["stale_rows"] += 1
        meta = by_page.get(page, {}).get(nasa_id) or anywhere.get(nasa_id)
        if meta is None:
            stats["without_metadata"] += 1
            meta = {}
        rows.append({
            "nasa_id": nasa_id,
            "split": split_for(nasa_id, fractions),
            "page": page_number(page),
            **{c: meta.get(c) for c in METADATA_COLUMNS},
            **{c: image[c] for c in IMAGE_COLUMNS},
        })
    return tables.frame("moon_dataset", rows), stats


def published_table(store: ObjectStore) -> pd.DataFrame | None:
    """The moon_dataset.parquet consumers are served now; None when there is none (or it cannot
    be read, so there is nothing to protect)."""
    try:
        return store.read_parquet(MANIFEST_KEY)
    except (FileNotFoundError, ValueError):
        return None


def published_row_count(store: ObjectStore) -> int | None:
    published = published_table(store)
    return None if published is None else len(published)


def known_phashes(published: pd.DataFrame | None) -> dict[str, str]:
    """sha256 -> phash from the published table. The same bytes have the same hash, so a rebuild
    decodes only the images it has not hashed before."""
    if published is None or not {"sha256", "phash"} <= set(published.columns):
        return {}
    known = published.dropna(subset=["sha256", "phash"])
    return dict(zip(known["sha256"], known["phash"]))


def add_duplicates(
    manifest: pd.DataFrame,
    store: ObjectStore,
    fractions: dict[str, float],
    threshold: int,
    known: Mapping[str, str],
    workers: int = 1,
) -> tuple[pd.DataFrame, dict]:
    """The table with caption, phash, duplicate_group, and split drawn per group; (table, stats).

    Only images whose sha256 is not in `known` are read and hashed, once per distinct file."""
    rows = tables.records(manifest)
    started = time.perf_counter()

    def file_of(row: dict) -> str:
        return row["sha256"] or row["nasa_id"]

    todo: dict[str, dict] = {}
    for row in rows:
        if row["sha256"] not in known:
            todo.setdefault(file_of(row), row)
    hashes, reasons = phashes_of_stored(store, todo.values(), workers=workers)
    by_file = {**known, **{k: hashes[r["nasa_id"]] for k, r in todo.items()}}
    why = {k: reasons[r["nasa_id"]] for k, r in todo.items() if r["nasa_id"] in reasons}
    hashed = time.perf_counter()
    for row in rows:
        row["phash"] = by_file.get(file_of(row))
        row["caption"] = caption(row["title"], row["description"], row["keywords"])
    groups = group_duplicates(rows, threshold)
    splits = assign_splits(groups, fractions)
    for row in rows:
        row["duplicate_group"], row["split"] = groups[row["nasa_id"]], splits[row["nasa_id"]]
    pairs = example_pairs(rows, threshold, EXAMPLE_PAIRS)
    keys = {row["nasa_id"]: row["image_key"] for row in rows}
    for pair in (*pairs["exact"], *pairs["near"]):
        pair["a_key"], pair["b_key"] = keys[pair["a"]], keys[pair["b"]]
    stats = {
        "counts": duplicate_counts(rows, groups),
        "examples": pairs,
        "hashed": len(todo),
        "reused": sum(1 for r in rows if r["sha256"] in known),
        "unhashable": [{"nasa_id": r["nasa_id"], "reason": why[file_of(r)]}
                       for r in rows if file_of(r) in why],
        "hash_seconds": round(hashed - started, 3),
        "group_seconds": round(time.perf_counter() - hashed, 3),
    }
    return tables.frame("moon_dataset", rows), stats


def shrink_problem(previous: int | None, new: int, max_shrink: float) -> str | None:
    """Why a table of `new` rows may not replace one of `previous` rows; None when it may."""
    if not previous or previous - new <= previous * max_shrink:
        return None
    return (f"moon_dataset would shrink from {previous} to {new} rows "
            f"({(previous - new) / previous:.0%} fewer; MAX_DATASET_SHRINK={max_shrink:g})")


def check_shrink(
    previous: int | None, new: int, max_shrink: float, accepted: bool
) -> dg.AssetCheckResult:
    problem = shrink_problem(previous, new, max_shrink)
    if problem and not accepted:
        description = (f"{problem}: the published table and card were kept. If the shrink is real, "
                       "run moon_dataset once with the config accept_shrink: true.")
    elif problem:
        description = f"{problem}: accepted by the run config (accept_shrink: true)."
    else:
        description = None
    return dg.AssetCheckResult(
        check_name=SHRINK_WITHIN_LIMIT,
        passed=problem is None or accepted,
        description=description,
        metadata={"previous_rows": previous if previous is not None else "none published",
                  "new_rows": new, "max_shrink": max_shrink,
                  "accepted_shrink": bool(problem and accepted),
                  "problems": [problem] if problem and not accepted else []},
    )


def check_groups_within_splits(manifest: pd.DataFrame) -> dg.AssetCheckResult:
    crossing = groups_across_splits(tables.records(manifest[["duplicate_group", "split"]]))
    return dg.AssetCheckResult(
        check_name=NO_GROUP_ACROSS_SPLITS,
        passed=not crossing,
        description=(f"{len(crossing)} duplicate groups have members in more than one split: the "
                     "published table and card were kept." if crossing else None),
        metadata={"groups": int(manifest["duplicate_group"].nunique()),
                  "groups_across_splits": len(crossing),
                  "examples": [{"duplicate_group": g, "splits": s}
                               for g, s in list(crossing.items())[:10]]},
    )


def check_unique(manifest: pd.DataFrame) -> dg.AssetCheckResult:
    duplicated = manifest.loc[manifest["nasa_id"].duplicated(keep=False), "nasa_id"]
    missing = int(manifest["nasa_id"].isna().sum())
    return dg.AssetCheckResult(
        check_name=UNIQUE_NASA_ID,
        passed=duplicated.empty and not missing,
        metadata={"duplicated": sorted(set(duplicated.dropna()))[:10], "null_ids": missing},
    )


def check_uris(manifest: pd.DataFrame, sizes: dict[str, int]) -> dg.AssetCheckResult:
    missing, wrong = [], []
    for row in manifest[["image_key", "bytes"]].itertuples():
        size = sizes.get(row.image_key)
        if size is None:
            missing.append(row.image_key)
        elif size != row.bytes:
            wrong.append({"image_key": row.image_key, "recorded": int(row.bytes), "stored": size})
    return dg.AssetCheckResult(
        check_name=URIS_EXIST,
        passed=not missing and not wrong,
        metadata={
            "checked": len(manifest),
            "missing": len(missing),
            "missing_examples": missing[:10],
            "wrong_size": len(wrong),
            "wrong_size_examples": wrong[:10],
        },
    )


def check_sha256_sample(manifest: pd.DataFrame, store: ObjectStore, size: int) -> dg.AssetCheckResult:
    """Re-hash up to `size` images, the same sample for the same table (seeded)."""
    rows = list(manifest[["image_key", "sha256"]].itertuples())
    sample = random.Random(0).sample(rows, min(size, len(rows)))
    bad = []
    for row in sample:
        try:
            if sha256_of(store.iter_chunks(row.image_key)) != row.sha256:
                bad.append({"image_key": row.image_key, "problem": "sha256 differs"})
        except FileNotFoundError:
            bad.append({"image_key": row.image_key, "problem": "missing"})
    return dg.AssetCheckResult(
        check_name=SHA256_SAMPLE,
        passed=not bad,
        metadata={"sampled": len(sample), "mismatched": len(bad), "examples": bad[:10]},
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
    cells = []
    for row in manifest.head(limit).itertuples():
        title = str(row.title or "").replace("|", "/").replace("\n", " ")[:60]
        cells.append(f"[**{row.nasa_id}**]({row.image_uri})<br>{title}<br>"
                     f"{row.width}x{row.height} {row.format}, {row.split}")
    cells += [""] * (-len(cells) % per_row)
    lines = ["| " + " | ".join([" "] * per_row) + " |", "|" + "---|" * per_row]
    for i in range(0, len(cells), per_row):
        lines.append("| " + " | ".join(cells[i:i + per_row]) + " |")
    return "\n".join(lines)


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
              store: ObjectStore, dups: dict) -> dict:
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
        "dataset_uri": dg.MetadataValue.path(store.uri(MANIFEST_KEY)),
        "card_uri": dg.MetadataValue.path(store.uri(CARD_KEY)),
    }


@dg.asset(
    group_name="moon_dataset",
    kinds={"python", "parquet"},
    ins={
        "moon_images": dg.AssetIn(metadata={"allow_missing_partitions": True}),
        "sampled_manifest": dg.AssetIn(metadata={"allow_missing_partitions": True}),
    },
    automation_condition=AUTOMATION,
    # A refused shrink publishes nothing: no Output, so the IO manager keeps the old table.
    output_required=False,
    check_specs=[
        dg.AssetCheckSpec(SHRINK_WITHIN_LIMIT, asset="moon_dataset", blocking=True,
                          description="The table has at most MAX_DATASET_SHRINK fewer rows than the "
                          "published one; otherwise the published table and card are kept."),
        dg.AssetCheckSpec(NO_GROUP_ACROSS_SPLITS, asset="moon_dataset", blocking=True,
                          description="Every duplicate group (exact or near copies of one picture) "
                          "lies in one split; otherwise the published table and card are kept."),
        dg.AssetCheckSpec(UNIQUE_NASA_ID, asset="moon_dataset",
                          description="nasa_id is present and unique."),
        dg.AssetCheckSpec(URIS_EXIST, asset="moon_dataset",
                          description="Every image_key exists in storage with its recorded size."),
        dg.AssetCheckSpec(SHA256_SAMPLE, asset="moon_dataset",
                          description="The sha256 of a seeded random sample of images matches."),
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
    split drawn per duplicate group; the dataset card is written next to it.

    Pages not materialized yet are skipped and counted (pages_missing). A table that would shrink
    by more than MAX_DATASET_SHRINK is not published unless the run config says accept_shrink."""
    store = storage.store()
    fractions = settings.splits()
    images = pages_of(moon_images, context.asset_partition_keys_for_input("moon_images"))
    manifests = pages_of(sampled_manifest, context.asset_partition_keys_for_input("sampled_manifest"))
    sizes = store.sizes("images/")  # one listing, not a request per image
    manifest, stats = build_manifest(images, manifests, fractions, sizes)
    published = published_table(store)
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
    yield dg.Output(manifest, metadata=_metadata(summary, manifest, stats, included, store, dups))
    # The IO manager has stored the table by now: the card describes a table that exists.
    facts = CardFacts(
        root_uri=store.root_uri, query=nasa.query, sampling_factor=settings.sampling_factor,
        rendition=settings.rendition, split_fractions=fractions, pages_included=included,
        pages_missing=MAX_PAGES - len(included), api_base_url=nasa.base_url,
        duplicates=dups["counts"], duplicate_examples=dups["examples"],
        duplicate_max_distance=curation.duplicate_max_distance,
    )
    store.put_bytes(CARD_KEY, render_card(summary, facts).encode("utf-8"),
                    content_type="text/markdown; charset=utf-8")
    yield from checks
