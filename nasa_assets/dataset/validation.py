"""What makes a search item usable, and the invariants the manifest must hold. Pure functions."""

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pandas as pd

from nasa_assets.nasa.urls import url_block_reason

EARLIEST_PLAUSIBLE = datetime(1900, 1, 1, tzinfo=UTC)
MAX_NASA_ID = 500  # where parse_item cuts a nasa_id


def latest_plausible(now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) + timedelta(days=1)


def rejection_reason(row: Mapping, now: datetime | None = None) -> str | None:
    """Why a parsed search_results row cannot go into the dataset, or None when it can."""
    try:
        raw = json.loads(row.get("raw") or "null")
    except ValueError:
        raw = None
    data = raw.get("data") if isinstance(raw, Mapping) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], Mapping):
        return "item has no data object"
    if not row.get("nasa_id"):
        return "missing nasa_id"
    raw_id = data[0].get("nasa_id")
    if isinstance(raw_id, str) and raw_id != row["nasa_id"]:
        # The parser cleaned the id; an identifier is not text to tidy: the cleaned one could be
        # another item's id (and so its image key), so the item is rejected instead.
        if len(raw_id) > MAX_NASA_ID:
            return f"nasa_id too long ({len(raw_id)} characters, at most {MAX_NASA_ID})"
        return "nasa_id has control characters or surrounding whitespace"
    if row.get("media_type") != "image":
        return f"media_type is not image: {row.get('media_type')!r}"
    if not row.get("title"):
        return "missing title"
    created = row.get("date_created")
    if created is None or pd.isna(created):
        value = data[0].get("date_created")
        return f"unparsable date_created: {str(value)[:40]!r}" if value else "missing date_created"
    if not EARLIEST_PLAUSIBLE <= created <= latest_plausible(now):
        return f"implausible date_created: {created.isoformat()}"
    return None


def manifest_problems(
    manifest: pd.DataFrame, allowed_hosts, now: datetime | None = None
) -> list[str]:
    """Invariants of sampled_manifest rows; any problem means a parser bug, not bad input."""
    problems = []
    if manifest.empty:
        return problems
    ids = manifest["nasa_id"]
    if ids.isna().any() or (ids == "").any():
        problems.append(f"{int(ids.isna().sum() + (ids == '').sum())} rows without nasa_id")
    # Per page: an item seen on two pages of a range (results shift between page fetches) is one
    # image under one key, and moon_dataset keeps one row; within a page it is a screening bug.
    dupes = ids[manifest.duplicated(["page", "nasa_id"])].unique().tolist()
    if dupes:
        problems.append(f"duplicate nasa_id: {dupes[:5]}")
    if manifest["title"].isna().any():
        problems.append(f"{int(manifest['title'].isna().sum())} rows without title")
    dates = manifest["date_created"]
    bad_dates = dates.isna() | (dates < EARLIEST_PLAUSIBLE) | (dates > latest_plausible(now))
    if bad_dates.any():
        problems.append(f"{int(bad_dates.sum())} rows with a missing or implausible date_created")
    not_images = manifest["media_type"] != "image"
    if not_images.any():
        problems.append(f"{int(not_images.sum())} rows whose media_type is not image")
    blocked = [u for u in manifest["image_url"] if url_block_reason(u, allowed_hosts)]
    if blocked:
        problems.append(f"{len(blocked)} image URLs off the allowed hosts, e.g. {blocked[0]!r}")
    return problems


def rejection_budget(
    per_page: Mapping[str, Mapping[str, int]], limit: float
) -> tuple[list[str], dict[str, float], dict[str, float]]:
    """(problems, rejected share, unresolved share) per page, from its counts: items, rejected,
    sampled (kept) and unresolved (sampled but left without a usable image URL).

    Rendition and collection.json failures can only hit sampled items: measured against all items
    they would vanish under a high sampling factor, so they have their own share of the sampled
    items. One such loss is tolerated whatever the share, so a page of 3 sampled items is not
    blocked by one item (it is still recorded in rejected/<page>.parquet)."""
    rejected = {k: round(c["rejected"] / c["items"], 3) if c["items"] else 0.0 for k, c in per_page.items()}
    unresolved = {
        k: round(c["unresolved"] / (c["sampled"] + c["unresolved"]), 3) if c["sampled"] + c["unresolved"] else 0.0
        for k, c in per_page.items()
    }
    problems = []
    over = {k: share for k, share in rejected.items() if share > limit}
    if over:
        problems.append(f"rejected share above MAX_REJECTED_FRACTION={limit}: {over}")
    lost = {k: share for k, share in unresolved.items() if share > limit and per_page[k]["unresolved"] > 1}
    if lost:
        problems.append(
            f"share of sampled items without a usable image URL above MAX_REJECTED_FRACTION={limit}: {lost}"
        )
    return problems, rejected, unresolved
