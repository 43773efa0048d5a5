"""moon_dataset's rows from the stored pages: one row per image, duplicates grouped, splits drawn
per group. No Dagster: defs/assets/moon_dataset.py runs it and checks the result."""

import time
from collections.abc import Mapping

import pandas as pd

from nasa_assets.dataset import tables
from nasa_assets.dataset.captions import caption
from nasa_assets.dataset.duplicates import (
    assign_splits,
    duplicate_counts,
    example_pairs,
    group_duplicates,
    phashes_of_stored,
)
from nasa_assets.dataset.pages import page_number
from nasa_assets.dataset.sampling import split_for
from nasa_assets.storage import ObjectStore

EXAMPLE_PAIRS = 3
METADATA_COLUMNS = ("title", "description", "date_created", "center", "keywords", "photographer",
                    "location")
IMAGE_COLUMNS = ("image_key", "image_uri", "rendition", "source_url", "bytes", "sha256", "width",
                 "height", "format")


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
    # Only the columns the table takes: the raw JSON of 10,000 items as Python strings is tens of MB.
    wanted = ["nasa_id", *METADATA_COLUMNS]
    by_page = {page: {r["nasa_id"]: r for r in tables.records(m[wanted])} for page, m in manifests.items()}
    anywhere: dict[str, dict] = {}
    for page in sorted(by_page):
        for nasa_id, row in by_page[page].items():
            anywhere.setdefault(nasa_id, row)
    candidates: dict[str, list[tuple[str, dict]]] = {}
    stats = {"image_rows": 0, "not_stored": 0, "duplicates": 0, "stale_rows": 0, "without_metadata": 0}
    for page, frame in sorted(images.items()):
        for image in tables.records(frame):
            stats["image_rows"] += 1
            if image["status"] not in tables.STORED:
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


def published_table(store: ObjectStore, key: str) -> pd.DataFrame | None:
    """The moon_dataset table consumers are served now (under `key`); None when there is none (or
    it cannot be read, so there is nothing to protect)."""
    try:
        return store.read_parquet(key)
    except (FileNotFoundError, ValueError):
        return None


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
    counts, pairs = duplicate_summary(rows, threshold)
    stats = {
        "counts": counts,
        "examples": pairs,
        "hashed": len(todo),
        "reused": sum(1 for r in rows if r["sha256"] in known),
        "unhashable": [{"nasa_id": r["nasa_id"], "reason": why[file_of(r)]}
                       for r in rows if file_of(r) in why],
        "hash_seconds": round(hashed - started, 3),
        "group_seconds": round(time.perf_counter() - hashed, 3),
    }
    return tables.frame("moon_dataset", rows), stats


def duplicate_summary(rows: list[dict], threshold: int) -> tuple[dict[str, int], dict]:
    """(counts, example pairs with their image keys) of rows that carry duplicate_group and phash:
    what the card and moon_dataset's metadata say about copies."""
    groups = {row["nasa_id"]: row["duplicate_group"] for row in rows}
    pairs = example_pairs(rows, threshold, EXAMPLE_PAIRS)
    keys = {row["nasa_id"]: row["image_key"] for row in rows}
    for pair in (*pairs["exact"], *pairs["near"]):
        pair["a_key"], pair["b_key"] = keys[pair["a"]], keys[pair["b"]]
    return duplicate_counts(rows, groups), pairs


def shrink_problem(previous: int | None, new: int, max_shrink: float) -> str | None:
    """Why a table of `new` rows may not replace one of `previous` rows; None when it may."""
    if not previous or previous - new <= previous * max_shrink:
        return None
    return (f"moon_dataset would shrink from {previous} to {new} rows "
            f"({(previous - new) / previous:.0%} fewer; MAX_DATASET_SHRINK={max_shrink:g})")
