"""Captions, perceptual hashes, duplicate groups and the WebDataset export, through real
materializations against the NASA double, on a local folder and on moto's S3."""

import hashlib
import json
import os
import re
from urllib.parse import unquote

import dagster as dg
import pandas as pd
import pytest
import webdataset as wds

from nasa_assets.dataset.captions import caption
from nasa_assets.dataset.datasets import parse_split_fractions
from nasa_assets.dataset.duplicates import phash_of
from nasa_assets.dataset.sampling import split_for
from nasa_assets.dataset.tables import SCHEMAS
from nasa_assets.dataset.webdataset_export import sample_key, stale_reason
from nasa_assets.defs.assets.moon_dataset import moon_dataset
from nasa_assets.defs.assets.moon_dataset_card import moon_dataset_card
from nasa_assets.defs.assets.moon_dataset_checks import (
    NO_GROUP_ACROSS_SPLITS,
    check_groups_within_splits,
)
from nasa_assets.defs.assets.moon_webdataset import moon_webdataset
from nasa_assets.defs.settings import resources_from_env
from nasa_assets.defs.settings_spec import DEFAULT_SPLIT_FRACTIONS
from nasa_assets.storage import LocalStore, S3Store
from nasa_assets_tests.helpers import PAGE_ASSETS, copy_folder, local_env, materialize_pages

FRACTIONS = parse_split_fractions(DEFAULT_SPLIT_FRACTIONS)
ASSETS = [*PAGE_ASSETS, moon_dataset, moon_dataset_card, moon_webdataset]


def build(env: dict, *selection):
    """One run of the selected downstream assets (pages are read from storage); moon_dataset
    comes with its card."""
    if "moon_dataset" in selection:
        selection += ("moon_dataset_card",)
    return dg.materialize(ASSETS, selection=list(selection), resources=resources_from_env(env),
                          raise_on_error=False)


def metadata(result, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def plant_copies(double) -> tuple[str, str, str]:
    """Three items of page 1 that resolve their files through collection.json: the second is
    served the first's exact file, the third the first's picture at another size."""
    ids = [item["data"][0]["nasa_id"] for item in double.corpus()[:100] if len(item["links"]) == 1]
    original, exact, near = ids[3], ids[7], ids[11]
    folder = f"{double.base_url}/image/{original}"
    double.set_collection(exact, [f"{folder}/{original}~large.jpg"])
    double.set_collection(near, [f"{folder}/{original}~medium.jpg"])
    return original, exact, near


def store_of(env: dict):
    """The project's own store for the settings of conftest's `target` (local folder or moto)."""
    return resources_from_env(env)["storage"].store()


# Duplicate groups are dataset logic: the tests that share this build run on a local folder
# (test_dataset.py and test_two_datasets.py build moon_dataset on S3).
@pytest.fixture(scope="module")
def planted_once(tmp_path_factory, module_doubles):
    """Page 1 with `plant_copies`' three items, and moon_dataset built from it, once per module:
    (settings, root, (original, exact, near), the build's result)."""
    double = module_doubles()
    root = tmp_path_factory.mktemp("planted") / "dataset"
    env = local_env(double, root)
    planted = plant_copies(double)
    assert materialize_pages(env, "0001").success
    result = build(env, "moon_dataset")
    assert result.success
    return env, root, planted, result


@pytest.fixture
def planted(planted_once, tmp_path):
    """A folder copy of `planted_once`, for a test that writes to it: (settings, store, ids)."""
    env, root, ids, _ = planted_once
    env = copy_folder(env, root, tmp_path / "dataset")
    return env, store_of(env), ids


def test_moon_dataset_hashes_groups_copies_and_keeps_them_in_one_split(planted, planted_once):
    env, store, (original, exact, near) = planted
    result = planted_once[3]

    table = store.read_parquet("moon_dataset.parquet")
    assert list(table.columns) == [f.name for f in SCHEMAS["moon_dataset"]]
    assert len(table) == 100
    rows = table.set_index("nasa_id")
    for nasa_id, row in rows.iterrows():
        data = store.get_bytes(row["image_key"])
        assert row["phash"] == phash_of(data) and re.fullmatch(r"[0-9a-f]{16}", row["phash"])
        assert row["caption"] == caption(row["title"], row["description"], list(row["keywords"]))
        assert row["split"] == split_for(row["duplicate_group"], FRACTIONS)

    # The planted copies: one group named by its smallest id, one split.
    assert rows.loc[exact, "sha256"] == rows.loc[original, "sha256"]
    assert rows.loc[near, "sha256"] != rows.loc[original, "sha256"]
    group = min(original, exact, near)
    assert set(rows.loc[[original, exact, near], "duplicate_group"]) == {group}
    assert len(set(rows.loc[[original, exact, near], "split"])) == 1
    others = rows.drop(index=[original, exact, near])
    assert (others["duplicate_group"] == others.index).all()  # the double's other pictures differ

    meta = metadata(result, "moon_dataset")
    assert (meta["exact_copies"], meta["near_copies"], meta["duplicate_groups"]) == (1, 1, 1)
    assert (meta["largest_duplicate_group"], meta["phash_computed"], meta["phash_missing"]) == (3, 99, 0)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks[NO_GROUP_ACROSS_SPLITS].passed
    assert checks[NO_GROUP_ACROSS_SPLITS].metadata["groups"].value == 98

    # The card counts them and shows the pairs as thumbnails relative to the card.
    card = store.get_bytes("README.md").decode()
    assert "| exact copies (same bytes as another image of their group) | 1 |" in card
    assert "| near copies (other bytes, perceptually the same) | 1 |" in card
    assert "## Captions" in card
    thumbnails = re.findall(r'<img src="([^"]+)"', card)
    assert len(thumbnails) == 4
    assert {unquote(t) for t in thumbnails} == set(rows.loc[[original, exact, near], "image_key"])
    assert all(store.exists(unquote(t)) for t in thumbnails)

    # A rebuild decodes no image it hashed before, and writes the same bytes (so the export,
    # which follows the table's sha256, is not rebuilt for nothing).
    published = store.get_bytes("moon_dataset.parquet")
    again = build(env, "moon_dataset")
    assert (metadata(again, "moon_dataset")["phash_computed"],
            metadata(again, "moon_dataset")["phash_reused"]) == (0, 100)
    assert store.get_bytes("moon_dataset.parquet") == published


def test_the_hf_loader_carries_the_new_columns(planted_once, tmp_path):
    from nasa_assets.dataset import load_hf_dataset

    env, root, _, _ = planted_once
    table = store_of(env).read_parquet("moon_dataset.parquet")
    train = table[table["split"] == "train"]
    ds = load_hf_dataset(root, split="train", cache_dir=tmp_path / "cache")
    for column in ("nasa_id", "caption", "phash", "duplicate_group"):
        assert ds[column] == list(train[column]), column


def test_the_check_fails_for_a_group_across_splits():
    frame = pd.DataFrame({"nasa_id": ["a", "b", "c", "d"], "duplicate_group": ["a", "a", "c", "d"],
                          "split": ["train", "test", "train", "test"]})
    result = check_groups_within_splits(frame)
    assert not result.passed
    assert result.metadata["groups_across_splits"].value == 1
    assert result.metadata["examples"].value == [{"duplicate_group": "a", "splits": ["test", "train"]}]
    frame.loc[1, "split"] = "train"
    assert check_groups_within_splits(frame).passed


def test_a_group_across_splits_blocks_publication_and_the_export(planted, monkeypatch):
    from nasa_assets.dataset import consolidate as module

    env, store, (original, exact, near) = planted
    published = store.get_bytes("moon_dataset.parquet")
    card = store.get_bytes("README.md")

    # A grouping bug, simulated: one member of the planted group drawn into another split.
    def leaky(groups, fractions, seed=None):
        splits = {i: split_for(g, fractions) for i, g in groups.items()}
        splits[near] = next(name for name in fractions if name != splits[near])
        return splits

    monkeypatch.setattr(module, "assign_splits", leaky)
    result = build(env, "moon_dataset", "moon_webdataset")
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks[NO_GROUP_ACROSS_SPLITS].passed
    assert checks[NO_GROUP_ACROSS_SPLITS].metadata["examples"].value[0]["duplicate_group"] == min(
        original, exact, near)
    assert not result.get_asset_materialization_events()
    assert store.get_bytes("moon_dataset.parquet") == published
    assert store.get_bytes("README.md") == card
    assert not store.exists("webdataset/index.json")


def _shards(store, index) -> dict[str, dict]:
    """Every sample of every listed shard, read by the webdataset library, by nasa_id."""
    if isinstance(store, LocalStore):
        # webdataset 1.0.2 leaves a local file it opened itself unclosed; through a pipe it closes.
        urls = [f"pipe:cat {store.root / s['key']}" for s in index["shards"]]
    else:
        urls = [store.client.generate_presigned_url(
            "get_object", Params={"Bucket": store.bucket, "Key": f"{store.prefix}/{s['key']}"},
            ExpiresIn=600) for s in index["shards"]]
    samples = {}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        samples[meta["nasa_id"]] = {"key": sample["__key__"], "jpg": sample["jpg"], "meta": meta,
                                    "url": sample["__url__"]}
    return samples


def _fingerprints(store, keys) -> dict[str, object]:
    """What changes when an object is written again: a local file's inode (stores replace files),
    or the user metadata this test stamps on an S3 object (a put replaces it)."""
    if isinstance(store, LocalStore):
        return {k: os.stat(store.root / k).st_ino for k in keys}
    return {k: store.client.head_object(Bucket=store.bucket, Key=f"{store.prefix}/{k}")["Metadata"]
            for k in keys}


def _stamp(store, keys) -> None:
    if isinstance(store, S3Store):
        for k in keys:
            key = f"{store.prefix}/{k}"
            store.client.copy_object(Bucket=store.bucket, Key=key, Metadata={"stamp": "first"},
                                     CopySource={"Bucket": store.bucket, "Key": key},
                                     MetadataDirective="REPLACE")


def test_webdataset_export_is_read_back_exactly_and_rebuilt_only_on_change(target, nasa_double):
    # Half of page 1 (about 50 images), 15 samples a shard: several shards in the largest split.
    env = {**target[0], "WEBDATASET_MAX_SHARD_SAMPLES": "15", "SEARCH_RESULT_SAMPLING_FACTOR": "2"}
    store = store_of(env)
    assert materialize_pages(env, "0001").success
    first = build(env, "moon_dataset", "moon_webdataset")
    assert first.success
    table = store.read_parquet("moon_dataset.parquet")
    index = json.loads(store.get_bytes("webdataset/index.json"))
    meta = metadata(first, "moon_webdataset")
    per_split = table["split"].value_counts().to_dict()
    assert meta["rebuilt"] is True and meta["samples_per_split"] == per_split
    assert meta["shards"] == len(index["shards"]) == sum(-(-n // 15) for n in per_split.values())
    assert meta["shards"] > len(per_split)
    assert meta["bytes"] == index["bytes"] == sum(store.size(s["key"]) for s in index["shards"])
    assert meta["skipped"] == 0 and meta["duration_seconds"] >= 0
    assert index["moon_dataset_sha256"] == meta["moon_dataset_sha256"]

    samples = _shards(store, index)
    assert set(samples) == set(table["nasa_id"])
    for row in table.to_dict("records"):
        sample = samples[row["nasa_id"]]
        # The stored image's bytes: the export verified each one against this sha256 (skipped 0).
        assert hashlib.sha256(sample["jpg"]).hexdigest() == row["sha256"]
        assert sample["key"] == sample_key(row["nasa_id"])
        assert f"/{row['split']}/" in sample["url"] or f"%2F{row['split']}%2F" in sample["url"]
        for field in ("split", "caption", "phash", "duplicate_group", "sha256"):
            assert sample["meta"][field] == row[field], field

    # Unchanged moon_dataset: recorded as not rebuilt, no shard or index written again.
    keys = [s["key"] for s in index["shards"]] + ["webdataset/index.json"]
    _stamp(store, keys)
    before = _fingerprints(store, keys)
    second = build(env, "moon_webdataset")
    assert second.success
    assert metadata(second, "moon_webdataset")["rebuilt"] is False
    assert _fingerprints(store, keys) == before

    # A rebuilt moon_dataset with new images (page 2, one item in ten of it): a new export.
    assert materialize_pages({**env, "SEARCH_RESULT_SAMPLING_FACTOR": "10"}, "0002").success
    added = len(store.read_parquet("moon_images/0002.parquet"))
    assert added > 0
    third = build(env, "moon_dataset", "moon_webdataset")
    assert third.success
    meta = metadata(third, "moon_webdataset")
    assert meta["rebuilt"] is True and meta["samples"] == len(table) + added
    assert json.loads(store.get_bytes("webdataset/index.json"))["samples"] == len(table) + added


def test_an_undecodable_image_has_no_phash_and_a_recorded_reason(planted):
    env, store, ids = planted
    # Page 1 stored and no dataset yet: a first build, which has no earlier hash to reuse.
    store.delete("moon_dataset.parquet")
    store.delete("README.md")
    images = store.read_parquet("moon_images/0001.parquet")
    victim = images[~images["nasa_id"].isin(ids)].iloc[4]  # not one of the planted copies
    store.put_bytes(victim["image_key"], b"<html>an error page, not an image</html>")

    result = build(env, "moon_dataset", "moon_webdataset")
    assert result.success  # uris_exist fails (size), but it does not block
    table = store.read_parquet("moon_dataset.parquet").set_index("nasa_id")
    assert table["phash"].isna().sum() == 1 and pd.isna(table.loc[victim["nasa_id"], "phash"])
    assert table.loc[victim["nasa_id"], "duplicate_group"] == victim["nasa_id"]
    meta = metadata(result, "moon_dataset")
    assert meta["phash_missing"] == 1
    assert meta["phash_missing_examples"] == [{
        "nasa_id": victim["nasa_id"],
        "reason": "cannot compute a perceptual hash of the data: not an image format Pillow can read"}]
    # The export leaves it out, saying why.
    export = metadata(result, "moon_webdataset")
    assert export["samples"] == 99 and export["skipped"] == 1
    assert export["skipped_examples"][0]["nasa_id"] == victim["nasa_id"]
    assert "does not match the manifest" in export["skipped_examples"][0]["reason"]


def test_stale_reason_names_what_changed(tmp_path):
    store = LocalStore(tmp_path)
    store.put_bytes("webdataset/train/train-000000.tar", b"x" * 10)
    index = {"format_version": 1, "moon_dataset_sha256": "v1", "max_shard_bytes": 1 << 30,
             "max_shard_samples": 10, "shards": [{"key": "webdataset/train/train-000000.tar",
                                                 "bytes": 10}]}
    assert stale_reason(store, index, "v1", 1 << 30, 10) is None
    assert stale_reason(store, None, "v1", 1 << 30, 10) == "no export yet"
    assert stale_reason(store, index, "v2", 1 << 30, 10) == "moon_dataset changed"
    assert stale_reason(store, index, "v1", 1 << 30, 11).startswith("shard bounds changed")
    assert stale_reason(store, {**index, "format_version": 0}, "v1", 1 << 30, 10) == (
        "export format 0 is not 1")
    store.put_bytes("webdataset/train/train-000000.tar", b"x" * 9)
    assert stale_reason(store, index, "v1", 1 << 30, 10) == (
        "1 shards missing or of another size, e.g. webdataset/train/train-000000.tar")
    store.delete("webdataset/train/train-000000.tar")
    assert stale_reason(store, index, "v1", 1 << 30, 10).startswith("1 shards missing")


def test_webdataset_export_without_a_dataset_fails_with_a_clear_message(tmp_path, nasa_double):
    result = build(local_env(nasa_double, tmp_path / "empty"), "moon_webdataset")
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "materialize moon_dataset first" in failure.event_specific_data.error.message


@pytest.mark.parametrize("name,value", [
    ("DUPLICATE_MAX_DISTANCE", "-1"), ("DUPLICATE_MAX_DISTANCE", "64"), ("DUPLICATE_MAX_DISTANCE", "x"),
    ("WEBDATASET_MAX_SHARD_BYTES", "1000"), ("WEBDATASET_MAX_SHARD_SAMPLES", "0"),
])
def test_bad_curation_settings_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        resources_from_env({name: value})
