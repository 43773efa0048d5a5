"""The dataset as a Hugging Face `datasets.Dataset` (optional extra: pip install "nasa_assets[hf]").

    from nasa_assets.dataset.hf import load_hf_dataset

    train = load_hf_dataset("s3://my-bucket/moon_dataset", split="train")
    train[0]["image"]      # PIL.Image.Image, decoded on access
    train[0]["caption"]    # str

Works offline: nothing is fetched from the Hugging Face Hub. The images are copied once into
datasets' Arrow cache (HF_DATASETS_CACHE, or `cache_dir`); loading the same manifest again
reuses it.
"""

from __future__ import annotations

import hashlib
import os
import re

from nasa_assets.dataset import tables
from nasa_assets.dataset.captions import caption
from nasa_assets.dataset.keys import MANIFEST_KEY
from nasa_assets.dataset.loader import load_manifest, of_split, open_store
from nasa_assets.dataset.webdataset_export import manifest_version, read_image
from nasa_assets.storage import ObjectStore

# Bumped when the examples change shape, so an older cached copy is not reused.
LOADER_VERSION = "1"
TEXT_COLUMNS = ("nasa_id", "split", "caption", "title", "description", "center", "photographer",
                "location", "sha256", "format", "image_key")
OPTIONAL_TEXT_COLUMNS = ("phash", "duplicate_group")
INT_COLUMNS = ("width", "height", "bytes", "page")

__all__ = ["load_hf_dataset"]


def _datasets():
    try:
        import datasets
    except ImportError:
        raise ImportError(
            'load_hf_dataset needs the Hugging Face datasets library: pip install "nasa_assets[hf]"'
        ) from None
    return datasets


def _features(datasets, optional: tuple[str, ...]):
    value = datasets.Value
    return datasets.Features({
        "image": datasets.Image(),
        **{name: value("string") for name in (*TEXT_COLUMNS, *optional)},
        "keywords": datasets.List(value("string")),
        "date_created": value("timestamp[us, tz=UTC]"),
        **{name: value("int64") for name in INT_COLUMNS},
    })


def _examples(store: ObjectStore, split: str | None, optional: tuple[str, ...], verify: bool):
    manifest = load_manifest(store)
    manifest = of_split(manifest, split)
    for row in tables.records(manifest):
        data = read_image(store, row, verify)
        if row.get("caption") is None:
            row["caption"] = caption(row.get("title"), row.get("description"), row.get("keywords"))
        example = {name: row.get(name) for name in (*TEXT_COLUMNS, *optional, *INT_COLUMNS)}
        example["keywords"] = list(row.get("keywords") or [])
        example["date_created"] = row.get("date_created")
        example["image"] = {"bytes": data, "path": os.path.basename(row["image_key"])}
        yield example


def load_hf_dataset(
    root: str | os.PathLike | ObjectStore,
    split: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    verify: bool = True,
):
    """The manifest and its images (or one split's) as a `datasets.Dataset`, manifest order.

    Columns: image (an `Image()` feature: PIL images on access), caption, nasa_id, split, title,
    description, keywords, date_created, center, photographer, location, width, height, bytes,
    page, sha256, format, image_key, and phash and duplicate_group when the manifest has them.
    With `verify` each image's size and sha256 are checked against the manifest (ValueError on a
    mismatch). Raises FileNotFoundError when there is no manifest at `root`, ValueError for an
    unknown split, ImportError without the `hf` extra.
    """
    datasets = _datasets()
    store = open_store(root)
    manifest = load_manifest(store)
    of_split(manifest, split)  # an unknown split fails here, before anything is built
    optional = tuple(name for name in OPTIONAL_TEXT_COLUMNS if name in manifest.columns)
    # The manifest's own hash names the cached copy: a rebuilt manifest gets a new one, the same
    # manifest reuses it. (datasets would otherwise hash the store object, which is not stable.)
    key = f"{LOADER_VERSION}:{manifest_version(store, MANIFEST_KEY)}:{split}:{verify}"
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:32]
    # "all" is reserved by datasets; the whole manifest is called "full".
    name = split if split and re.fullmatch(r"\w+", split) and split != "all" else "full"
    return datasets.Dataset.from_generator(
        _examples,
        features=_features(datasets, optional),
        cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
        gen_kwargs={"store": store, "split": split, "optional": optional, "verify": verify},
        split=datasets.NamedSplit(name),
        fingerprint=fingerprint,
    )
