"""Timings of perceptual hashing (JPEG draft vs full decode; moon_dataset's hashing step at 10,000
images, first build and rebuild), duplicate grouping at 10,000 hashes and the WebDataset export of
10,000 images.

    python -m nasa_assets_tests.bench_exports [--images 5] [--dataset-images 10000] [--workers 16]
        [--hashes 10000] [--brute] [--export 10000]

Prints numbers; asserts nothing about speed (the machine is shared).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import random
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from nasa_assets.dataset import tables
from nasa_assets.dataset.consolidate import add_duplicates
from nasa_assets.dataset.duplicates import (
    DEFAULT_THRESHOLD,
    group_duplicates,
    hamming,
    near_pairs,
    phash_of,
)
from nasa_assets.dataset.webdataset_export import write_webdataset
from nasa_assets.storage import LocalStore, ObjectStore
from nasa_assets_tests.small_dataset import picture


def photo_like_jpeg(seed: int, size=(4000, 3000), noise: float = 0.25) -> bytes:
    """A camera-sized JPEG: shapes plus sensor-like noise (more noise, more MB)."""
    base = picture(seed, size)
    grain = Image.effect_noise(size, 40).convert("RGB")
    out = io.BytesIO()
    Image.blend(base, grain, noise).save(out, "JPEG", quality=92)
    return out.getvalue()


def _median_seconds(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_hashing(images: int, repeat: int) -> None:
    print(f"pHash of {images} JPEGs (median of {repeat} runs each)")
    ratios = []
    for seed in range(images):
        data = photo_like_jpeg(seed, noise=(0.25, 0.04)[seed % 2])
        full = _median_seconds(lambda: phash_of(data, draft=False), repeat)
        draft = _median_seconds(lambda: phash_of(data), repeat)
        ratios.append(full / draft)
        distance = hamming(phash_of(data), phash_of(data, draft=False))
        print(f"  {len(data) / 1e6:5.1f} MB 4000x3000: full decode {full * 1000:7.1f} ms, "
              f"draft {draft * 1000:6.1f} ms, x{full / draft:4.1f}, hashes {distance} bits apart")
    print(f"  speed-up: median x{statistics.median(ratios):.1f}")


class MemoryStore(ObjectStore):
    """Objects in a dict: times the decoding and hashing, not a disk or a network."""

    root_uri = "memory://bench"

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects

    def uri(self, key):
        return f"{self.root_uri}/{key}"

    def put_file(self, key, fileobj, *, content_type=None, metadata=None):
        self.objects[key] = fileobj.read()

    def open(self, key):
        if key not in self.objects:
            raise FileNotFoundError(self.uri(key))
        return io.BytesIO(self.objects[key])

    def sizes(self, prefix):
        return {k: len(v) for k, v in self.objects.items() if k.startswith(prefix)}

    def size(self, key):
        return len(self.objects[key]) if key in self.objects else None

    def metadata(self, key):
        return {}

    def delete(self, key):
        self.objects.pop(key, None)


def bench_dataset_hashing(count: int, workers: int, pool: int = 20) -> None:
    """moon_dataset's hashing step (add_duplicates) over `count` "large"-rendition JPEGs
    (1920x1440, `pool` distinct pictures under distinct ids and sha256s): first build, where every
    image is read and hashed in `workers` threads, then a rebuild that reuses the hashes."""
    pictures = [photo_like_jpeg(seed, size=(1920, 1440), noise=0.1) for seed in range(pool)]
    objects, rows = {}, []
    for i in range(count):
        key = f"images/id{i:06d}.jpg"
        objects[key] = pictures[i % pool]
        rows.append({"nasa_id": f"id{i:06d}", "split": "train", "title": f"Image {i}",
                     "description": "A picture. Photo Credit: (NASA/Bench)", "keywords": ["Moon"],
                     "image_key": key, "bytes": len(objects[key]), "sha256": f"{i:064x}"})
    manifest = tables.frame("moon_dataset", rows)
    store = MemoryStore(objects)
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    start = time.perf_counter()
    table, stats = add_duplicates(manifest, store, fractions, DEFAULT_THRESHOLD, {}, workers=workers)
    first = time.perf_counter() - start
    known = dict(zip(table["sha256"], table["phash"]))
    start = time.perf_counter()
    _, again = add_duplicates(manifest, store, fractions, DEFAULT_THRESHOLD, known, workers=workers)
    rebuild = time.perf_counter() - start
    mb = sum(len(p) for p in pictures) / pool / 1e6
    print(f"moon_dataset hashing step, {count} JPEGs of 1920x1440 ({mb:.1f} MB each), "
          f"{workers} threads, in memory:")
    print(f"  first build: {first:.1f} s ({stats['hashed']} decoded: {stats['hash_seconds']:.1f} s "
          f"hashing, {count / stats['hash_seconds']:.0f} images/s; captions, grouping and splits "
          f"{stats['group_seconds']:.1f} s)")
    print(f"  rebuild with every sha256 seen before: {rebuild:.1f} s ({again['hashed']} decoded)")


def bench_grouping(count: int, brute: bool) -> None:
    rng = random.Random(0)
    hashes = [rng.getrandbits(64) for _ in range(count * 9 // 10)]
    while len(hashes) < count:  # 10% near copies of existing hashes, 0..8 bits flipped
        copy = rng.choice(hashes)
        for bit in rng.sample(range(64), rng.randint(0, 8)):
            copy ^= 1 << bit
        hashes.append(copy)
    rows = [{"nasa_id": f"id{i:06d}", "sha256": f"{i % (count - 50):064x}", "phash": f"{h:016x}"}
            for i, h in enumerate(hashes)]
    start = time.perf_counter()
    groups = group_duplicates(rows, DEFAULT_THRESHOLD)
    elapsed = time.perf_counter() - start
    print(f"group_duplicates over {count} images (threshold {DEFAULT_THRESHOLD}): {elapsed:.2f} s, "
          f"{len(set(groups.values()))} groups")
    if brute:
        distinct = sorted({r["phash"] for r in rows})
        start = time.perf_counter()
        found = sum(1 for i, a in enumerate(distinct) for b in distinct[i + 1:]
                    if hamming(a, b) <= DEFAULT_THRESHOLD)
        brute_s = time.perf_counter() - start
        indexed = len(list(near_pairs(distinct, DEFAULT_THRESHOLD)))
        print(f"  brute force over all pairs: {brute_s:.1f} s, {found} near pairs (index: {indexed})")


def bench_export(count: int, image_bytes: int) -> None:
    """write_webdataset over `count` distinct JPEGs in a local store (written straight to disk)."""
    base = photo_like_jpeg(0, size=(400, 300))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        rows = []
        for i in range(count):
            # Distinct files of about the wanted size: the base JPEG plus padding after its end marker.
            data = base + i.to_bytes(8, "big") * max(1, (image_bytes - len(base)) // 8)
            key = f"images/id{i:06d}.jpg"
            (root / key).write_bytes(data)
            split = "train" if i % 10 < 8 else "validation" if i % 10 == 8 else "test"
            rows.append({"nasa_id": f"id{i:06d}", "split": split,
                         "title": f"Image {i}", "description": "A picture. Photo Credit: (NASA/Bench)",
                         "keywords": ["Moon"], "date_created": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
                         "image_key": key, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                         "width": 400, "height": 300, "format": "JPEG"})
        manifest = tables.frame("moon_dataset", rows)
        total = sum(r["bytes"] for r in rows)
        start = time.perf_counter()
        index = write_webdataset(LocalStore(root), manifest, version="bench", max_shard_bytes=256 << 20)
        elapsed = time.perf_counter() - start
    print(f"write_webdataset of {count} images ({total / 1e6:.0f} MB, local store): {elapsed:.1f} s, "
          f"{count / elapsed:.0f} images/s, {total / 1e6 / elapsed:.0f} MB/s, {len(index['shards'])} shards")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nasa_assets_tests.bench_exports")
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dataset-images", type=int, default=10_000,
                        help="images of the moon_dataset hashing step (0 skips it)")
    parser.add_argument("--workers", type=int, default=16, help="its threads (DOWNLOAD_CONCURRENCY)")
    parser.add_argument("--hashes", type=int, default=10_000)
    parser.add_argument("--brute", action="store_true", help="also time the quadratic comparison")
    parser.add_argument("--export", type=int, default=10_000, metavar="N",
                        help="images of the export (0 skips it)")
    parser.add_argument("--export-image-bytes", type=int, default=100_000)
    args = parser.parse_args()
    bench_hashing(args.images, args.repeat)
    if args.dataset_images:
        bench_dataset_hashing(args.dataset_images, args.workers)
    bench_grouping(args.hashes, args.brute)
    if args.export:
        bench_export(args.export, args.export_image_bytes)


if __name__ == "__main__":
    main()
