"""moon_dataset end to end (NASA double + local folder or moto S3), its checks, its automation
condition, and the public loader in nasa_assets.dataset."""

import collections
import hashlib
import io
import shutil
import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest

from nasa_assets import dataset
from nasa_assets.dataset import iter_images, load_manifest
from nasa_assets.dataset.consolidate import build_manifest
from nasa_assets.dataset.datasets import parse_split_fractions
from nasa_assets.dataset.imaging import MAX_PIXELS
from nasa_assets.dataset.sampling import split_for
from nasa_assets.dataset.tables import SCHEMAS, frame
from nasa_assets.defs.assets.moon_dataset import moon_dataset, preview_grid
from nasa_assets.defs.assets.moon_dataset_card import moon_dataset_card
from nasa_assets.defs.settings import resources_from_env
from nasa_assets.defs.settings_spec import DEFAULT_SPLIT_FRACTIONS
from nasa_assets.storage import LocalStore, S3Store
from nasa_assets_tests.helpers import (
    PAGE_ASSETS,
    copy_bucket,
    copy_folder,
    local_env,
    materialize_pages,
    new_bucket,
    s3_env,
)

FRACTIONS = parse_split_fractions(DEFAULT_SPLIT_FRACTIONS)
COLUMNS = [f.name for f in SCHEMAS["moon_dataset"]]
CHECKS = {"unique_nasa_id", "uris_exist", "sha256_sample", "shrink_within_limit",
          "no_duplicate_group_across_splits"}


def materialize_dataset(env: dict, instance=None, sample_size: int | None = None):
    """One run of moon_dataset and its card (the upstream pages are read from storage)."""
    run_config = ({"ops": {"moon_dataset": {"config": {"sha256_sample_size": sample_size}}}}
                  if sample_size is not None else None)
    return dg.materialize(
        [*PAGE_ASSETS, moon_dataset, moon_dataset_card], selection=[moon_dataset, moon_dataset_card],
        resources=resources_from_env(env),
        instance=instance, run_config=run_config, raise_on_error=False,
    )


def dataset_metadata(result) -> dict:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey("moon_dataset")]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def check_results(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def local_target(double, root):
    """(settings, store, root for the loader) of a local dataset folder."""
    return local_env(double, root), LocalStore(root), str(root)


def s3_target(double, server, client, bucket):
    """(settings, store, root URI for the loader) of a dataset under s3://bucket/moon_dataset."""
    return (s3_env(double, server, bucket, prefix="moon_dataset"),
            S3Store(client, bucket, "moon_dataset"), f"s3://{bucket}/moon_dataset")


def build(target, double):
    """Page 1, then 30 new items pushed in front (items 71-100 move onto page 2), then page 2,
    then moon_dataset: the two pages' tables overlap by 30 ids."""
    env, store, root = target
    assert materialize_pages(env, "0001").success
    double.insert_items(30, at=0)
    assert materialize_pages(env, "0002").success
    result = materialize_dataset(env)
    assert result.success
    return env, store, root, result


# One build per backend and module, each with its own double: the tests that only read the result
# share it, and a test that changes the dataset gets a copy (`built_copy`).
@pytest.fixture(scope="module")
def built_local_double(module_doubles):
    """The double of built_local. Only test_split_is_stable_across_rebuilds_and_refreshes asks it
    anything after the build (and changes its corpus); the other tests never do."""
    return module_doubles()


@pytest.fixture(scope="module")
def built_local(tmp_path_factory, built_local_double):
    root = tmp_path_factory.mktemp("built") / "dataset"
    return build(local_target(built_local_double, root), built_local_double)


@pytest.fixture(scope="module")
def built_s3(s3_server, s3_client, module_doubles):
    double = module_doubles()
    return build(s3_target(double, s3_server, s3_client, new_bucket(s3_client)), double)


def _with_endpoint(env, monkeypatch):
    """For S3 the loader gets the moto endpoint the way a user would: AWS_ENDPOINT_URL."""
    if "AWS_ENDPOINT_URL" in env:
        monkeypatch.setenv("AWS_ENDPOINT_URL", env["AWS_ENDPOINT_URL"])


@pytest.fixture(params=["local", "s3"])
def built_to_read(request, monkeypatch, module_doubles):
    """The shared build of one backend, for a test that only reads it (module_doubles: named here
    so that conftest's `tier` sees the double)."""
    built = request.getfixturevalue(f"built_{request.param}")
    _with_endpoint(built[0], monkeypatch)
    return built


def copy_of(built, tmp_path, monkeypatch):
    """(settings, store, root) of a copy of a shared build: the same objects (a folder copy, or
    CopyObject into a fresh bucket under the same prefix), at another root. The rebuild, its checks
    and the loader address images by image_key under the root, so the copy behaves as the build."""
    env, store, _, _ = built
    _with_endpoint(env, monkeypatch)
    if isinstance(store, LocalStore):
        root = tmp_path / "dataset"
        return copy_folder(env, store.root, root), LocalStore(root), str(root)
    bucket = copy_bucket(store.client, store.bucket)
    return ({**env, "S3_BUCKET_NAME": bucket}, S3Store(store.client, bucket, store.prefix),
            f"s3://{bucket}/{store.prefix}")


@pytest.fixture(params=["local", "s3"])
def built_copy(request, tmp_path, monkeypatch, module_doubles):
    """A copy of the shared build of one backend, for a test that changes the dataset."""
    return copy_of(request.getfixturevalue(f"built_{request.param}"), tmp_path, monkeypatch)


@pytest.fixture
def local_copy(built_local, tmp_path, monkeypatch):
    """A copy of the shared local build, for a local-only test that changes the dataset."""
    return copy_of(built_local, tmp_path, monkeypatch)


def test_manifest_and_card_from_overlapping_pages(built_to_read):
    env, store, root, result = built_to_read
    pages = {p: store.read_parquet(f"moon_images/{p}.parquet") for p in ("0001", "0002")}
    manifests = {p: store.read_parquet(f"sampled_manifest/{p}.parquet") for p in ("0001", "0002")}
    ids = {p: list(t.loc[t["status"].isin(["stored", "already_stored"]), "nasa_id"]) for p, t in pages.items()}
    assert len(set(ids["0001"]) & set(ids["0002"])) == 30  # the overlap the test is about

    table = store.read_parquet("moon_dataset.parquet")
    meta = dataset_metadata(result)
    assert meta["uri"] == store.uri("moon_dataset.parquet") and "path" not in meta  # absolute only
    # Exactly the union of stored ids, once each, page 1 first (first occurrence wins).
    assert list(table["nasa_id"]) == list(dict.fromkeys(ids["0001"] + ids["0002"]))
    assert table["nasa_id"].is_unique and len(table) == 170
    assert list(table["page"]) == [1] * 100 + [2] * 70

    assert list(table.columns) == COLUMNS
    for column in ("page", "bytes", "width", "height"):
        assert table[column].dtype == "int64", column
    assert str(table["date_created"].dtype) == "datetime64[us, UTC]"
    for column in ("nasa_id", "split", "title", "center", "image_key", "sha256", "format"):
        assert pd.api.types.is_string_dtype(table[column]), column
    assert all(isinstance(list(k), list) for k in table["keywords"])

    # Image facts come from moon_images, metadata from the same page's manifest.
    by_id = table.set_index("nasa_id")
    for page in ("0001", "0002"):
        images = pages[page].set_index("nasa_id")
        meta = manifests[page].set_index("nasa_id")
        for nasa_id in ids[page]:
            row = by_id.loc[nasa_id]
            if row["page"] != int(page):
                continue
            for column in ("image_key", "image_uri", "rendition", "source_url", "bytes", "sha256",
                           "width", "height", "format"):
                assert row[column] == images.loc[nasa_id, column], column
            for column in ("title", "center", "date_created", "description"):
                assert row[column] == meta.loc[nasa_id, column] or (
                    pd.isna(row[column]) and pd.isna(meta.loc[nasa_id, column])), column
    assert list(table["split"]) == [split_for(g, FRACTIONS) for g in table["duplicate_group"]]
    # No copies among the double's pictures: each image is its own group and keeps its split.
    assert list(table["duplicate_group"]) == list(table["nasa_id"])

    metadata = dataset_metadata(result)
    assert metadata["row_count"] == 170
    assert metadata["pages_included"] == "0001-0002"
    assert metadata["pages_missing"] == 98
    assert metadata["duplicates_dropped"] == 30
    assert metadata["total_bytes"] == int(table["bytes"].sum())
    assert metadata["per_split"] == {k: int(v) for k, v in table["split"].value_counts().items()}
    centers = {r.data["center"]: r.data["images"] for r in metadata["per_center"].records}
    assert centers == {k: int(v) for k, v in table["center"].value_counts().items()}
    decades = {r.data["decade"]: r.data["images"] for r in metadata["per_decade"].records}
    assert sum(decades.values()) == 170
    assert metadata["dataset_uri"] == store.uri("moon_dataset.parquet")
    assert metadata["card_uri"] == store.uri("README.md")
    assert table["image_uri"].iloc[0] in metadata["preview"]

    card = store.get_bytes("README.md").decode("utf-8")
    assert "| images | 170 |" in card
    for name, n in table["split"].value_counts().items():
        assert f"| {name} | {n} |" in card
    for name, n in table["center"].value_counts().items():
        assert f"| {name} | {n} |" in card
    assert f"({int(table['bytes'].sum())} bytes)" in card
    first, last = table["date_created"].min(), table["date_created"].max()
    assert f"{first.date().isoformat()} to {last.date().isoformat()}" in card
    assert "query `moon`" in card and "SEARCH_RESULT_SAMPLING_FACTOR=1" in card
    assert f'load_manifest("{store.root_uri}")' in card
    assert all(f"| `{c}` |" in card for c in COLUMNS)
    assert "https://www.nasa.gov/nasa-brand-center/images-and-media/" in card
    # Built from the double, and the card says so rather than claiming NASA's images.
    assert card.startswith("# Synthetic images from the offline NASA double\n")
    assert f"| source | the offline NASA double at {env['NASA_API_BASE_URL']} |" in card
    assert "its images are synthetic, not NASA's." in card
    assert "These images come from NASA." not in card

    checks = check_results(result)
    assert set(checks) == CHECKS
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}
    assert checks["sha256_sample"].metadata["sampled"].value == 20


def test_split_is_stable_across_rebuilds_and_refreshes(local_copy, built_local_double):
    env, store, root = local_copy
    nasa_double = built_local_double
    before = store.read_parquet("moon_dataset.parquet")
    assert materialize_dataset(env).success
    again = store.read_parquet("moon_dataset.parquet")
    pd.testing.assert_frame_equal(again, before)

    # A refresh that moves every item and adds a page: known ids keep their split.
    nasa_double.insert_items(7, at=0)
    assert materialize_pages(env, "0001", "0003").success
    assert materialize_dataset(env).success
    after = store.read_parquet("moon_dataset.parquet").set_index("nasa_id")["split"]
    assert after.index.is_unique
    shared = before.set_index("nasa_id")["split"]
    assert (after.loc[shared.index] == shared).all()


def test_loader_reads_back_every_image(built_to_read):
    env, store, root, _ = built_to_read
    manifest = load_manifest(root)
    pd.testing.assert_frame_equal(manifest, store.read_parquet("moon_dataset.parquet"))

    seen = []
    for row, image in iter_images(root):  # verify=True: size and sha256 checked per file
        data = store.get_bytes(row["image_key"])
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert image.size == (row["width"], row["height"])
        assert image.format == row["format"]
        seen.append(row["nasa_id"])
    assert seen == list(manifest["nasa_id"])

    validation = [row["nasa_id"] for row, _ in iter_images(root, split="validation")]
    assert validation == list(manifest.loc[manifest["split"] == "validation", "nasa_id"])
    assert validation  # 170 ids at 10%: not empty


def test_loader_accepts_file_uris_and_paths(built_local):
    root = built_local[1].root
    expected = load_manifest(str(root))
    assert len(expected) == 170
    pd.testing.assert_frame_equal(load_manifest(root), expected)
    pd.testing.assert_frame_equal(load_manifest(root.as_uri()), expected)
    pd.testing.assert_frame_equal(load_manifest(f"file://localhost{root}"), expected)


def test_a_deleted_image_fails_uris_exist(built_copy):
    env, store, root = built_copy
    victim = store.read_parquet("moon_dataset.parquet")["image_key"].iloc[5]
    store.delete(victim)

    result = materialize_dataset(env)
    assert result.success  # checks are not blocking: the step succeeds, the check fails
    checks = check_results(result)
    assert not checks["uris_exist"].passed
    assert checks["uris_exist"].metadata["missing"].value == 1
    assert checks["uris_exist"].metadata["missing_examples"].value == [victim]
    assert checks["unique_nasa_id"].passed

    with pytest.raises(FileNotFoundError):
        for _ in iter_images(root):
            pass


def test_a_corrupted_image_fails_sha256_sample_and_the_loader(local_copy):
    env, store, root = local_copy
    key = store.read_parquet("moon_dataset.parquet")["image_key"].iloc[3]
    data = bytearray(store.get_bytes(key))
    data[-3] ^= 0xFF  # same size, other content
    store.put_bytes(key, bytes(data))

    result = materialize_dataset(env, sample_size=1000)  # every image
    checks = check_results(result)
    assert checks["uris_exist"].passed  # same size
    assert not checks["sha256_sample"].passed
    assert checks["sha256_sample"].metadata["sampled"].value == 170
    assert checks["sha256_sample"].metadata["examples"].value == [
        {"image_key": key, "problem": "sha256 differs"}]
    with pytest.raises(ValueError, match="does not match the manifest"):
        list(iter_images(root))
    assert len(list(iter_images(root, verify=False))) == 170


def test_missing_pages_are_skipped_and_counted(tmp_path, nasa_double):
    root = tmp_path / "dataset"
    env = local_env(nasa_double, root)
    result = materialize_dataset(env)  # nothing materialized yet
    assert result.success
    metadata = dataset_metadata(result)
    assert (metadata["row_count"], metadata["pages_missing"], metadata["pages_included"]) == (0, 100, "none")
    assert list(load_manifest(root).columns) == COLUMNS
    assert "| images | 0 |" in (root / "README.md").read_text()

    # 250 hits: page 3 holds 50; one item in four of pages 2 and 3 is enough to count.
    assert materialize_pages(env | {"SEARCH_RESULT_SAMPLING_FACTOR": "4"}, "0002", "0003").success
    store = LocalStore(root)
    stored = sum(len(store.read_parquet(f"moon_images/{p}.parquet")) for p in ("0002", "0003"))
    assert 0 < stored < 150
    result = materialize_dataset(env)
    metadata = dataset_metadata(result)
    assert (metadata["row_count"], metadata["pages_missing"], metadata["pages_included"]) == (
        stored, 98, "0002-0003")
    assert set(load_manifest(root)["page"]) == {2, 3}


def test_custom_split_fractions_reach_the_table(local_copy):
    env, _, root = local_copy
    result = materialize_dataset(env | {"DATASET_SPLIT_FRACTIONS": "train=0.5,holdout=0.5"})
    assert set(load_manifest(root)["split"]) == {"train", "holdout"}
    assert set(dataset_metadata(result)["per_split"]) == {"train", "holdout"}


@pytest.mark.parametrize("value", ["train=0.8,test=0.1", "train", "train=x", "a=0.5,a=0.5", "t=1.5,v=-0.5"])
def test_bad_split_fractions_are_named(value):
    with pytest.raises(ValueError, match="DATASET_SPLIT_FRACTIONS"):
        resources_from_env({"DATASET_SPLIT_FRACTIONS": value})


@pytest.mark.parametrize("spec", [DEFAULT_SPLIT_FRACTIONS, "train=0.5,test=0.5", "a=0.7,b=0.2,c=0.1"])
def test_split_fractions_are_respected_on_many_ids(spec):
    fractions = parse_split_fractions(spec)
    ids = [f"SYNTH-{i:06d}" for i in range(40_000)]
    counts = collections.Counter(split_for(i, fractions) for i in ids)
    for name, fraction in fractions.items():
        assert abs(counts[name] / len(ids) - fraction) < 0.01, (name, counts)
    # Same ids, same splits: no dependence on order or process.
    assert [split_for(i, fractions) for i in reversed(ids)][::-1] == [split_for(i, fractions) for i in ids]


def _images(rows):
    base = {"image_uri": "u", "rendition": "large", "source_url": "s", "bytes": 1, "sha256": "h",
            "width": 1, "height": 1, "format": "JPEG", "error": None}
    return frame("moon_images", [{**base, "image_key": f"images/{r[0]}.jpg", "nasa_id": r[0], "status": r[1]}
                                 for r in rows])


def _manifest(ids, title):
    return frame("sampled_manifest", [{"nasa_id": i, "title": f"{title} {i}"} for i in ids])


def test_build_manifest_dedups_in_page_order_and_skips_failures():
    images = {"0002": _images([("b", "stored"), ("c", "stored")]),
              "0001": _images([("a", "already_stored"), ("b", "stored"), ("x", "failed")])}
    manifests = {"0001": _manifest(["a", "b", "x"], "p1"), "0002": _manifest(["c"], "p2")}
    table, stats = build_manifest(images, manifests, FRACTIONS)
    assert list(table["nasa_id"]) == ["a", "b", "c"]
    assert list(table["page"]) == [1, 1, 2]
    assert list(table["title"]) == ["p1 a", "p1 b", "p2 c"]
    assert stats == {"image_rows": 5, "not_stored": 1, "duplicates": 1, "stale_rows": 0,
                     "without_metadata": 0}
    assert list(table.columns) == COLUMNS


def test_build_manifest_takes_the_row_that_describes_the_stored_file():
    # "b" was stored from page 1 as large (1 byte here), then page 2 replaced the file under the
    # same key with another rendition (5 bytes): page 1's row no longer describes what is stored.
    page2 = _images([("b", "stored")]).assign(bytes=5, rendition="medium", sha256="h2")
    images = {"0001": _images([("a", "stored"), ("b", "already_stored")]), "0002": page2}
    manifests = {"0001": _manifest(["a", "b"], "p1"), "0002": _manifest(["b"], "p2")}
    sizes = {"images/a.jpg": 1, "images/b.jpg": 5}
    table, stats = build_manifest(images, manifests, FRACTIONS, sizes)
    assert list(table["nasa_id"]) == ["a", "b"]
    b = table.set_index("nasa_id").loc["b"]
    assert (b["page"], b["bytes"], b["rendition"], b["sha256"], b["title"]) == (2, 5, "medium", "h2", "p2 b")
    assert stats["duplicates"] == 1 and stats["stale_rows"] == 1
    # Without the listing, or when nothing matches, the first page's row stays.
    for stored in (None, {"images/a.jpg": 1, "images/b.jpg": 9}):
        table, stats = build_manifest(images, manifests, FRACTIONS, stored)
        assert table.set_index("nasa_id").loc["b", "page"] == 1 and stats["stale_rows"] == 0


def test_build_manifest_falls_back_to_another_page_for_metadata():
    # Page 2's manifest was rewritten after its images were stored; "c" now only appears on page 1.
    images = {"0002": _images([("c", "stored"), ("d", "stored")])}
    manifests = {"0001": _manifest(["c"], "p1"), "0002": _manifest(["e"], "p2")}
    table, stats = build_manifest(images, manifests, FRACTIONS)
    assert list(table["title"].fillna("-")) == ["p1 c", "-"]
    assert stats["without_metadata"] == 1


def test_preview_grid_links_images():
    table, _ = build_manifest({"0001": _images([(c, "stored") for c in "abcd"])},
                              {"0001": _manifest(list("abcd"), "t|x")}, FRACTIONS)
    grid = preview_grid(table, limit=4, per_row=3)
    assert grid.count("](u)") == 4
    assert "t\\|x a" in grid  # a pipe in a title cannot break the table
    assert len(grid.splitlines()) == 4  # header, separator, two rows
    assert preview_grid(table.iloc[:0]) == "_no images yet_"


def test_loader_errors_name_the_problem(tmp_path, s3_server, s3_bucket, monkeypatch):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_manifest(tmp_path)
    for bad in ("http://example.com/data", "s3:///prefix", "file://otherhost/x", "", "gs://b/p"):
        with pytest.raises(ValueError):
            load_manifest(bad)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    with pytest.raises(FileNotFoundError, match=f"s3://{s3_bucket}/nothing/moon_dataset.parquet"):
        load_manifest(f"s3://{s3_bucket}/nothing")
    with pytest.raises(FileNotFoundError, match="no such bucket"):
        load_manifest("s3://no-such-bucket-here/x")

    table, _ = build_manifest({"0001": _images([("a", "stored")])}, {"0001": _manifest(["a"], "t")},
                              {"train": 1.0})
    store = LocalStore(tmp_path)
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    store.put_bytes(dataset.MANIFEST_KEY, buffer.getvalue())
    with pytest.raises(ValueError, match="splits present: train"):
        next(iter_images(tmp_path, split="test"))


def _mat(instance, key, page=None):
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=page))


# evaluate_automation_conditions itself calls AssetSelection.all(include_sources=True), a beta
# parameter: the BetaWarning comes from inside dagster, not from this project's code.
@pytest.mark.filterwarnings("ignore:Parameter `include_sources`:dagster.BetaWarning")
def test_automation_requests_one_rebuild_per_batch_of_page_updates():
    from nasa_assets.defs.jobs import moon_images_job

    defs = dg.Definitions(assets=[*PAGE_ASSETS, moon_dataset], jobs=[moon_images_job],
                          resources=resources_from_env({}))
    key = dg.AssetKey("moon_dataset")
    with dg.DagsterInstance.ephemeral() as instance:
        def tick(cursor):
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
            return result.get_num_requested(key), result.cursor

        requested, cursor = tick(None)
        assert requested == 0  # no page yet: no empty dataset
        requested, cursor = tick(cursor)
        assert requested == 0

        for asset in ("sampled_manifest", "moon_images"):
            _mat(instance, asset, "0001")
        requested, cursor = tick(cursor)
        assert requested == 1  # 98 pages missing does not stop it (plain eager() would)
        requested, cursor = tick(cursor)
        assert requested == 0  # requested once, not on every tick

        _mat(instance, "moon_dataset")
        for page in ("0002", "0003", "0004"):
            for asset in ("sampled_manifest", "moon_images"):
                _mat(instance, asset, page)
        requested, cursor = tick(cursor)
        assert requested == 1  # three pages updated: one rebuild
        # A page landing after that request (before the next tick) is not lost: the rebuild
        # may have read the pages before it. eager()-style conditions drop it in Dagster 1.13.
        _mat(instance, "moon_images", "0004")
        requested, cursor = tick(cursor)
        assert requested == 1
        requested, cursor = tick(cursor)
        assert requested == 0

        # While a run that will write a page is in progress, the rebuild waits for it.
        _mat(instance, "moon_dataset")
        run = instance.create_run_for_job(
            job_def=defs.resolve_job_def("moon_images_job"), status=dg.DagsterRunStatus.STARTED,
            asset_selection={dg.AssetKey("sampled_manifest"), dg.AssetKey("moon_images")},
            tags={"dagster/partition": "0006"},
        )
        _mat(instance, "moon_images", "0005")
        requested, cursor = tick(cursor)
        assert requested == 0
        for asset in ("sampled_manifest", "moon_images"):
            _mat(instance, asset, "0006")
        instance.report_run_canceled(run)
        requested, cursor = tick(cursor)
        assert requested == 1


@pytest.mark.integration  # a child process
def test_the_loader_alone_accepts_images_as_large_as_ingestion_does():
    # A fresh interpreter importing only the public loader: Pillow's process-wide limit is left as
    # it is (89 MP warning, 179 MP error), and a 190 MP image still opens under the pipeline's
    # per-call limit (200 MP), with no warning (the interpreter runs with warnings as errors).
    code = (
        "import struct, zlib, PIL.Image\n"
        "from nasa_assets.dataset import iter_images\n"
        "from nasa_assets.dataset.imaging import open_image\n"
        "import nasa_assets.definitions\n"
        "def chunk(kind, data):\n"
        "    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))\n"
        "png = (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 19000, 10000, 8, 0, 0, 0, 0))"
        " + chunk(b'IEND', b''))\n"
        "print(PIL.Image.MAX_IMAGE_PIXELS, open_image(png).size)\n"
    )
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "89478485 (19000, 10000)\n"  # Pillow's default limit, untouched
    assert 2 * 89478485 < 19000 * 10000 < MAX_PIXELS == 200_000_000


def test_an_image_replaced_by_a_later_page_is_described_as_stored(tmp_path, nasa_double):
    # Page 1 stores "large"; NASA adds 10 hits at the top, so page 1's last 10 items move to page 2,
    # which then runs with NASA_IMAGE_RENDITION=medium and replaces those 10 files under their keys.
    root = tmp_path / "dataset"
    assert materialize_pages(local_env(nasa_double, root), "0001").success
    nasa_double.insert_items(10, at=0)
    env = local_env(nasa_double, root, NASA_IMAGE_RENDITION="medium")
    assert materialize_pages(env, "0002").success
    result = materialize_dataset(env, sample_size=200)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert dataset_metadata(result)["stale_rows_skipped"] == 10

    manifest = load_manifest(root)
    # Page 1's table still lists its 100 items; 10 of them are now page 2's medium files.
    assert manifest["rendition"].value_counts().to_dict() == {"medium": 100, "large": 90}
    assert set(manifest.loc[manifest["rendition"] == "medium", "page"]) == {2}
    for row, image in iter_images(root):  # verifies size and sha256 of every file
        assert image.size == (row["width"], row["height"])


def test_a_copied_dataset_folder_is_read_from_where_it_is_now(tmp_path, nasa_double):
    # The loader joins image_key to the root it is given, not the image_uri recorded at build time.
    root = tmp_path / "dataset"
    env = local_env(nasa_double, root, SEARCH_RESULT_SAMPLING_FACTOR="10")
    assert materialize_pages(env, "0001").success
    assert materialize_dataset(env).success
    copy = tmp_path / "moved"
    shutil.copytree(root, copy)
    shutil.rmtree(root)
    rows = [(row["nasa_id"], image.size) for row, image in iter_images(copy)]
    manifest = load_manifest(copy)
    assert len(rows) == len(manifest) > 0
    assert rows == list(zip(manifest["nasa_id"], zip(manifest["width"], manifest["height"])))
