"""Deterministic sampling: an item is kept when a stable hash of its nasa_id lands in bucket 0."""

import hashlib
import random
from collections.abc import Sequence


def sample_bucket(nasa_id: str, factor: int) -> int:
    """The bucket (0..factor-1) of an id; stable across runs, machines and Python versions."""
    if factor < 1:
        raise ValueError(f"sampling factor must be at least 1, got {factor}")
    digest = hashlib.sha256(nasa_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % factor


def is_sampled(nasa_id: str, factor: int) -> bool:
    return sample_bucket(nasa_id, factor) == 0


def split_for(nasa_id: str, fractions: dict[str, float]) -> str:
    """Assign a split name by nasa_id hash; independent of the sampling hash (different salt)."""
    total = sum(fractions.values())
    if total <= 0 or any(v < 0 for v in fractions.values()):
        raise ValueError(f"split fractions must be non-negative and sum above 0: {fractions}")
    digest = hashlib.sha256(b"split:" + nasa_id.encode("utf-8")).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * total
    acc = 0.0
    name = next(iter(fractions))
    for name, frac in fractions.items():
        acc += frac
        if point < acc:
            return name
    return name


def seeded_sample(items: Sequence, k: int) -> list:
    """At most `k` of `items`, the same ones on every run: checks that re-read a sample of stored
    files give the same verdict when run again."""
    return random.Random(0).sample(list(items), min(k, len(items)))
