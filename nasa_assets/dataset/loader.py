"""Read the moon dataset the way a training script wants it.

    from nasa_assets.dataset import load_manifest, iter_images

    manifest = load_manifest("s3://my-bucket/moon_dataset")        # pandas DataFrame
    for row, image in iter_images("s3://my-bucket/moon_dataset", split="train"):
        print(row["nasa_id"], row["title"], image.size)             # dict, PIL.Image.Image

A root is where the dataset card (README.md) and moon_dataset.parquet live: a local folder, a
``file://`` URI, or ``s3://bucket/prefix``. S3 access uses boto3's usual configuration
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile, AWS_REGION, and AWS_ENDPOINT_URL for
S3-compatible stores such as MinIO).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import pandas as pd
from botocore.exceptions import ClientError
from PIL import Image

from nasa_assets.dataset import tables
from nasa_assets.dataset.imaging import open_image
from nasa_assets.dataset.keys import MANIFEST_KEY
from nasa_assets.storage import LocalStore, ObjectStore, S3Store


__all__ = ["load_manifest", "iter_images", "load_hf_dataset", "open_store"]


def open_store(root: str | os.PathLike | ObjectStore) -> ObjectStore:
    """The storage behind a dataset root: a local path, ``file:///abs/path`` or ``s3://bucket/prefix``.

    Raises ValueError for anything else (other schemes, an S3 URI without a bucket).
    """
    if isinstance(root, ObjectStore):
        return root
    if isinstance(root, os.PathLike):
        return LocalStore(os.fspath(root))
    if not isinstance(root, str) or not root.strip():
        raise ValueError(f"a dataset root is a path or a file:// or s3:// URI, got {root!r}")
    parts = urlsplit(root.strip())
    scheme = parts.scheme.lower()
    if scheme == "s3":
        if not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"expected s3://bucket/prefix, got {root!r}")
        import boto3  # here: a local dataset (and the code location) need not load it

        # boto3 reads credentials, region and AWS_ENDPOINT_URL from the environment itself.
        return S3Store(boto3.client("s3"), parts.netloc, unquote(parts.path).strip("/"))
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise ValueError(f"expected file:///absolute/path, got {root!r}")
        return LocalStore(url2pathname(unquote(parts.path)))
    if scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise ValueError(
            f"unsupported dataset root {root!r}: use a local path, file:///abs/path or s3://bucket/prefix"
        )
    return LocalStore(root)


def load_manifest(root: str | os.PathLike | ObjectStore) -> pd.DataFrame:
    """The dataset's manifest, ``<root>/moon_dataset.parquet``: one row per image.

    Columns: nasa_id, split, page, title, description, date_created (UTC), center, keywords,
    photographer, location, image_key (relative to root), image_uri, rendition, source_url, bytes,
    sha256, width, height, format, caption, phash, duplicate_group. See README.md next to it.

    Raises FileNotFoundError (naming the location) when there is no manifest there, and
    ValueError for a root that is not a path, file:// or s3:// URI.
    """
    store = open_store(root)
    try:
        return store.read_parquet(MANIFEST_KEY)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no dataset manifest at {store.uri(MANIFEST_KEY)} (materialize the moon_dataset asset first)"
        ) from None
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise FileNotFoundError(f"no such bucket: {store.root_uri}") from None
        raise


def of_split(manifest: pd.DataFrame, split: str | None) -> pd.DataFrame:
    """The manifest's rows of one split (all rows for None); ValueError naming the splits present
    for a split with no image."""
    if split is None:
        return manifest
    present = sorted(manifest["split"].dropna().unique())
    if split not in present:
        raise ValueError(f"no image in split {split!r}; splits present: {', '.join(present) or 'none'}")
    return manifest[manifest["split"] == split]


def iter_images(
    root: str | os.PathLike | ObjectStore, split: str | None = None, *, verify: bool = True
) -> Iterator[tuple[dict, Image.Image]]:
    """Yield ``(row, image)`` for every image of the manifest (or of one split), in manifest order.

    ``row`` is the manifest row as a dict of plain Python values; ``image`` is a fully loaded
    ``PIL.Image.Image`` read from ``<root>/<image_key>``. With ``verify`` (the default) each file's
    size and sha256 are checked against the row first, and a mismatch raises ValueError. A
    missing file raises FileNotFoundError; an unknown split name raises ValueError.
    """
    store = open_store(root)
    manifest = load_manifest(store)
    for row in tables.records(of_split(manifest, split)):
        data = store.get_bytes(row["image_key"])
        if verify and (len(data) != row["bytes"] or hashlib.sha256(data).hexdigest() != row["sha256"]):
            raise ValueError(
                f"{store.uri(row['image_key'])} does not match the manifest (size or sha256 differ)"
            )
        image = open_image(io.BytesIO(data))  # without Pillow's warning from half the limit
        image.load()
        yield row, image


def load_hf_dataset(
    root: str | os.PathLike | ObjectStore,
    split: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    verify: bool = True,
):
    """The dataset (or one split) as a Hugging Face ``datasets.Dataset`` with an ``Image()`` column.

    Needs the optional extra: ``pip install "nasa_assets[hf]"``. See
    ``nasa_assets.dataset.hf.load_hf_dataset`` for the columns, the cache and the errors.
    """
    # Imported here: nasa_assets.dataset.hf imports this module.
    from nasa_assets.dataset.hf import load_hf_dataset as load

    return load(root, split, cache_dir=cache_dir, verify=verify)
