"""Search pages: the API answers at most 10,000 hits, 100 pages of 100."""

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

PAGE_SIZE = 100
MAX_HITS = 10_000
MAX_PAGES = MAX_HITS // PAGE_SIZE


def page_key(page: int) -> str:
    """Zero-padded so S3 listings and the UI sort pages in order."""
    return f"{page:04d}"


def page_number(key: str) -> int:
    return int(key)


# Search pages of one run fetched at once: a 100-page run is not 100 round trips one after another,
# and the API sees no more than this many requests in flight from one step (the per-hour budget
# of the rate limiter applies to each of them as before).
SEARCH_CONCURRENCY = 4

PAGE_KEYS = [page_key(p) for p in range(1, MAX_PAGES + 1)]


def parse_page_range(spec: str) -> list[str]:
    """Turn "3", "0003", "1-5", "0001...0005" or "1,4,7" into sorted partition keys.

    Raises ValueError with a readable message for anything else or for pages outside 1..100.
    """
    pages: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        sep = "..." if "..." in part else "-" if "-" in part else None
        try:
            if sep:
                lo, hi = (int(x) for x in part.split(sep, 1))
            else:
                lo = hi = int(part)
        except ValueError:
            raise ValueError(f"not a page or page range: {part!r} (try 1, 1-5 or 0001...0005)") from None
        if lo > hi:
            raise ValueError(f"empty page range: {part!r}")
        if lo < 1 or hi > MAX_PAGES:
            raise ValueError(f"pages run from 1 to {MAX_PAGES}; got {part!r}")
        pages.update(range(lo, hi + 1))
    if not pages:
        raise ValueError("no pages given")
    return [page_key(p) for p in sorted(pages)]


def page_runs(keys: Iterable[str]) -> list[tuple[str, str]]:
    """Contiguous runs of page keys, in page order: ["0007", "0001", "0002"] -> [("0001", "0002"),
    ("0007", "0007")]."""
    runs: list[list[int]] = []
    for number in sorted(page_number(k) for k in keys):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return [(page_key(first), page_key(last)) for first, last in runs]


def page_ranges(keys: Iterable[str]) -> str:
    """["0001", "0002", "0003", "0007"] -> "0001-0003, 0007"; "none" when empty."""
    return ", ".join(a if a == b else f"{a}-{b}" for a, b in page_runs(keys)) or "none"


def fetch_pages(keys: list[str], fetch: Callable[[str], object], workers: int = SEARCH_CONCURRENCY) -> dict:
    """{key: fetch(key)} in the order of `keys`, at most `workers` at a time. The first failure is
    raised as soon as it happens, and pages not yet started are not fetched; the same when the run
    is stopped (an interrupt while waiting), so a terminated backfill asks NASA for nothing more."""
    if len(keys) <= 1 or workers <= 1:
        return {key: fetch(key) for key in keys}
    pool = ThreadPoolExecutor(max_workers=min(workers, len(keys)), thread_name_prefix="search")
    try:
        futures = {key: pool.submit(fetch, key) for key in keys}
        done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures.values() if f in done and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()
        return {key: future.result() for key, future in futures.items()}
    finally:
        # Also on an interrupt: queued pages are dropped, pages in flight end on their own.
        pool.shutdown(wait=False, cancel_futures=True)
