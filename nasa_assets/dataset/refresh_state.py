"""The refresh sensor's cursor: total_hits and a fingerprint of every page seen, as JSON.

Pure, no I/O. What the fingerprints are compared for, and which pages a change affects, is
nasa_assets/dataset/refresh.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nasa_assets.dataset.pages import page_key

CURSOR_VERSION = 3
# Version 1 cursors (no watched page) are read with the watch at page 2; versions 1 and 2 (no
# suspicious total) with none pending.
READABLE_VERSIONS = (1, 2, 3)
FIRST_WATCHED = 2


def item_ids(items: Sequence[object]) -> list[str | None]:
    """The nasa_id of each search item, in order; None where an item has none."""
    ids = []
    for item in items:
        data = item.get("data") if isinstance(item, Mapping) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], Mapping) else {}
        nasa_id = first.get("nasa_id")
        ids.append(nasa_id if isinstance(nasa_id, str) else None)
    return ids


def fingerprint(ids: Sequence[str | None]) -> str:
    """sha256 of the ordered nasa_ids (JSON-encoded, so no two lists share a fingerprint)."""
    return hashlib.sha256(json.dumps(list(ids), separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class PageSeen:
    count: int
    fingerprint: str

    @classmethod
    def of(cls, ids: Sequence[str | None]) -> PageSeen:
        return cls(len(ids), fingerprint(ids))

    def still_starts(self, ids: Sequence[str | None]) -> bool:
        """The page now begins with exactly the items it had (more may follow)."""
        return len(ids) >= self.count and fingerprint(ids[: self.count]) == self.fingerprint


@dataclass(frozen=True)
class RefreshState:
    """The cursor: total_hits and what the pages seen held, the page to watch next, how many
    times runs were requested (``generation``, part of every run key so a state seen again is
    refreshed again), and a sudden drop of total_hits seen once and not yet acted on."""

    total_hits: int
    pages: dict[int, PageSeen] = field(default_factory=dict)
    generation: int = 0
    watch: int = FIRST_WATCHED
    suspect: int | None = None

    def to_cursor(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def to_json(self) -> dict:
        return {
            "v": CURSOR_VERSION,
            "total_hits": self.total_hits,
            "generation": self.generation,
            "watch": self.watch,
            "suspect": self.suspect,
            "pages": {
                page_key(p): {"count": s.count, "fingerprint": s.fingerprint}
                for p, s in sorted(self.pages.items())
            },
        }

    @classmethod
    def from_cursor(cls, cursor: str | None) -> RefreshState | None:
        """None for an empty cursor; ValueError for one this version cannot read."""
        if not cursor:
            return None
        try:
            data = json.loads(cursor)
        except ValueError as error:
            raise ValueError(f"unreadable refresh cursor ({error})") from None
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: object) -> RefreshState:
        """The state from a parsed cursor; ValueError for one this version cannot read."""
        try:
            version = data.get("v") if isinstance(data, dict) else None
            if version not in READABLE_VERSIONS:
                raise ValueError(f"cursor version {version!r}")
            pages = {
                int(key): PageSeen(int(seen["count"]), str(seen["fingerprint"]))
                for key, seen in data["pages"].items()
            }
            suspect = data.get("suspect")
            return cls(
                int(data["total_hits"]),
                pages,
                int(data.get("generation", 0)),
                int(data.get("watch", FIRST_WATCHED)),
                None if suspect is None else int(suspect),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"unreadable refresh cursor ({error})") from None

    def digest(self) -> str:
        """A short hash of what was observed (total and fingerprints, not the generation)."""
        observed = json.dumps(
            [self.total_hits, sorted((p, s.count, s.fingerprint) for p, s in self.pages.items())]
        )
        return hashlib.sha256(observed.encode()).hexdigest()[:16]
