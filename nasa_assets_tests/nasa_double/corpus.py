"""The corpus: the recorded real items from data/, padded with deterministic synthetic items, and
asset URLs rewritten to the double."""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

RENDITIONS = ("orig", "large", "medium", "small", "thumb")
RENDITION_DIMS = {
    "orig": (320, 240),
    "large": (160, 120),
    "medium": (96, 72),
    "small": (64, 48),
    "thumb": (32, 24),
}
# Order and rel values of the v1.1 rendition links, as in search-nasa_id-iss026-s-001-v1.1.json.
_V11_LINK_ORDER = (
    ("medium", "alternate"),
    ("small", "alternate"),
    ("thumb", "preview"),
    ("large", "alternate"),
    ("orig", "canonical"),
)

RESULT_CAP = 10_000
CAP_REASON = "Maximum number of search results have been displayed. Please refine your search."
REAL_API_ORIGIN = "http://images-api.nasa.gov"
_REAL_ASSET_ORIGINS = ("https://images-assets.nasa.gov", "http://images-assets.nasa.gov")


def _load(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def _real_items() -> tuple[dict, ...]:
    """Recorded image items, de-duplicated by nasa_id, in the documented order."""
    sources = (
        "search-apollo11-image-page1-first20.json",
        "search-moon-page1.json",
        "search-nasa_id-iss026-s-001-v1.1.json",
        "search-apollo-pagesize1.json",
        "search-last-page-no-next-link.json",
    )
    seen: set[str] = set()
    items = []
    for name in sources:
        for item in _load(name)["collection"]["items"]:
            data = item["data"][0]
            if data.get("media_type") != "image" or data["nasa_id"] in seen:
                continue
            seen.add(data["nasa_id"])
            items.append(item)
    return tuple(items)


_SUBJECTS = (
    "Full Moon rises over the Capitol",
    "Lunar eclipse seen from Kennedy Space Center",
    "Crescent Moon and Venus",
    "Supermoon over the Washington Monument",
    "Lunar Reconnaissance Orbiter view of the south pole",
    "Earthrise photographed from lunar orbit",
    "Apollo landing site revisited",
    "Artemis I Orion spacecraft flies past the Moon",
    "Moon setting behind the Vehicle Assembly Building",
    "Harvest Moon over Johnson Space Center",
)
_CENTERS = ("HQ", "JSC", "KSC", "JPL", "MSFC", "GSFC", "ARC")
_PLACES = ("National Mall", "NASA Headquarters", "Kennedy Space Center", "Houston", "Pasadena")
_PHOTOGRAPHERS = ("NASA/Bill Ingalls", "NASA/Joel Kowsky", "NASA/Aubrey Gemignani", "NASA/Kim Shiflett")
_KEYWORDS = (
    "Moon", "Lunar", "Artemis", "Apollo", "Eclipse", "Supermoon", "LRO", "Earth", "Orion",
    "Washington, DC", "Full Moon", "Night Sky",
)
_ALBUMS = ("Moon_Gallery", "Artemis_I", "Apollo_50th", "Lunar_Science")


def _synthetic_data(nasa_id: str, index: int, seed: int, salt: str = "") -> dict:
    """Item ``data[0]`` for a synthetic item, cloned from one of the real shapes."""
    rng = random.Random(f"{seed}:{index}:{salt}")
    shape = rng.randrange(4)
    subject = rng.choice(_SUBJECTS)
    title = f"{subject} ({index})"
    if rng.random() < 0.15:
        # The real API cuts titles at 64 characters.
        title = (title + " as seen by the public affairs photography team on site")[:64]
    when = dt.datetime(1960, 1, 1) + dt.timedelta(days=rng.randrange(65 * 365))
    if shape == 1:
        when += dt.timedelta(seconds=rng.randrange(86400))
    date_created = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    keywords = sorted(rng.sample(_KEYWORDS, rng.randint(2, 5)))
    description = f"{subject}. Synthetic test image number {index} of the Moon search."

    if shape == 0:  # HQ photo-desk shape
        photographer = rng.choice(_PHOTOGRAPHERS)
        return {
            "album": [rng.choice(_ALBUMS)],
            "center": "HQ",
            "title": title,
            "photographer": photographer,
            "location": rng.choice(_PLACES),
            "nasa_id": nasa_id,
            "date_created": date_created,
            "keywords": keywords,
            "media_type": "image",
            "description": f"{description} Photo Credit: ({photographer})",
        }
    if shape == 1:  # JPL PIA shape
        return {
            "description_508": title,
            "nasa_id": nasa_id,
            "date_created": date_created,
            "secondary_creator": "NASA/JPL-Caltech",
            "media_type": "image",
            "description": description,
            "center": "JPL",
            "keywords": keywords,
            "title": title,
        }
    if shape == 2:  # JSC shape: stub description, sometimes no keywords at all
        data = {
            "center": "JSC",
            "date_created": date_created,
            "description": f"{nasa_id.upper()} ({when:%B %Y}) --- ",
            "media_type": "image",
            "nasa_id": nasa_id,
            "title": title,
        }
        if rng.random() < 0.5:
            data["keywords"] = keywords
        return data
    # Keywords as one comma-joined string, like the recorded Apollo 8 item.
    return {
        "center": rng.choice(_CENTERS),
        "title": title,
        "keywords": [", ".join(keywords)],
        "nasa_id": nasa_id,
        "date_created": date_created,
        "media_type": "image",
        "description": description,
    }


def _rewrite_asset_url(url: str, base_url: str) -> str:
    for origin in _REAL_ASSET_ORIGINS:
        if url.startswith(origin):
            return base_url + url[len(origin):]
    return url


def _rewrite_raw(item: Any, base_url: str) -> Any:
    """A raw item with its asset hrefs (item and links) pointed at the double, shape untouched."""
    if isinstance(item, dict):
        if isinstance(item.get("href"), str):
            item["href"] = _rewrite_asset_url(item["href"], base_url)
        for link in item.get("links") if isinstance(item.get("links"), list) else []:
            if isinstance(link, dict) and isinstance(link.get("href"), str):
                link["href"] = _rewrite_asset_url(link["href"], base_url)
    return item
