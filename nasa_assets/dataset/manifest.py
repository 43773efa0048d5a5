"""From a page of search results to download instructions. Pure functions, no I/O."""

import json
import re
from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from nasa_assets.dataset.keys import image_key
from nasa_assets.dataset.sampling import is_sampled
from nasa_assets.dataset.validation import rejection_reason
from nasa_assets.nasa.parsing import CONTROL_CHARACTERS
from nasa_assets.nasa.renditions import (
    choose_rendition,
    links_list_all_renditions,
    renditions_from_links,
)
from nasa_assets.nasa.urls import url_block_reason


def rejected_row(row: Mapping, reason: str) -> dict:
    return {k: row.get(k) for k in ("page", "position", "nasa_id", "raw")} | {"reason": reason}


def screen(rows: list[Mapping], now: datetime | None = None) -> tuple[list[Mapping], list[dict]]:
    """Split a page's rows into usable ones and rejected ones (with reasons); the first of
    duplicate nasa_ids on a page is kept."""
    valid, rejected, seen = [], [], set()
    for row in rows:
        reason = rejection_reason(row, now)
        if reason is None and row["nasa_id"] in seen:
            reason = "duplicate nasa_id on this page"
        if reason:
            rejected.append(rejected_row(row, reason))
        else:
            seen.add(row["nasa_id"])
            valid.append(row)
    return valid, rejected


def sample(rows: list[Mapping], factor: int) -> list[Mapping]:
    return [row for row in rows if is_sampled(row["nasa_id"], factor)]


# What the file host answers for a URL that no longer leads to the file: the URL has to be looked
# up again (collection.json), not retried.
_URL_GONE = re.compile(r"\bHTTP (403|404|410)\b")


def url_gone(reason: object) -> bool:
    return isinstance(reason, str) and bool(_URL_GONE.search(reason))


def forget_gone_urls(choices: dict[str, tuple], images: list[Mapping]) -> tuple[dict[str, tuple], int]:
    """The earlier choices (nasa_id -> (raw, rendition, image_url)) without those whose image URL
    failed as gone in an earlier moon_images row; (choices kept, how many were forgotten)."""
    gone = {(r["nasa_id"], r["source_url"]) for r in images
            if r["status"] == "failed" and url_gone(r["error"])}
    kept = {nasa_id: c for nasa_id, c in choices.items() if (nasa_id, c[2]) not in gone}
    return kept, len(choices) - len(kept)


def listed_renditions(row: Mapping) -> dict[str, str] | None:
    """Renditions the item itself lists (link format 1.1), or None when its collection.json
    on the file host must be read (format 1.0 lists only a thumbnail)."""
    try:
        links = json.loads(row["raw"]).get("links")
    except (ValueError, AttributeError, TypeError):
        return None
    return renditions_from_links(links) if links_list_all_renditions(links) else None


def attach_image(
    row: Mapping, renditions: Mapping[str, str], preferred: str, allowed_hosts
) -> tuple[dict | None, str | None]:
    """(manifest row, None) with the chosen rendition, or (None, reason) when there is none."""
    chosen = choose_rendition(renditions, preferred)
    if chosen is None:
        return None, "no image rendition available"
    rendition, url = chosen
    blocked = url_block_reason(url, allowed_hosts)
    if blocked:
        return None, f"image URL refused: {blocked}"
    return dict(row) | {
        "rendition": rendition, "image_url": url, "image_key": image_key(row["nasa_id"], url),
    }, None


NORMALISED_FIELDS = ("title", "description", "center", "media_type", "photographer", "location")


def normalisation_counts(rows: list[Mapping]) -> dict[str, int]:
    """Items whose text the parser changed, by field and change: control characters removed, or
    text cut to the column's limit. The row's raw column keeps the original."""
    counts: Counter = Counter()
    for row in rows:
        try:
            data = json.loads(row.get("raw") or "null")["data"][0]
        except (ValueError, TypeError, KeyError, IndexError):
            continue
        if not isinstance(data, Mapping):
            continue
        for field in NORMALISED_FIELDS:
            given, kept = data.get(field), row.get(field)
            if not isinstance(given, str) or not kept or given.strip() == kept:
                continue
            if CONTROL_CHARACTERS.search(given):
                counts[f"{field}: control characters removed"] += 1
            if len(kept) < len(CONTROL_CHARACTERS.sub("", given).strip()):
                counts[f"{field}: cut at its length limit"] += 1
    return dict(counts.most_common(20))


def reason_counts(rejected: list[Mapping]) -> dict[str, int]:
    """Reasons grouped by kind (the part before ":"), so 1,000 distinct bad dates make one line."""
    return dict(Counter(r["reason"].split(":", 1)[0] for r in rejected).most_common(20))
