"""Duplicate groups and splits that keep each group in one split.

NASA holds one photograph under several ids (re-scans, crops, re-exports). Splitting by nasa_id
alone would put copies of one picture in train and in test. Here images with the same bytes
(sha256) or a close perceptual hash (phash.py; Hamming distance <= threshold) form one group, and
the split is drawn per group.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping

from nasa_assets.dataset.phash import HASH_BITS, hamming, phash_of, phashes_of_stored
from nasa_assets.dataset.phash import DRAFT_SIZE as DRAFT_SIZE
from nasa_assets.dataset.sampling import split_for

DEFAULT_THRESHOLD = 6

# hamming, phash_of, phashes_of_stored and DRAFT_SIZE live in phash.py, still importable from here.
__all__ = [
    "DEFAULT_THRESHOLD", "assign_splits", "duplicate_counts", "example_pairs", "group_duplicates",
    "groups_across_splits", "hamming", "near_pairs", "phash_of", "phashes_of_stored",
]


def groups_across_splits(rows: Iterable[Mapping]) -> dict[str, list[str]]:
    """duplicate_group -> its splits, for every group whose members are in more than one split."""
    splits: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        splits[row["duplicate_group"]].add(str(row["split"]))
    return {group: sorted(names) for group, names in sorted(splits.items()) if len(names) > 1}


def _bands(threshold: int) -> list[tuple[int, int]]:
    """threshold + 1 disjoint bit ranges covering all 64 bits, as (shift, mask)."""
    count = min(threshold + 1, HASH_BITS)
    bounds = [round(i * HASH_BITS / count) for i in range(count + 1)]
    return [(lo, (1 << (hi - lo)) - 1) for lo, hi in zip(bounds, bounds[1:])]


def near_pairs(
    hashes: Iterable[str], threshold: int = DEFAULT_THRESHOLD
) -> Iterator[tuple[str, str, int]]:
    """Every pair of distinct hashes within `threshold` bits, as (smaller, larger, distance).

    Multi-index hashing: with the 64 bits cut into threshold + 1 bands, two hashes at most
    `threshold` bits apart agree exactly on at least one band (pigeonhole), so only hashes sharing
    a band value are compared.
    """
    if not 0 <= threshold < HASH_BITS:
        raise ValueError(f"threshold must be in 0..{HASH_BITS - 1}, got {threshold}")
    values = sorted({int(h, 16) for h in hashes})
    bands = _bands(threshold)
    index: list[dict[int, list[int]]] = [defaultdict(list) for _ in bands]
    for i, value in enumerate(values):
        seen: set[int] = set()
        for (shift, mask), table in zip(bands, index):
            bucket = table[(value >> shift) & mask]
            for j in bucket:
                if j not in seen:
                    seen.add(j)
                    distance = (values[j] ^ value).bit_count()
                    if distance <= threshold:
                        yield f"{values[j]:016x}", f"{value:016x}", distance
            bucket.append(i)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller id stays the root, so a group's root is its smallest nasa_id.
            self.parent[max(ra, rb)] = min(ra, rb)


def _by(rows: list[Mapping], column: str) -> dict[str, list[str]]:
    """value -> nasa_ids having it; phash values normalized to 16 lower-case hex digits."""
    out: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        value = row.get(column)
        if not isinstance(value, str) or not value:
            continue  # no hash (a failed decode): the image can only be an exact duplicate
        if column == "phash":
            try:
                number = int(value, 16)
                if number >> HASH_BITS:
                    raise ValueError
                value = f"{number:016x}"
            except ValueError:
                raise ValueError(f"phash of {row['nasa_id']!r} is not hex: {value!r}") from None
        out[value].append(row["nasa_id"])
    return out


def group_duplicates(rows: Iterable[Mapping], threshold: int = DEFAULT_THRESHOLD) -> dict[str, str]:
    """nasa_id -> duplicate_group for rows carrying nasa_id, sha256 and phash (hex or None).

    Images with the same sha256, or with perceptual hashes at most `threshold` bits apart, are in
    one group, transitively. A group's id is its smallest nasa_id, so an image without duplicates
    is its own group.
    """
    rows = list(rows)
    groups = _UnionFind()
    for row in rows:
        groups.find(row["nasa_id"])
    for column in ("sha256", "phash"):  # equal phash = distance 0
        for ids in _by(rows, column).values():
            for other in ids[1:]:
                groups.union(ids[0], other)
    by_phash = _by(rows, "phash")
    for a, b, _ in near_pairs(by_phash, threshold):
        groups.union(by_phash[a][0], by_phash[b][0])
    return {row["nasa_id"]: groups.find(row["nasa_id"]) for row in rows}


def assign_splits(
    groups: Mapping[str, str], fractions: dict[str, float], seed: str | None = None
) -> dict[str, str]:
    """nasa_id -> split, drawn by a stable hash of the image's duplicate group.

    The same fractions and hash as the per-nasa_id split (`sampling.split_for`): an image without
    duplicates keeps the split it had before grouping. A `seed` draws a different assignment.
    """
    memo: dict[str, str] = {}
    out = {}
    for nasa_id, group in groups.items():
        if group not in memo:
            memo[group] = split_for(group if seed is None else f"{seed}\x00{group}", fractions)
        out[nasa_id] = memo[group]
    return out


def duplicate_counts(rows: Iterable[Mapping], groups: Mapping[str, str]) -> dict[str, int]:
    """How many images, groups, extra exact copies (same bytes) and extra near copies there are.

    images - groups = exact_copies + near_copies: every image beyond the first of its group is a
    copy, exact when its bytes equal another member's. largest_group is worth watching: one huge
    group (chained near duplicates) would put a large share of the images in one split.
    """
    rows = list(rows)
    sizes: dict[str, int] = defaultdict(int)
    for group in groups.values():
        sizes[group] += 1
    files = {(groups[r["nasa_id"]], r.get("sha256") or r["nasa_id"]) for r in rows}
    exact = len(rows) - len(files)
    return {
        "images": len(rows),
        "groups": len(sizes),
        "duplicate_groups": sum(1 for n in sizes.values() if n > 1),
        "images_in_duplicate_groups": sum(n for n in sizes.values() if n > 1),
        "exact_copies": exact,
        "near_copies": len(rows) - len(sizes) - exact,
        "largest_group": max(sizes.values(), default=0),
    }


def example_pairs(
    rows: Iterable[Mapping], threshold: int = DEFAULT_THRESHOLD, limit: int = 3
) -> dict[str, list[dict]]:
    """Up to `limit` exact and `limit` near pairs for the dataset card, one per group.

    {"exact": [{"a": id, "b": id, "distance": 0}, ...], "near": [{"a", "b", "distance"}, ...]};
    a near pair's files differ (different sha256).
    """
    rows = list(rows)
    exact = sorted(tuple(sorted(ids)[:2]) for ids in _by(rows, "sha256").values() if len(ids) > 1)
    sha = {r["nasa_id"]: r.get("sha256") for r in rows}
    by_phash = {h: sorted(ids) for h, ids in _by(rows, "phash").items()}
    near = []
    for h, ids in by_phash.items():  # same hash, different files
        other = next((i for i in ids[1:] if sha[i] != sha[ids[0]]), None)
        if other:
            near.append((0, ids[0], other))
    for a, b, distance in near_pairs(by_phash, threshold):
        near.append((distance, *sorted((by_phash[a][0], by_phash[b][0]))))
    picked: dict[str, list[dict]] = {"exact": [], "near": []}
    groups = group_duplicates(rows, threshold)
    used: set[str] = set()
    for a, b in exact:
        if len(picked["exact"]) < limit and groups[a] not in used:
            used.add(groups[a])
            picked["exact"].append({"a": a, "b": b, "distance": 0})
    used.clear()
    for distance, a, b in sorted(near, key=lambda p: (p[1], p[2])):
        if len(picked["near"]) < limit and groups[a] not in used and sha[a] != sha[b]:
            used.add(groups[a])
            picked["near"].append({"a": a, "b": b, "distance": distance})
    return picked
