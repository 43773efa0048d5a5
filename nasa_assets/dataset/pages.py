"""Search pages: the API answers at most 10,000 hits, 100 pages of 100."""

from collections.abc import Iterable

PAGE_SIZE = 100
MAX_HITS = 10_000
MAX_PAGES = MAX_HITS // PAGE_SIZE


def page_key(page: int) -> str:
    """Zero-padded so S3 listings and the UI sort pages in order."""
    return f"{page:04d}"


def page_number(key: str) -> int:
    return int(key)


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
