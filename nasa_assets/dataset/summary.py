"""The counts of one moon_dataset table, shared by the card and the asset's metadata."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

UNKNOWN = "(unknown)"


@dataclass
class Summary:
    """Counts of one manifest, used by the card and the materialization metadata."""

    images: int
    total_bytes: int
    per_split: dict[str, int]
    per_center: dict[str, int]
    per_rendition: dict[str, int]
    per_decade: dict[str, int]
    first_date: str | None
    last_date: str | None


def _counts(values: pd.Series) -> dict[str, int]:
    counts = values.fillna(UNKNOWN).astype(str).replace("", UNKNOWN).value_counts()
    # Largest first, then by name: the same manifest always gives the same order.
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {name: int(n) for name, n in ordered}


def summarize(manifest: pd.DataFrame, split_names: list[str] | None = None) -> Summary:
    """Counts per split, center, rendition and decade, total size and date range."""
    per_split = {name: 0 for name in split_names or []}
    for name, n in _counts(manifest["split"]).items():
        per_split[name] = n
    dates = pd.to_datetime(manifest["date_created"], utc=True)
    decades = (dates.dt.year // 10 * 10).astype("Int64")
    per_decade = {f"{int(d)}s": int(n) for d, n in decades.value_counts().sort_index().items()}
    if dates.isna().any():
        per_decade[UNKNOWN] = int(dates.isna().sum())
    known = dates.dropna()
    return Summary(
        images=len(manifest),
        total_bytes=int(manifest["bytes"].fillna(0).sum()),
        per_split=per_split,
        per_center=_counts(manifest["center"]),
        per_rendition=_counts(manifest["rendition"]),
        per_decade=per_decade,
        first_date=known.min().date().isoformat() if len(known) else None,
        last_date=known.max().date().isoformat() if len(known) else None,
    )


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
