"""End to end: pages against the NASA double, into a local folder and into S3 (moto), with and
without faults: a page survives every transient fault, failures are budgeted rows, and tables are
written only after the images they describe."""

import hashlib
import json

import pytest

from nasa_assets.dataset.keys import image_key
from nasa_assets.nasa.renditions import rendition_of
from nasa_assets.nasa.urls import parse_allowed_hosts
from nasa_assets_tests.helpers import (
    assert_image_matches,
    local_env,
    materialize_pages,
    no_incoming,
    read_table,
)
from nasa_assets_tests.nasa_double import NasaDouble


TABLE_KEYS = {
    f"{table}/{page}.parquet"
    for table in ("search_results", "sampled_manifest", "moon_images", "rejected")
    for page in ("0001", "0002")
}


def test_two_pages_store_images_and_tables_then_nothing_is_downloaded_again(target, nasa_double):
    env, store = target
    result = materialize_pages(env, "0001", "0002")
    assert result.success

    corpus = nasa_double.corpus()
    expected_ids = [item["data"][0]["nasa_id"] for item in corpus[:200]]
    keys = store.keys()
    manifest = {}
    for page in ("0001", "0002"):
        search = read_table(store.get(f"search_results/{page}.parquet"))
        assert list(search["position"]) == list(range(1, 101))
        assert set(search["page"]) == {int(page)}
        manifest[page] = read_table(store.get(f"sampled_manifest/{page}.parquet"))
        # The raw JSON is the item exactly as the API sent it.
        first = int(page) * 100 - 100
        assert json.loads(search["raw"][0]) == corpus[first]
    assert list(search["nasa_id"]) == expected_ids[100:]

    image_keys = {k for k in keys if k.startswith("images/")}
    assert keys == TABLE_KEYS | image_keys
    assert len(image_keys) == 200

    for page in ("0001", "0002"):
        images = read_table(store.get(f"moon_images/{page}.parquet"))
        assert list(images["nasa_id"]) == list(manifest[page]["nasa_id"])
        assert set(images["status"]) == {"stored"}
        assert images["error"].isna().all()
        for row in images.to_dict("records"):
            assert row["image_key"] == image_key(row["nasa_id"], row["source_url"])
            assert row["image_uri"] == store.uri(row["image_key"])
            assert row["rendition"] == "large" == rendition_of(row["source_url"])
            data = store.get(row["image_key"])
            assert_image_matches(data, row)
            served = nasa_double.image_bytes_for(row["nasa_id"], "large")
            assert hashlib.sha256(served).hexdigest() == row["sha256"]

    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"manifest_valid": True, "images_complete": True}

    # One run, two materializations per asset, each with its own page's figures.
    figures = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        figures[(mat.asset_key.to_user_string(), mat.partition)] = {k: v.value for k, v in mat.metadata.items()}
    for page in ("0001", "0002"):
        assert figures[("search_results", page)]["row_count"] == 100
        assert figures[("search_results", page)]["total_hits"] == 250
        assert figures[("sampled_manifest", page)]["sampled"] == 100
        assert figures[("moon_images", page)]["stored"] == 100
        images = read_table(store.get(f"moon_images/{page}.parquet"))
        assert figures[("moon_images", page)]["bytes_stored"] == images["bytes"].sum()

    # The same pages again: every image is known, none is downloaded.
    first = {k: store.get(k) for k in ("moon_images/0001.parquet", "moon_images/0002.parquet")}
    nasa_double.reset_counts()

    result = materialize_pages(env, "0001", "0002")
    assert result.success
    assert nasa_double.counts["image"] == 0
    assert nasa_double.counts["search"] == 2
    for key, before in first.items():
        again, earlier = read_table(store.get(key)), read_table(before)
        assert set(again["status"]) == {"already_stored"}
        # already_stored rows carry the same facts as the stored ones.
        columns = ["nasa_id", "image_key", "image_uri", "bytes", "sha256", "width", "height", "format"]
        assert again[columns].equals(earlier[columns])


def test_page_past_the_last_hit_is_an_empty_table(tmp_path, nasa_double):
    env = local_env(nasa_double, tmp_path)
    result = materialize_pages(env, "0004")  # 250 hits: page 4 is past the end
    assert result.success
    for table in ("search_results", "sampled_manifest", "moon_images"):
        frame = read_table((tmp_path / table / "0004.parquet").read_bytes())
        assert frame.empty
        assert "nasa_id" in frame.columns


def test_page_past_the_api_cap_is_an_empty_table(tmp_path, nasa_double):
    nasa_double.total_hits = 12_000
    env = local_env(nasa_double, tmp_path)
    from nasa_assets.nasa.client import NasaClient  # noqa: F401  (import kept light)

    # The cap starts at hit 10,001; the partitions stop at page 100, so ask the client directly.
    from nasa_assets.defs.settings import resources_from_env

    client = resources_from_env(env)["nasa"].client()
    page = client.search_page("moon", 101)
    assert page.exhausted and page.items == []
    assert len(client.search_page("moon", 100).items) == 100


def test_sampling_factor_keeps_the_same_items_wherever_they_move(tmp_path, nasa_double):
    env = local_env(nasa_double, tmp_path, SEARCH_RESULT_SAMPLING_FACTOR="4")
    assert materialize_pages(env, "0001").success
    before = set(read_table((tmp_path / "sampled_manifest/0001.parquet").read_bytes())["nasa_id"])
    assert 10 <= len(before) <= 45

    nasa_double.insert_items(3, at=0)  # every item moves down three positions
    assert materialize_pages(env, "0001", "0002").success
    after = set(read_table((tmp_path / "sampled_manifest/0001.parquet").read_bytes())["nasa_id"]) | set(
        read_table((tmp_path / "sampled_manifest/0002.parquet").read_bytes())["nasa_id"]
    )
    assert before <= after


def test_failing_manifest_check_blocks_downloads(tmp_path, nasa_double):
    # Images live on the double's host, which this run does not allow: every item is rejected.
    env = local_env(nasa_double, tmp_path, NASA_ALLOWED_HOSTS="images-assets.nasa.gov")
    result = materialize_pages(env, "0001")

    assert not result.success
    evaluation = {e.check_name: e for e in result.get_asset_check_evaluations()}["manifest_valid"]
    assert not evaluation.passed
    assert "MAX_REJECTED_FRACTION" in str(evaluation.metadata["problems"].value)
    assert nasa_double.counts["image"] == 0
    assert not (tmp_path / "images").exists()
    assert not (tmp_path / "moon_images").exists()
    rejected = read_table((tmp_path / "rejected/0001.parquet").read_bytes())
    assert len(rejected) == 100
    assert rejected["reason"].str.startswith(("image URL refused", "collection.json")).all()


def test_one_bad_page_stops_the_downloads_of_its_whole_range_run(tmp_path, nasa_double):
    # 30 items of page 2 have no nasa_id: 30% rejected, above the default MAX_REJECTED_FRACTION.
    nasa_double.put_raw_items(100, [{"href": "x", "data": [{"title": "no id"}], "links": []}] * 30)
    result = materialize_pages(local_env(nasa_double, tmp_path / "strict"), "0001", "0002")

    assert not result.success
    evaluation = {e.check_name: e for e in result.get_asset_check_evaluations()}["manifest_valid"]
    assert evaluation.metadata["rejected_share"].value == {"0001": 0.0, "0002": 0.3}
    assert evaluation.metadata["problems"].value == [
        "rejected share above MAX_REJECTED_FRACTION=0.2: {'0002': 0.3}"
    ]
    assert nasa_double.counts["image"] == 0
    assert not (tmp_path / "strict/moon_images").exists()

    # The limit is the setting's: at 0.5 the same pages pass and page 2 keeps its 70 good items.
    nasa_double.reset_counts()
    env = local_env(nasa_double, tmp_path / "lenient", MAX_REJECTED_FRACTION="0.5")
    assert materialize_pages(env, "0001", "0002").success
    page2 = read_table((tmp_path / "lenient/moon_images/0002.parquet").read_bytes())
    assert len(page2) == 70 and set(page2["status"]) == {"stored"}
    assert nasa_double.counts["image"] == 170


def test_lost_sampled_items_fail_the_manifest_check_whatever_the_sampling_factor(tmp_path, nasa_double):
    # One item in five is sampled; every collection.json look-up then answers an HTML page. Against
    # all 100 items the loss looks small (under 20%); against the sampled items it is most of them.
    nasa_double.faults = {"collection": ["html"] * 500}
    env = local_env(nasa_double, tmp_path, SEARCH_RESULT_SAMPLING_FACTOR="5")
    result = materialize_pages(env, "0001")

    assert not result.success
    evaluation = {e.check_name: e for e in result.get_asset_check_evaluations()}["manifest_valid"]
    assert not evaluation.passed
    rejected = read_table((tmp_path / "rejected/0001.parquet").read_bytes())
    kept = read_table((tmp_path / "sampled_manifest/0001.parquet").read_bytes())
    lost = rejected["reason"].str.startswith("collection.json").sum()
    assert lost > 0 and lost / 100 <= 0.2 < lost / (lost + len(kept))
    assert evaluation.metadata["rejected_share"].value == {"0001": round(len(rejected) / 100, 3)}
    assert evaluation.metadata["unresolved_share_of_sampled"].value == {
        "0001": round(lost / (lost + len(kept)), 3)
    }
    assert "without a usable image URL" in str(evaluation.metadata["problems"].value)
    assert nasa_double.counts["image"] == 0
    assert not (tmp_path / "moon_images").exists()


@pytest.fixture(scope="module")
def page_one(tmp_path_factory, module_doubles):
    """(double, root, result) of one run of page 1 into a local folder, for tests that only read
    what it left."""
    double = module_doubles()
    root = tmp_path_factory.mktemp("page_one")
    result = materialize_pages(local_env(double, root), "0001")
    assert result.success
    return double, root, result


def test_preview_shows_nasa_thumbnails_on_allowed_hosts_only(page_one):
    nasa_double, tmp_path, result = page_one
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key.to_user_string() == "moon_images"]
    preview = event.materialization.metadata["preview"].value
    first = nasa_double.corpus()[0]
    thumb = next(link["href"] for link in first["links"] if link["rel"] == "preview")
    assert f"![{first['data'][0]['nasa_id']}]({thumb})" in preview
    assert preview.count("![") == 6

    # The same page with another host allowed for images: no thumbnail from a refused host.
    from nasa_assets.defs.assets.moon_images import _thumbnails

    manifest = read_table((tmp_path / "sampled_manifest/0001.parquet").read_bytes())
    assert _thumbnails({"0001": manifest}, parse_allowed_hosts("images-assets.nasa.gov")) == {}


def test_an_image_from_another_source_under_the_same_key_is_fetched_again(target, nasa_double):
    """Keys derive from nasa_id alone; what a key holds is trusted only when it came from the
    URL the manifest asks for now (e.g. `make demo`'s double wrote into the same root before)."""
    env, store = target
    env = {**env, "SEARCH_RESULT_SAMPLING_FACTOR": "4"}  # a quarter of the page is enough
    assert materialize_pages(env, "0001").success
    stored = len(read_table(store.get("moon_images/0001.parquet")))
    assert 0 < stored < 100
    with NasaDouble(total_hits=250) as elsewhere:  # same ids, other host: other source URLs
        env = {**env, "NASA_API_BASE_URL": elsewhere.base_url, "NASA_ALLOWED_HOSTS": elsewhere.host}
        assert materialize_pages(env, "0001").success
        assert elsewhere.counts["image"] == stored
        again = materialize_pages(env, "0001")
        assert again.success and elsewhere.counts["image"] == stored  # now known: no downloads
    images = read_table(store.get("moon_images/0001.parquet"))
    assert len(images) == stored
    assert set(images["status"]) == {"already_stored"}
    assert images["source_url"].str.startswith(elsewhere.base_url).all()


def checks_of(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_page_survives_every_transient_fault(target, nasa_double):
    env, store = target
    # Exact request counts below: a normal request must never time out, even when a busy 2-core
    # machine stalls it for seconds, while the slow faults always do.
    env["NASA_READ_TIMEOUT"] = "3"
    env["NASA_RETRY_BACKOFF_SECONDS"] = "0.01"  # counts are asserted here, waits in test_client.py
    image_faults = ["429", "500", "502", "503", "reset", "truncate", "slow:8", "truncate"]
    nasa_double.faults = {
        "search": ["503", "reset", "truncate"],
        "collection": ["truncate", "500", "reset", "slow:8", "429"],
        "image": list(image_faults),
    }
    result = materialize_pages(env, "0001")
    assert result.success

    assert nasa_double.counts["search"] == 4
    assert nasa_double.counts["image"] == 100 + len(image_faults)  # each fault cost one retry
    images = read_table(store.get("moon_images/0001.parquet"))
    assert len(images) == 100 and set(images["status"]) == {"stored"}
    assert store.image_keys() == sorted(images["image_key"])  # one object per image, nothing else
    for row in images.to_dict("records"):
        data = store.get(row["image_key"])
        assert_image_matches(data, row)
        assert data == nasa_double.image_bytes_for(row["nasa_id"], "large")
    assert {name: e.passed for name, e in checks_of(result).items()} == {
        "manifest_valid": True, "images_complete": True}


def test_an_image_that_keeps_failing_is_a_failed_row_within_the_budget(target, nasa_double):
    env, store = target
    env["NASA_MAX_RETRIES"] = "1"
    ids = [item["data"][0]["nasa_id"] for item in nasa_double.corpus()[:100]]
    broken = {ids[10]: "500", ids[20]: "truncate", ids[30]: "reset"}
    nasa_double.faults = {"by_id": broken}

    result = materialize_pages(env, "0001")
    assert result.success  # the page is not crashed by three images

    images = read_table(store.get("moon_images/0001.parquet")).set_index("nasa_id")
    assert (images["status"] == "failed").sum() == 3
    assert images.loc[ids[10], "error"] == "HTTP 500 from the file host"
    assert images.loc[ids[20], "error"] == "transfer interrupted (ChunkedEncodingError); gave up after 3 attempts"
    assert "failed after 2 attempts: ConnectionError" in images.loc[ids[30], "error"]
    for nasa_id in broken:
        assert images.loc[nasa_id, ["bytes", "sha256", "image_uri"]].isna().all()
        assert not store.exists(images.loc[nasa_id, "image_key"])  # no object, not even a partial one
    assert (images["status"] == "stored").sum() == 97

    check = checks_of(result)["images_complete"]
    assert check.passed  # 3% failed, default MAX_FAILED_FRACTION is 5%
    assert check.metadata["failed"].value == 3
    examples = {e["nasa_id"]: e["error"] for e in check.metadata["failed_examples"].value}
    assert examples.keys() == broken.keys()

    # A tighter budget turns the same outcome into a failed check; only the failures are retried.
    nasa_double.reset_counts()
    result = materialize_pages(env | {"MAX_FAILED_FRACTION": "0.02"}, "0001")
    assert nasa_double.counts["image"] == 2 + 3 + 2  # 500 and reset: 2 requests each, truncate: 3
    check = checks_of(result)["images_complete"]
    assert not check.passed
    assert result.success  # the check is not blocking: the run shows it failed, the table stays
    assert "3 of 100 images failed (budget 2%)" in check.metadata["problems"].value


def test_search_that_never_recovers_fails_the_step_and_writes_nothing(tmp_path, nasa_double):
    env = local_env(nasa_double, tmp_path, NASA_MAX_RETRIES="2")
    nasa_double.faults = {"search": ["500"] * 10}
    result = materialize_pages(env, "0001")
    assert not result.success
    assert nasa_double.counts["search"] == 3
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["search_results"]
    assert failures[0].event_specific_data.error.cause.message.startswith(
        "nasa_assets.nasa.errors.NasaApiError: search page 1: HTTP 500")
    assert nasa_double.counts["image"] == nasa_double.counts["collection"] == 0
    assert not any(tmp_path.rglob("*.parquet"))


def test_tables_are_written_after_the_images_they_describe(page_one):
    _, tmp_path, _ = page_one
    table = (tmp_path / "moon_images/0001.parquet").stat().st_mtime_ns
    images = [p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()]
    assert len(images) == 100 and max(images) <= table


def test_a_step_that_dies_while_storing_images_writes_no_table(tmp_path, nasa_double):
    env = local_env(nasa_double, tmp_path)
    victim = nasa_double.corpus()[40]["data"][0]["nasa_id"]
    # A directory where the image should go: renaming the downloaded file into place fails.
    (tmp_path / image_key(victim, "x~large.jpg")).mkdir(parents=True)
    result = materialize_pages(env, "0001")
    assert not result.success
    assert not (tmp_path / "moon_images").exists()  # no table claims images that are not there
    assert no_incoming(tmp_path)
    ids = {image_key(i["data"][0]["nasa_id"], "x~large.jpg"): i["data"][0]["nasa_id"]
           for i in nasa_double.corpus()[:100]}
    files = [p for p in (tmp_path / "images").iterdir() if p.is_file()]
    assert files
    for path in files:  # every file that made it is complete
        nasa_id = ids[f"images/{path.name}"]
        assert path.read_bytes() == nasa_double.image_bytes_for(nasa_id, "large")
