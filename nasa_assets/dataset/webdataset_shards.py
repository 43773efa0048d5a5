"""WebDataset tar shards being written, and the index.json that lists them.

A shard is written to a temporary file (spilling to disk past SPOOL_BYTES) and stored with one
put, so it is never held in memory whole and never appears half-written. What goes into the
shards is webdataset_export.py.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
from collections.abc import Iterable

from nasa_assets.storage import ObjectStore

FORMAT_VERSION = 1
SPOOL_BYTES = 32 << 20
# Per member: a 512-byte header, possibly a pax header (long name) of 1024, data padded to 512.
# A closed tar ends with two zero blocks, padded to tarfile's 10 KiB record.
_MEMBER_OVERHEAD = 512 + 1024
_TAR_TAIL = tarfile.RECORDSIZE + 1024


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


class Shard:
    """One tar being written to a temporary file."""

    def __init__(self, split: str, number: int, prefix: str):
        self.split, self.number = split, number
        self.key = f"{prefix}/{split}/{split}-{number:06d}.tar"
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        self.tar = tarfile.open(fileobj=self.file, mode="w", format=tarfile.PAX_FORMAT)
        self.samples = 0

    def projected(self, member_sizes: Iterable[int]) -> int:
        members = sum(_MEMBER_OVERHEAD + _padded(n) for n in member_sizes)
        return self.file.tell() + members + _TAR_TAIL

    def add(self, name: str, data: bytes) -> None:
        # Fixed owner, mode and time: the same content gives byte-identical shards.
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o444, 0
        self.tar.addfile(info, io.BytesIO(data))

    def store(self, store: ObjectStore) -> dict:
        self.tar.close()
        size = self.file.tell()
        self.file.seek(0)
        digest = hashlib.sha256()
        while chunk := self.file.read(1 << 20):
            digest.update(chunk)
        self.file.seek(0)
        store.put_file(self.key, self.file, content_type="application/x-tar")
        self.file.close()
        return {"key": self.key, "split": self.split, "samples": self.samples, "bytes": size,
                "sha256": digest.hexdigest()}


def shard_index(shards, skipped, version, max_shard_bytes, max_shard_samples) -> dict:
    """index.json: the shards, per-split counts and brace-notation URLs, what was skipped."""
    splits: dict[str, dict] = {}
    for shard in shards:
        entry = splits.setdefault(shard["split"], {"samples": 0, "shards": 0, "bytes": 0})
        entry["samples"] += shard["samples"]
        entry["shards"] += 1
        entry["bytes"] += shard["bytes"]
    for name, entry in splits.items():
        last = entry["shards"] - 1
        # Brace notation as webdataset.WebDataset expands it, relative to the webdataset folder.
        numbers = f"{{000000..{last:06d}}}" if last else "000000"
        entry["urls"] = f"{name}/{name}-{numbers}.tar"
    return {
        "format": "webdataset",
        "format_version": FORMAT_VERSION,
        "moon_dataset_sha256": version,
        "samples": sum(s["samples"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "max_shard_bytes": max_shard_bytes,
        "max_shard_samples": max_shard_samples,
        "splits": splits,
        "shards": shards,
        "skipped": skipped,
    }
