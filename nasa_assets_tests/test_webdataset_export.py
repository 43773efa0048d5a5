"""WebDataset shards written to a local folder and to S3 (moto), read back with `webdataset`."""

import hashlib
import json
import re

import boto3
import pytest
import webdataset as wds

from nasa_assets.dataset.keys import table_key
from nasa_assets.dataset.webdataset_export import (
    _SPOOL_BYTES, manifest_version, read_index, sample_key, write_webdataset,
)
from nasa_assets.storage import LocalStore, S3Store
from nasa_assets.storage.s3 import MULTIPART_THRESHOLD
from nasa_assets_tests.small_dataset import ITEMS, write_small_dataset

EXPORTED = {nasa_id for nasa_id, _, _ in ITEMS} - {"iss026-s-001"}


def _dataset(store):
    manifest, images = write_small_dataset(store)
    store.delete(manifest.loc[manifest["nasa_id"] == "iss026-s-001", "image_key"].item())
    return manifest, images


def _read(urls: list[str] | str) -> dict[str, dict]:
    """Every sample of the shards, as the webdataset library yields them, by nasa_id."""
    out = {}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        image_ext = next(k for k in sample if k in ("jpg", "png"))
        out[meta["nasa_id"]] = {"key": sample["__key__"], "ext": image_ext, "image": sample[image_ext],
                                "meta": meta, "url": sample["__url__"]}
    return out


def _assert_samples(samples, manifest, images):
    assert set(samples) == EXPORTED
    rows = manifest.set_index("nasa_id")
    for nasa_id, sample in samples.items():
        row = rows.loc[nasa_id]
        assert sample["image"] == images[nasa_id]
        assert sample["key"] == sample_key(nasa_id) and "." not in sample["key"]
        assert sample["ext"] == row["image_key"].rsplit(".", 1)[1]
        meta = sample["meta"]
        assert meta["split"] == row["split"] and f"/{row['split']}/" in sample["url"]
        assert (meta["sha256"], meta["width"], meta["height"]) == (row["sha256"], 320, 240)
        assert meta["keywords"] == list(row["keywords"])
        n = row["title"].split()[1]
        assert meta["caption"] == f"Picture {n} of the Moon."  # the description opens with the title
        assert meta["date_created"] == "2019-07-18T00:00:00+00:00"


def _assert_index(index, version):
    assert index["moon_dataset_sha256"] == version
    assert index["samples"] == len(EXPORTED) == sum(s["samples"] for s in index["shards"])
    assert index["skipped"] == [{"nasa_id": "iss026-s-001", "split": "train",
                                 "reason": index["skipped"][0]["reason"]}]
    assert index["skipped"][0]["reason"].startswith("missing: ")
    assert {k: (v["samples"], v["shards"]) for k, v in index["splits"].items()} == {
        "train": (4, 2), "validation": (1, 1), "test": (1, 1)}
    assert [s["key"] for s in index["shards"]] == [
        "webdataset/test/test-000000.tar", "webdataset/train/train-000000.tar",
        "webdataset/train/train-000001.tar", "webdataset/validation/validation-000000.tar"]
    assert [s["samples"] for s in index["shards"]] == [1, 3, 1, 1]
    assert index["splits"]["train"]["urls"] == "train/train-{000000..000001}.tar"


def test_local_shards_read_back_with_webdataset(tmp_path):
    store = LocalStore(tmp_path / "root")
    manifest, images = _dataset(store)
    version = manifest_version(store)
    index = write_webdataset(store, manifest, version=version, max_shard_samples=3)
    _assert_index(index, version)
    assert read_index(store) == index
    sizes = store.sizes("webdataset/")
    assert sizes == {**{s["key"]: s["bytes"] for s in index["shards"]},
                     "webdataset/index.json": sizes["webdataset/index.json"]}
    # webdataset 1.0.2 leaves a local file it opened itself unclosed; through a pipe it closes.
    urls = [f"pipe:cat {store.root / s['key']}" for s in index["shards"]]
    _assert_samples(_read(urls), manifest, images)
    # The index's brace pattern is what webdataset expands.
    pattern = f"pipe:cat {store.root / 'webdataset' / index['splits']['train']['urls']}"
    assert len(_read(pattern)) == 4  # a string is brace-expanded, a list is taken as it is


def test_same_manifest_gives_identical_shards_and_stale_shards_go(tmp_path):
    store = LocalStore(tmp_path / "root")
    manifest, _ = _dataset(store)
    first = write_webdataset(store, manifest, version="v1", max_shard_samples=1)
    assert len(first["shards"]) == 6
    again = write_webdataset(store, manifest, version="v1", max_shard_samples=1)
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in first["shards"]]
    fewer = write_webdataset(store, manifest, version="v2")
    assert sorted(k for k in store.sizes("webdataset/") if k.endswith(".tar")) == sorted(
        s["key"] for s in fewer["shards"]) and len(fewer["shards"]) == 3
    assert read_index(store)["moon_dataset_sha256"] == "v2"


def test_shards_stay_under_the_byte_bound(tmp_path):
    store = LocalStore(tmp_path / "root")
    manifest, images = _dataset(store)
    bound = 1 << 16  # two or three 25 kB JPEGs; the 107 kB PNG alone is over it
    assert len(images["as11-40-5874"]) > bound
    index = write_webdataset(store, manifest, version="v", max_shard_bytes=bound)
    assert index["samples"] == len(EXPORTED)
    over = [s for s in index["shards"] if s["bytes"] > bound]
    assert len(over) == 1 and over[0]["samples"] == 1  # the PNG, in a shard of its own
    assert index["splits"]["train"]["shards"] >= 3
    assert store.sizes("webdataset/train/") == {
        s["key"]: s["bytes"] for s in index["shards"] if s["split"] == "train"}


def test_a_changed_image_is_skipped_with_its_reason(tmp_path):
    store = LocalStore(tmp_path / "root")
    manifest, images = write_small_dataset(store)
    key = manifest.loc[manifest["nasa_id"] == "PIA12235", "image_key"].item()
    store.put_bytes(key, images["PIA12235"][:-1] + b"x")
    index = write_webdataset(store, manifest, version="v")
    assert index["skipped"] == [{"nasa_id": "PIA12235", "split": "train",
                                 "reason": f"{store.uri(key)} does not match the manifest: sha256 differs"}]
    assert index["samples"] == len(ITEMS) - 1


def test_bad_arguments_and_manifests_are_clear_errors(tmp_path):
    store = LocalStore(tmp_path / "root")
    manifest, _ = write_small_dataset(store)
    with pytest.raises(ValueError, match="max_shard_bytes"):
        write_webdataset(store, manifest, version="v", max_shard_bytes=1000)
    with pytest.raises(ValueError, match="max_shard_samples"):
        write_webdataset(store, manifest, version="v", max_shard_samples=0)
    bad = manifest.copy()
    bad.loc[0, "split"] = "../train"
    with pytest.raises(ValueError, match="not a usable name"):
        write_webdataset(store, bad, version="v")
    twice = [*manifest.to_dict("records"), manifest.to_dict("records")[0]]
    with pytest.raises(ValueError, match="appears twice"):
        write_webdataset(store, twice, version="v")
    assert store.sizes("webdataset/") == {}


@pytest.mark.parametrize("nasa_id", ["PIA12235", "a.b", "a b/c", "..", "Ünïcode.jpg", "x" * 200, "~"])
def test_sample_keys_have_no_dot_or_slash_and_stay_unique(nasa_id):
    key = sample_key(nasa_id)
    assert re.fullmatch(r"[A-Za-z0-9_~-]+", key) and len(key) <= 120
    assert sample_key(nasa_id.replace(".", "_")) != key or "." not in nasa_id


def test_s3_shards_stream_from_moto_over_http(s3_server, s3_client, s3_bucket):
    store = S3Store(s3_client, s3_bucket, "moon_dataset")
    manifest, images = _dataset(store)
    version = manifest_version(store)
    index = write_webdataset(store, manifest, version=version, max_shard_samples=3)
    _assert_index(index, version)
    listed = {o["Key"]: o["Size"] for o in s3_client.list_objects_v2(
        Bucket=s3_bucket, Prefix="moon_dataset/webdataset/")["Contents"]}
    assert {k: v for k, v in listed.items() if k.endswith(".tar")} == {
        f"moon_dataset/{s['key']}": s["bytes"] for s in index["shards"]}
    assert json.loads(s3_client.get_object(
        Bucket=s3_bucket, Key="moon_dataset/webdataset/index.json")["Body"].read()) == index
    # A reader with nothing but a URL: presigned GETs, streamed by webdataset's own HTTP opener.
    reader = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    urls = [reader.generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket, "Key": f"moon_dataset/{s['key']}"}, ExpiresIn=600)
        for s in index["shards"]]
    assert all(u.startswith(s3_server) for u in urls)
    _assert_samples(_read(urls), manifest, images)
    assert manifest_version(store) == version
    assert version == hashlib.sha256(store.get_bytes(table_key("moon_dataset"))).hexdigest()


def test_a_shard_past_the_spool_and_multipart_sizes_round_trips_through_s3(
    s3_server, s3_client, s3_bucket
):
    """40 MB in one shard: spilled from memory to a temporary file, uploaded in parts."""
    store = S3Store(s3_client, s3_bucket, "big")
    rows, blobs = [], {}
    for i in range(5):
        data = hashlib.sha256(str(i).encode()).digest() * (8_000_000 // 32)  # 8 MB, not an image
        key = f"images/big{i}.jpg"
        store.put_bytes(key, data)
        blobs[f"big{i}"] = data
        rows.append({"nasa_id": f"big{i}", "split": "train", "title": f"Big {i}", "image_key": key,
                     "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    index = write_webdataset(store, rows, version="v")
    (shard,) = index["shards"]
    assert shard["samples"] == 5 and shard["bytes"] > max(_SPOOL_BYTES, MULTIPART_THRESHOLD)
    head = s3_client.head_object(Bucket=s3_bucket, Key=f"big/{shard['key']}")
    assert head["ContentLength"] == shard["bytes"] and "-" in head["ETag"]  # a multipart upload
    url = s3_client.generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket, "Key": f"big/{shard['key']}"}, ExpiresIn=600)
    samples = {json.loads(s["json"])["nasa_id"]: s["jpg"]
               for s in wds.WebDataset([url], shardshuffle=False)}
    assert samples == blobs
