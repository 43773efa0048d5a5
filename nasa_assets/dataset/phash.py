"""Perceptual hashes of images, from bytes, a file or the store.

What counts as a duplicate, and how the splits keep each group together, is duplicates.py.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import imagehash
from PIL import Image, ImageOps, UnidentifiedImageError

from nasa_assets.dataset.imaging import open_image
from nasa_assets.storage import ObjectStore

HASH_BITS = 64
# pHash looks at a 32x32 reduction; a JPEG decoded at 1/2, 1/4 or 1/8 scale (whichever still
# covers this size) gives the same picture at a fraction of the decoding work.
DRAFT_SIZE = 256


def phash_of(source: str | os.PathLike | bytes | BinaryIO, *, draft: bool = True) -> str:
    """The 64-bit perceptual hash (imagehash's pHash) of an image as 16 hex digits.

    `source` is a path, the file's bytes or a binary stream. With `draft` (the default) a JPEG is
    decoded at reduced scale. Raises ValueError for data that is not a decodable image.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    try:
        with open_image(source) as image:  # the limit ingestion applied, not Pillow's
            if draft:
                # pHash uses luminance only: "L" lets the JPEG decoder skip the colour planes.
                image.draft("L", (DRAFT_SIZE, DRAFT_SIZE))
            image.load()
            upright = ImageOps.exif_transpose(image)
            return str(imagehash.phash(upright))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as error:
        name = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", None)
        # Pillow's own message names the stream object (an address), not the file.
        detail = ("not an image format Pillow can read" if isinstance(error, UnidentifiedImageError)
                  else error)
        raise ValueError(
            f"cannot compute a perceptual hash of {name or 'the data'}: {detail}"
        ) from None


# Each thread holds one whole image in memory while it decodes: bounded here, whatever the download
# concurrency, so a rebuild over large files stays within a run's memory.
MAX_WORKERS = 16


def phashes_of_stored(
    store: ObjectStore, rows: Iterable[Mapping], *, workers: int = 1
) -> tuple[dict[str, str | None], dict[str, str]]:
    """(nasa_id -> phash or None, nasa_id -> reason) for rows' images at their image_key.

    With `workers` > 1 the images are read and hashed in that many threads, at most MAX_WORKERS
    (reads are network round trips on S3, and Pillow decodes without holding the GIL).
    """
    def one(row: Mapping) -> tuple[str, str | None, str | None]:
        try:
            return row["nasa_id"], phash_of(store.get_bytes(row["image_key"])), None
        except FileNotFoundError:
            return row["nasa_id"], None, f"missing: {store.uri(row['image_key'])}"
        except ValueError as error:
            return row["nasa_id"], None, str(error)

    rows = list(rows)
    if workers > 1 and len(rows) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, MAX_WORKERS, len(rows))) as pool:
            results = list(pool.map(one, rows))
    else:
        results = [one(row) for row in rows]
    hashes = {nasa_id: phash for nasa_id, phash, _ in results}
    reasons = {nasa_id: reason for nasa_id, _, reason in results if reason}
    return hashes, reasons


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
