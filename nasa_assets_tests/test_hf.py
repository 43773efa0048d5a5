"""The Hugging Face loader on a small dataset, local and in S3 (moto)."""

import io
import sys

import datasets
import pytest
from PIL import Image

from nasa_assets.dataset import tables
from nasa_assets.dataset.hf import load_hf_dataset
from nasa_assets.dataset.keys import table_key
from nasa_assets.storage import LocalStore, S3Store
from nasa_assets_tests.small_dataset import ITEMS, write_small_dataset


def _assert_dataset(ds, manifest, images, split=None):
    expected = manifest if split is None else manifest[manifest["split"] == split]
    assert isinstance(ds, datasets.Dataset)
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds["nasa_id"] == list(expected["nasa_id"])
    raw = ds.cast_column("image", datasets.Image(decode=False))
    for example, stored in zip(raw, expected.itertuples()):
        assert example["image"]["bytes"] == images[stored.nasa_id]
        assert example["image"]["path"] == stored.image_key.split("/")[-1]
    for example, stored in zip(ds, expected.itertuples()):
        image = example["image"]
        assert isinstance(image, Image.Image) and image.size == (320, 240)
        with Image.open(io.BytesIO(images[stored.nasa_id])) as original:
            assert image.tobytes() == original.convert(image.mode).tobytes()
        assert example["split"] == stored.split and example["sha256"] == stored.sha256
        n = stored.title.split()[1]
        assert example["caption"] == f"Picture {n} of the Moon."
        assert example["keywords"] == ["Moon", f"k{n}"]
        assert example["date_created"].isoformat() == "2019-07-18T00:00:00+00:00"
        assert (example["width"], example["height"], example["bytes"]) == (320, 240, len(images[stored.nasa_id]))


def test_the_dataset_module_loads_the_same_dataset(tmp_path):
    from nasa_assets import dataset

    store = LocalStore(tmp_path / "root")
    manifest, images = write_small_dataset(store)
    ds = dataset.load_hf_dataset(tmp_path / "root", split="train", cache_dir=tmp_path / "cache")
    _assert_dataset(ds, manifest, images, split="train")


def test_local_dataset_loads_with_images_and_splits(tmp_path):
    store = LocalStore(tmp_path / "root")
    manifest, images = write_small_dataset(store)
    cache = tmp_path / "cache"
    _assert_dataset(load_hf_dataset(str(tmp_path / "root"), cache_dir=cache), manifest, images)
    train = load_hf_dataset(tmp_path / "root", split="train", cache_dir=cache)
    _assert_dataset(train, manifest, images, split="train")
    assert train.split == "train" and len(train) == sum(1 for _, s, _ in ITEMS if s == "train")
    with pytest.raises(ValueError, match="no image in split 'dev'"):
        load_hf_dataset(tmp_path / "root", split="dev", cache_dir=cache)


def test_a_rebuilt_manifest_is_not_served_from_the_cache(tmp_path):
    store = LocalStore(tmp_path / "root")
    manifest, images = write_small_dataset(store)
    cache = tmp_path / "cache"
    assert len(load_hf_dataset(store, cache_dir=cache)) == len(ITEMS)
    assert len(load_hf_dataset(store, cache_dir=cache)) == len(ITEMS)  # from the cache
    smaller = manifest[manifest["nasa_id"] != "PIA12235"]
    tables.write_table(store, table_key("moon_dataset"), "moon_dataset", smaller)
    reloaded = load_hf_dataset(store, cache_dir=cache)
    assert reloaded["nasa_id"] == list(smaller["nasa_id"])


def test_an_image_that_differs_from_the_manifest_is_an_error(tmp_path):
    store = LocalStore(tmp_path / "root")
    manifest, images = write_small_dataset(store)
    key = manifest["image_key"].iloc[0]
    store.put_bytes(key, images[manifest["nasa_id"].iloc[0]][:-1] + b"x")
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as error:
        load_hf_dataset(store, cache_dir=tmp_path / "cache")
    assert "does not match the manifest" in str(error.value.__cause__)
    assert len(load_hf_dataset(store, cache_dir=tmp_path / "cache", verify=False)) == len(ITEMS)


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset manifest"):
        load_hf_dataset(tmp_path, cache_dir=tmp_path / "cache")


def test_s3_dataset_loads(s3_server, s3_client, s3_bucket, tmp_path, monkeypatch):
    manifest, images = write_small_dataset(S3Store(s3_client, s3_bucket, "moon_dataset"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    ds = load_hf_dataset(f"s3://{s3_bucket}/moon_dataset", split="validation", cache_dir=tmp_path / "c")
    _assert_dataset(ds, manifest, images, split="validation")


def test_without_the_extra_the_error_says_what_to_install(tmp_path, monkeypatch):
    write_small_dataset(LocalStore(tmp_path))
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r'pip install "nasa_assets\[hf\]"'):
        load_hf_dataset(tmp_path)
