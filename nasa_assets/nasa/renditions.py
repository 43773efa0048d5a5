"""Which file of an item to download: NASA publishes each image in up to five renditions."""

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

# The file types the file host serves images as; anything else is not an image rendition.
IMAGE_EXTENSIONS = {"jpg", "jpeg", "png", "tif", "tiff", "gif", "webp"}

# Largest first. "orig" can be a TIFF of hundreds of MB; "large" is ~1920 px wide.
RENDITIONS = ("orig", "large", "medium", "small", "thumb")

_RENDITION_IN_NAME = re.compile(r"~(orig|large|medium|small|thumb)\.([A-Za-z0-9]+)$")


def rendition_of(url: str) -> str | None:
    """The rendition named in a file URL (`.../id~large.jpg` -> "large"), or None for other files
    and for URLs that cannot be parsed (`http://[broken/...`): such a URL is never fetched."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return None
    name = unquote(parts.path).rsplit("/", 1)[-1]
    match = _RENDITION_IN_NAME.search(name)
    if not match or match.group(2).lower() not in IMAGE_EXTENSIONS:
        return None
    return match.group(1)


def renditions_from_urls(urls: Iterable[str]) -> dict[str, str]:
    """Map rendition -> URL from any list of file URLs (collection.json or item links).

    The first URL seen for a rendition wins; collection.json is known to repeat entries.
    """
    found: dict[str, str] = {}
    for url in urls:
        if not isinstance(url, str):
            continue
        rendition = rendition_of(url)
        if rendition and rendition not in found:
            found[rendition] = url
    return found


def renditions_from_links(links: object) -> dict[str, str]:
    """Renditions listed in an item's `links` (format 1.1 lists them all; 1.0 only the thumb)."""
    if not isinstance(links, list):
        return {}
    return renditions_from_urls(
        link.get("href") for link in links if isinstance(link, Mapping) and link.get("render") == "image"
    )


def links_list_all_renditions(links: object) -> bool:
    """Format 1.1 items carry sized links for their renditions, so no collection.json is needed."""
    if not isinstance(links, list):
        return False
    sized = [
        link for link in links
        if isinstance(link, Mapping) and link.get("render") == "image" and "size" in link
    ]
    return len(sized) > 1


def choose_rendition(available: Mapping[str, str], preferred: str) -> tuple[str, str] | None:
    """Pick the preferred rendition, else the nearest one, smaller before larger at equal distance.

    Smaller first because the next size up from "large" is "orig", which may be a huge TIFF.
    """
    if preferred not in RENDITIONS:
        raise ValueError(f"unknown rendition {preferred!r}; choose one of {', '.join(RENDITIONS)}")
    want = RENDITIONS.index(preferred)
    ranked = sorted(
        (r for r in available if r in RENDITIONS),
        key=lambda r: (abs(RENDITIONS.index(r) - want), -RENDITIONS.index(r)),
    )
    if not ranked:
        return None
    return ranked[0], available[ranked[0]]
