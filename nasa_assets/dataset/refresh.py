"""What the refresh sensor remembers about the search results, and which pages a change affects.

Pure functions, no I/O: the sensor (nasa_assets/sensors.py) fetches pages and hands their nasa_ids
here. NASA has no sort parameter, and reading all 100 pages on every tick would cost 100 requests,
so each tick reads two pages:

- page 1 (its response also carries ``total_hits``), and
- one watched page: while ``total_hits`` stays the same, the pages 2 .. last take turns, one per
  tick, so every page is compared again within (last - 1) ticks; when ``total_hits`` changed, the
  previous last page instead (and the new last page, to remember it).

A page's fingerprint is the sha256 of its ordered nasa_ids; the cursor keeps ``count`` +
fingerprint of every page it has seen, so a later tick can tell "new hits were appended after the
old last page's items" from "the list shifted under them". "Affected" pages are then:

1. first tick (no cursor): every page that exists, 1 .. ceil(total_hits / 100) (at most 100);
2. total_hits unchanged: page 1 if its fingerprint changed, and the watched page if its
   fingerprint changed since it was last seen (an item replaced or reordered in place). A page
   seen for the first time since it was refreshed is only remembered.
3. total_hits changed: a range from the first page that may differ to the last page that exists
   now or existed before (pages past the new end are re-materialized as empty tables):
   - page 1 changed: from page 1 (new hits can land anywhere, so everything may have moved);
   - page 1 unchanged and the old last page still starts with exactly the items it had: new hits
     were appended after them, so from the old last page (or the page after it when it was full
     and is unchanged);
   - otherwise (page 1 unchanged, the old last page shifted or was never seen): from page 2.
   The fingerprints of the refreshed pages that were not read on this tick are forgotten.

Pages past 100 (the API's 10,000-hit cap) are never requested nor affected.

A sudden drop of ``total_hits`` (to 0, or by more than ``drop_share`` of the old total) is not
acted on when first seen: one bad answer must not empty the dataset. That tick reads no further
page, requests nothing and keeps the cursor, only noting the suspicious total (``suspect``). A
later tick that sees the same total again acts on it as on any change; one that sees another total
forgets the suspicion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from nasa_assets.dataset.pages import MAX_PAGES, PAGE_SIZE, page_key
from nasa_assets.dataset.refresh_state import FIRST_WATCHED, PageSeen, RefreshState

# The cursor's names stay importable from here, where the sensor and older code look for them.
from nasa_assets.dataset.refresh_state import CURSOR_VERSION as CURSOR_VERSION
from nasa_assets.dataset.refresh_state import READABLE_VERSIONS as READABLE_VERSIONS
from nasa_assets.dataset.refresh_state import fingerprint as fingerprint
from nasa_assets.dataset.refresh_state import item_ids as item_ids

# A drop of total_hits by more than this share of the old total waits for a second observation.
DEFAULT_DROP_SHARE = 0.5


def last_page(total_hits: int) -> int:
    """The number of the page holding the last reachable hit; 0 when there are no hits."""
    return min(-(-max(total_hits, 0) // PAGE_SIZE), MAX_PAGES)


def watched_page(previous: RefreshState, total_hits: int) -> int | None:
    """The page this tick compares when total_hits is unchanged; None when page 1 is all there is."""
    last = last_page(total_hits)
    if last < FIRST_WATCHED:
        return None
    return previous.watch if FIRST_WATCHED <= previous.watch <= last else FIRST_WATCHED


def _next_watch(page: int, total_hits: int) -> int:
    return page + 1 if page + 1 <= last_page(total_hits) else FIRST_WATCHED


def sudden_drop(before: int, after: int, drop_share: float = DEFAULT_DROP_SHARE) -> bool:
    """total_hits fell to 0, or by more than ``drop_share`` of what it was."""
    return after < before and (after == 0 or before - after > drop_share * before)


def unconfirmed_drop(
    previous: RefreshState | None, total_hits: int, drop_share: float = DEFAULT_DROP_SHARE
) -> bool:
    """A sudden drop not seen on the tick before: to be confirmed before anything acts on it."""
    return (
        previous is not None
        and sudden_drop(previous.total_hits, total_hits, drop_share)
        and previous.suspect != total_hits
    )


def pages_to_check(
    previous: RefreshState | None,
    total_hits: int,
    page1: Sequence[str | None],
    drop_share: float = DEFAULT_DROP_SHARE,
) -> list[int]:
    """The pages to fetch after page 1. With total_hits unchanged: the watched page (one request
    more; none when everything fits on page 1). After a sudden drop seen for the first time: none.
    Otherwise: the previous last page (when its items are needed to decide) and the current last
    page (to remember it)."""
    if unconfirmed_drop(previous, total_hits, drop_share):
        return []
    if previous is not None and total_hits == previous.total_hits:
        page = watched_page(previous, total_hits)
        return [] if page is None else [page]
    pages = []
    if previous is not None:
        old_last = last_page(previous.total_hits)
        first_changed = previous.pages.get(1) != PageSeen.of(page1)
        # With page 1 and the total both changed, the answer is "from page 1" whatever the tail.
        if old_last > 1 and not first_changed:
            pages.append(old_last)
    new_last = last_page(total_hits)
    if new_last > 1 and new_last not in pages:
        pages.append(new_last)
    return pages


@dataclass(frozen=True)
class Decision:
    affected: list[str]  # partition keys, in order
    state: RefreshState  # the cursor to store
    reason: str  # one line for the tick log / skip reason
    suspicious: bool = False  # a sudden drop seen once: nothing may act on this tick

    def run_key(self, key: str) -> str:
        """Unique per page, observed state and generation: a retried tick cannot request twice."""
        return f"page-{key}-g{self.state.generation}-{self.state.digest()}"


def _keys(pages: range | list[int]) -> list[str]:
    return [page_key(p) for p in pages if 1 <= p <= MAX_PAGES]


def _span(keys: list[str]) -> str:
    if not keys:
        return "no pages"
    return f"page {keys[0]}" if len(keys) == 1 else f"pages {keys[0]}..{keys[-1]} ({len(keys)})"


def decide(
    previous: RefreshState | None,
    total_hits: int,
    fetched: Mapping[int, Sequence[str | None]],
    drop_share: float = DEFAULT_DROP_SHARE,
) -> Decision:
    """The affected pages and the next cursor, from the previous cursor and this tick's pages.

    ``fetched`` holds page 1 and the pages `pages_to_check` named, as lists of nasa_ids.
    """
    if unconfirmed_drop(previous, total_hits, drop_share):
        state = replace(previous, suspect=total_hits)
        return Decision([], state, (
            f"total_hits dropped {previous.total_hits} -> {total_hits}: not acted on until a later "
            "tick sees it again; cursor kept"
        ), suspicious=True)
    new_last = last_page(total_hits)
    # Page 1 is always remembered, even empty: with 0 hits it is the only evidence of "no change".
    seen_now = {p: PageSeen.of(ids) for p, ids in fetched.items() if p == 1 or 1 <= p <= new_last}
    if previous is None:
        keys = _keys(range(1, new_last + 1))
        state = RefreshState(total_hits, seen_now, generation=1 if keys else 0)
        return Decision(keys, state, f"first tick: {total_hits} hits, {_span(keys)} requested")

    first_changed = previous.pages.get(1) != seen_now.get(1, PageSeen.of([]))
    if total_hits == previous.total_hits:
        watched = watched_page(previous, total_hits)
        before = previous.pages.get(watched) if watched is not None else None
        watched_changed = before is not None and watched in seen_now and before != seen_now[watched]
        pages = sorted(({1} if first_changed else set()) | ({watched} if watched_changed else set()))
        keys = _keys(pages)
        watch = _next_watch(watched, total_hits) if watched is not None else FIRST_WATCHED
        state = RefreshState(
            total_hits,
            {**previous.pages, **seen_now},
            previous.generation + (1 if keys else 0),
            watch,
        )
        looked_at = "page 0001" + (f" and page {page_key(watched)}" if watched else "")
        if not keys:
            return Decision([], state, f"no change: {total_hits} hits, {looked_at} unchanged")
        return Decision(keys, state, f"same total_hits ({total_hits}): {_span(keys)} affected")

    old_last = last_page(previous.total_hits)
    old_tail = previous.pages.get(old_last) if old_last > 1 else None
    tail_ids = fetched.get(old_last) if old_last > 1 else None
    tail_changed = old_tail is not None and tail_ids is not None and old_tail != PageSeen.of(tail_ids)
    tail_kept = old_tail is not None and tail_ids is not None and old_tail.still_starts(tail_ids)
    if first_changed:
        start, why = 1, "page 0001 changed"
    elif tail_kept:
        start = old_last if tail_changed else old_last + 1
        why = f"page 0001 unchanged, page {page_key(old_last)} kept its {old_tail.count} items"
    else:
        start, why = 2, "page 0001 unchanged, later pages shifted"
    pages = list(range(start, max(new_last, old_last) + 1))
    keys = _keys(pages)
    # What a refreshed page held before is no evidence of what it holds now: keep only what this
    # tick read, and the untouched pages before the range.
    kept = {p: seen for p, seen in previous.pages.items() if p < start and p <= new_last}
    state = RefreshState(
        total_hits,
        {**kept, **seen_now},
        previous.generation + (1 if keys else 0),
        previous.watch if FIRST_WATCHED <= previous.watch <= new_last else FIRST_WATCHED,
    )
    what = f"total_hits {previous.total_hits} -> {total_hits}, {why}"
    return Decision(keys, state, f"{what}: {_span(keys)} affected")
