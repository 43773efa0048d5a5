"""A small dataset written by hand in the exact layout of the design: images/ + moon_dataset.parquet."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random

import pandas as pd
from PIL import Image, ImageDraw

from nasa_assets.dataset import tables
from nasa_assets.dataset.keys import image_key, table_key
from nasa_assets.storage import ObjectStore


def picture(seed: int, size=(1600, 1200)) -> Image.Image:
    """A smooth picture with a few shapes: different seeds give visibly different pictures."""
    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    w, h = size
    for _ in range(6):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(w // 10, w // 3)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


# (nasa_id, split, format): ids with dots, spaces and a comma as NASA has them.
ITEMS = [
    ("PIA12235", "train", "JPEG"),
    ("NHQ_2018_0126_Jan. 31, 2018 Super Blue Blood Moon", "train", "JPEG"),
    ("as11-40-5874", "train", "PNG"),
    ("iss026-s-001", "train", "JPEG"),
    ("sts065-05-037", "train", "JPEG"),
    ("201407220003HQ", "validation", "JPEG"),
    ("jsc2007e034221", "test", "JPEG"),
]


def write_small_dataset(store: ObjectStore, items=ITEMS, size=(320, 240)) -> tuple[pd.DataFrame, dict[str, bytes]]:
    """Store one image per item and the manifest; returns (manifest, nasa_id -> image bytes)."""
    rows, images = [], {}
    for n, (nasa_id, split, fmt) in enumerate(items):
        image = picture(n, size)
        noise = Image.effect_noise(size, 30).convert("RGB")
        image = Image.blend(image, noise, 0.2)
        data = encoded(image, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        ext = "jpg" if fmt == "JPEG" else "png"
        key = image_key(nasa_id, f"https://images-assets.nasa.gov/image/x/x~large.{ext}")
        store.put_bytes(key, data)
        images[nasa_id] = data
        rows.append({
            "nasa_id": nasa_id, "split": split, "page": 1, "title": f"Picture {n}",
            "description": f"Picture {n} of the Moon. Photo Credit: (NASA/Bill Ingalls)",
            "date_created": dt.datetime(2019, 7, 18, tzinfo=dt.timezone.utc), "center": "HQ",
            "keywords": ["Moon", f"k{n}"], "photographer": None, "location": None,
            "image_key": key, "image_uri": store.uri(key), "rendition": "large",
            "source_url": f"https://images-assets.nasa.gov/image/{n}~large.{ext}", "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "width": size[0], "height": size[1],
            "format": fmt,
        })
    manifest = tables.frame("moon_dataset", rows)
    tables.write_table(store, table_key("moon_dataset"), "moon_dataset", manifest)
    return manifest, images
