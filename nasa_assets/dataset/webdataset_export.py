"""WebDataset tar shards of the dataset, one series per split, written through the dataset's store.

    <root>/webdataset/<split>/<split>-000000.tar    samples <key>.<ext> + <key>.json
    <root>/webdataset/index.json                   shards, counts, bytes, the manifest version

Shards are written to a temporary file each and stored with one put (webdataset_shards.py), so a
shard is never held in memory and never appears half-written. index.json is written after every
shard it lists.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping

import pandas as pd

from nasa_assets.dataset import tables
from nasa_assets.dataset.captions import caption
from nasa_assets.dataset.webdataset_shards import Shard, shard_index
from nasa_assets.storage import ObjectStore

# Where these lived before webdataset_shards.py; still importable from here.
from nasa_assets.dataset.webdataset_shards import FORMAT_VERSION as FORMAT_VERSION
from nasa_assets.dataset.webdataset_shards import SPOOL_BYTES as _SPOOL_BYTES  # noqa: F401

PREFIX = "webdataset"
INDEX_NAME = "index.json"
DEFAULT_MAX_SHARD_BYTES = 1 << 30       # 1 GiB: WebDataset's usual shard size is 100 MB..several GB
DEFAULT_MAX_SHARD_SAMPLES = 10_000
MIN_SHARD_BYTES = 1 << 16
# What the json member of a sample carries, when the manifest has the column.
JSON_FIELDS = (
    "nasa_id", "split", "caption", "title", "description", "keywords", "date_created", "center",
    "photographer", "location", "duplicate_group", "phash", "sha256", "bytes", "width", "height",
    "format", "rendition", "source_url", "image_key",
)
_KEY_SAFE = re.compile(r"[A-Za-z0-9_-]{1,120}")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

__all__ = ["DEFAULT_MAX_SHARD_BYTES", "DEFAULT_MAX_SHARD_SAMPLES", "INDEX_NAME", "PREFIX",
           "manifest_version", "read_image", "read_index", "sample_key", "write_webdataset"]


def sample_key(nasa_id: str) -> str:
    """A WebDataset key for nasa_id: no dot (WebDataset splits a name at its first dot), no slash,
    unique per id. Ids of letters, digits, "_" and "-" are kept as they are; any other gets a slug
    plus a hash, joined by "~", which a kept id cannot contain."""
    if _KEY_SAFE.fullmatch(nasa_id):
        return nasa_id
    slug = _KEY_UNSAFE.sub("_", nasa_id).strip("_-")[:80] or "id"
    return f"{slug}~{hashlib.sha256(nasa_id.encode('utf-8', 'surrogatepass')).hexdigest()[:24]}"


def manifest_version(store: ObjectStore, key: str = "moon_dataset.parquet") -> str:
    """The sha256 of the manifest object: the version an export was built from."""
    digest = hashlib.sha256()
    for chunk in store.iter_chunks(key):
        digest.update(chunk)
    return digest.hexdigest()


def read_index(store: ObjectStore, prefix: str = PREFIX) -> dict | None:
    """The stored index.json, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(store.get_bytes(f"{prefix}/{INDEX_NAME}"))
    except (FileNotFoundError, ValueError):
        return None


def _json_value(value):
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _metadata(row: dict) -> bytes:
    meta = {name: row.get(name) for name in JSON_FIELDS if name in row}
    if meta.get("caption") is None:
        meta["caption"] = caption(row.get("title"), row.get("description"), row.get("keywords"))
    return json.dumps(meta, default=_json_value, ensure_ascii=False, sort_keys=True).encode()


def _order(nasa_id: str) -> bytes:
    return hashlib.sha256(b"webdataset-order:" + nasa_id.encode("utf-8", "surrogatepass")).digest()


def read_image(store: ObjectStore, row: Mapping, verify: bool = True) -> bytes:
    """The bytes at the row's image_key; with `verify`, checked against its bytes and sha256.

    Raises FileNotFoundError when the object is missing and ValueError when it differs.
    """
    data = store.get_bytes(row["image_key"])
    if verify and row.get("bytes") is not None and len(data) != row["bytes"]:
        raise ValueError(f"{store.uri(row['image_key'])} does not match the manifest: "
                         f"{len(data)} bytes stored, {row['bytes']} recorded")
    if verify and row.get("sha256") and hashlib.sha256(data).hexdigest() != row["sha256"]:
        raise ValueError(
            f"{store.uri(row['image_key'])} does not match the manifest: sha256 differs"
        )
    return data


def write_webdataset(
    store: ObjectStore,
    manifest: pd.DataFrame | Iterable[Mapping],
    *,
    version: str,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    max_shard_samples: int = DEFAULT_MAX_SHARD_SAMPLES,
    prefix: str = PREFIX,
) -> dict:
    """Write the manifest's images as WebDataset shards per split under `prefix`; returns the index.

    Images are read from `store` at each row's image_key and checked against its bytes and
    sha256; a row whose image is missing or differs is left out and listed under "skipped" with
    its reason. Within a split, samples follow a fixed pseudo-random order (a hash of nasa_id),
    so neighbouring pages do not fill a shard. A shard closes before it would pass
    `max_shard_bytes` or hold `max_shard_samples` samples; a single sample larger than the byte
    bound gets a shard of its own. Shards left from an earlier, larger export are deleted after
    the new index is written. `version` (e.g. `manifest_version(store)`) is recorded in the index.
    """
    if max_shard_bytes < MIN_SHARD_BYTES:
        raise ValueError(
            f"max_shard_bytes must be at least {MIN_SHARD_BYTES}, got {max_shard_bytes}"
        )
    if max_shard_samples < 1:
        raise ValueError(f"max_shard_samples must be at least 1, got {max_shard_samples}")
    if not isinstance(manifest, pd.DataFrame):
        manifest = pd.DataFrame([dict(r) for r in manifest])
    rows = tables.records(manifest)
    by_split: dict[str, list[dict]] = {}
    for row in rows:
        split = row.get("split")
        if not isinstance(split, str) or not _SPLIT_NAME.fullmatch(split):
            raise ValueError(f"split of {row.get('nasa_id')!r} is not a usable name: {split!r}")
        by_split.setdefault(split, []).append(row)
    seen: set[str] = set()
    for row in rows:
        if row["nasa_id"] in seen:
            raise ValueError(f"nasa_id {row['nasa_id']!r} appears twice in the manifest")
        seen.add(row["nasa_id"])
    shards: list[dict] = []
    skipped: list[dict] = []
    for split in sorted(by_split):
        shard = Shard(split, 0, prefix)
        for row in sorted(by_split[split], key=lambda r: _order(r["nasa_id"])):
            key = sample_key(row["nasa_id"])
            try:
                data = read_image(store, row)
            except FileNotFoundError:
                reason = f"missing: {store.uri(row['image_key'])}"
            except ValueError as error:
                reason = str(error)
            else:
                reason = None
            if reason:
                skipped.append({"nasa_id": row["nasa_id"], "split": split, "reason": reason})
                continue
            meta = _metadata(row)
            full = shard.samples >= max_shard_samples or (
                shard.samples and shard.projected([len(data), len(meta)]) > max_shard_bytes)
            if full:
                shards.append(shard.store(store))
                shard = Shard(split, shard.number + 1, prefix)
            ext = row["image_key"].rsplit(".", 1)[-1].lower() if "." in row["image_key"] else "bin"
            shard.add(f"{key}.{ext}", data)
            shard.add(f"{key}.json", meta)
            shard.samples += 1
        if shard.samples:
            shards.append(shard.store(store))
        else:  # every image of the split was skipped
            shard.file.close()
    index = shard_index(shards, skipped, version, max_shard_bytes, max_shard_samples)
    body = json.dumps(index, indent=2).encode()
    store.put_bytes(f"{prefix}/{INDEX_NAME}", body, "application/json")
    written = {s["key"] for s in shards}
    for key in store.sizes(f"{prefix}/"):
        if key.endswith(".tar") and key not in written:
            store.delete(key)
    return index
