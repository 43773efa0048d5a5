"""Parse /search responses into rows of the search_results table. Pure functions, no I/O.

Every field is untrusted input: parsing never raises on a malformed item, it leaves the
field empty and lets validation record a reason.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

MAX_TEXT = 10_000  # characters kept of any free-text field; NASA descriptions run to a few KB
# Control characters, and lone surrogates (valid JSON escapes that no UTF-8 writer accepts).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

class SearchResponseError(ValueError):
    """The body is not a search response at all (the API changed shape or sent an error page)."""


@dataclass
class SearchPage:
    items: list = field(default_factory=list)
    total_hits: int = 0
    next_url: str | None = None
    exhausted: bool = False  # the API said no more results can be displayed


def parse_search_response(body: object) -> SearchPage:
    """The items, total_hits and next link of a /search body (Collection+JSON)."""
    collection = body.get("collection") if isinstance(body, Mapping) else None
    if not isinstance(collection, Mapping):
        reason = body.get("reason") if isinstance(body, Mapping) else None
        raise SearchResponseError(
            f"not a search response: {reason or 'no collection object'}"
        )
    items = collection.get("items")
    if not isinstance(items, list):
        raise SearchResponseError("not a search response: collection.items is not a list")
    metadata = collection.get("metadata")
    total = metadata.get("total_hits") if isinstance(metadata, Mapping) else None
    next_url = None
    links = collection.get("links")
    if isinstance(links, list):
        for link in links:
            if isinstance(link, Mapping) and link.get("rel") == "next" and isinstance(link.get("href"), str):
                next_url = link["href"]
    return SearchPage(
        items=items,
        total_hits=total if isinstance(total, int) and total >= 0 else len(items),
        next_url=next_url,
    )


def expected_items(page: int, total_hits: int, page_size: int, max_pages: int) -> int:
    """How many items page `page` must carry when the search reports `total_hits`: a full page,
    the remainder on the last one, none past the last hit or past the API's page cap."""
    if page < 1 or page > max_pages:
        return 0
    return max(0, min(page_size, total_hits - (page - 1) * page_size))


def short_page_problem(page: int, answer: SearchPage, page_size: int, max_pages: int) -> str | None:
    """What is wrong with a page that answered fewer items than its own total_hits implies; None
    when the count holds. Such an answer is a glitch of the service, not the state of the results."""
    if answer.exhausted:
        return None
    expected = expected_items(page, answer.total_hits, page_size, max_pages)
    if len(answer.items) >= expected:
        return None
    return (f"search page {page} answered {len(answer.items)} items but total_hits "
            f"{answer.total_hits} implies {expected}")


def is_results_cap(reason: str | None) -> bool:
    """The API's answer when a page lies past the 10,000 hits it will show."""
    return bool(reason) and "maximum number of search results" in reason.lower()


def clean_text(value: object, limit: int = MAX_TEXT) -> str | None:
    """A trimmed string without control characters, cut to `limit`; None when empty or not text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = CONTROL_CHARACTERS.sub("", value).strip()
    return text[:limit] or None


def parse_date(value: object) -> datetime | None:
    """An aware UTC datetime from the ISO forms NASA uses ("2019-07-20T00:00:00Z", "2019-07-20")."""
    text = clean_text(value, 64)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 falls before year 1 in UTC
        return None


def parse_keywords(value: object) -> list[str]:
    """Keywords as a list. A bare string is split on commas; list elements are kept whole,
    because NASA's elements can themselves contain commas ("Washington, DC")."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return []
    out = []
    for element in value:
        text = clean_text(element, 500)
        if text:
            out.append(text)
    return out


def _url(value: object) -> str | None:
    """A URL string as given, or None when it is not text or carries control characters."""
    return value if isinstance(value, str) and value and not CONTROL_CHARACTERS.search(value) else None


def _link(links: object, rel: str) -> str | None:
    if isinstance(links, list):
        for link in links:
            if isinstance(link, Mapping) and link.get("rel") == rel and _url(link.get("href")):
                return link["href"]
    return None


def raw_json(item: object) -> str:
    """The item as JSON text; escaped (ASCII) only when it holds characters UTF-8 cannot carry."""
    text = json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(item, sort_keys=True, ensure_ascii=True, default=str)
    return text


def parse_item(item: object, page: int, position: int) -> dict:
    """One search item as a search_results row; fields the item lacks are None (keywords: [])."""
    data = item.get("data") if isinstance(item, Mapping) else None
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], Mapping) else {}
    links = item.get("links") if isinstance(item, Mapping) else None
    href = item.get("href") if isinstance(item, Mapping) else None
    return {
        "page": page,
        "position": position,
        "nasa_id": clean_text(first.get("nasa_id"), 500),
        "title": clean_text(first.get("title"), 1000),
        "description": clean_text(first.get("description")),
        "date_created": parse_date(first.get("date_created")),
        "center": clean_text(first.get("center"), 100),
        "keywords": parse_keywords(first.get("keywords")),
        "media_type": clean_text(first.get("media_type"), 50),
        "photographer": clean_text(first.get("photographer"), 500),
        "location": clean_text(first.get("location"), 500),
        "preview_url": _link(links, "preview"),
        "collection_url": _url(href),
        "raw": raw_json(item),
    }


def parse_items(items: list, page: int) -> list[dict]:
    """Rows for a page's items; position is 1-based within the page."""
    return [parse_item(item, page, i) for i, item in enumerate(items, start=1)]
