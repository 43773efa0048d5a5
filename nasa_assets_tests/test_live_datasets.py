"""A second dataset of NASA_DATASETS_FILE through a real `dagster dev` (webserver + daemon):
`dagster job launch` of mars_images_job, mars_search_refresh through the daemon, and the run queue
and the `nasa_api` pool shared with moon.

One `dagster dev` (live.py) for the module, with a datasets file declaring `mars`; the NASA double
serves the query "mars" 130 items of its own (pages 0001-0002) and moon its 250. Each test checks
that moon's objects are as they were before it (except the queue test, which runs a moon page on
purpose); the assertions hold in any order.
"""

import json
import uuid
from collections.abc import Iterator

import pytest

from nasa_assets_tests.live import (
    LOCATION,
    PREFIX,
    REPOSITORY,
    WORKSPACE,
    LiveDagster,
    running_dagster,
)

MARS = "mars"
MARS_HITS = 130  # pages 0001 (full) and 0002 (30 hits)
# sampling_factor 10: about 10 images on a full page, quick runs.
DATASETS = "datasets:\n  - {name: mars, query: mars, sampling_factor: 10}\n"
TABLES = ("search_results", "sampled_manifest", "moon_images", "rejected")
RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId jobName status allPools startTime endTime }
    ... on PythonError { message }
  }
}
"""
TICKS_QUERY = """
query Ticks($sensor: SensorSelector!) {
  sensorOrError(sensorSelector: $sensor) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 5) { status } } }
    ... on PythonError { message }
  }
}
"""


@pytest.fixture(scope="module", name="live")
def fixture_live(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDagster]:
    base = tmp_path_factory.mktemp("live_datasets")
    datasets_file = base / "datasets.yaml"
    datasets_file.write_text(DATASETS)
    with running_dagster(s3_server, base, NASA_DATASETS_FILE=str(datasets_file)) as live:
        yield live


@pytest.fixture(scope="module", name="mars_ids")
def fixture_mars_ids(live: LiveDagster) -> list[str]:
    """The double's answers to the query "mars": ids MARS-00000 ... in search order."""
    return live.double.add_query(MARS, MARS_HITS)


def objects(live: LiveDagster) -> dict[str, str]:
    """Every object of the bucket: key -> ETag."""
    pages = live.s3.get_paginator("list_objects_v2").paginate(Bucket=live.bucket)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def moon_objects(live: LiveDagster) -> dict[str, str]:
    """moon's objects: everything but mars's folder."""
    return {k: v for k, v in objects(live).items() if not k.startswith(f"{PREFIX}/{MARS}/")}


def mars_keys(live: LiveDagster) -> set[str]:
    return {k for k in objects(live) if k.startswith(f"{PREFIX}/{MARS}/")}


def mars_layout(live: LiveDagster) -> set[str]:
    """The keys mars's folder should hold: each stored page's tables and the images its
    moon_images table lists."""
    pages = [p for p in ("0001", "0002")
             if f"{PREFIX}/{MARS}/moon_images/{p}.parquet" in mars_keys(live)]
    images = {k for p in pages for k in live.table("moon_images", p, MARS)["image_key"]}
    return {f"{PREFIX}/{MARS}/{k}" for k in {f"{t}/{p}.parquet" for t in TABLES for p in pages}
            | images}


def run_info(live: LiveDagster, run_id: str) -> dict:
    result = live.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
    assert result["__typename"] == "Run", result
    return result


def sensor_state(live: LiveDagster, sensor: str) -> dict:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                "sensorName": sensor}
    result = live.graphql(TICKS_QUERY, {"sensor": selector})["sensorOrError"]
    assert result["__typename"] == "Sensor", result
    return result["sensorState"]


def test_dagster_job_launch_of_mars_images_job_stores_under_mars_only(live, mars_ids):
    before = moon_objects(live)
    run_id = str(uuid.uuid4())
    live.cli("job", "launch", "-w", WORKSPACE, "-j", "mars_images_job",
             "--tags", json.dumps({"dagster/partition": "0001"}), "--run-id", run_id)
    live.assert_success(run_id)

    assert run_info(live, run_id)["jobName"] == "mars_images_job"
    images = live.assert_page_stored("0001", MARS)
    assert len(images) >= 1
    # mars's own hits: the first 100 of the query "mars", none of moon's.
    assert list(live.table("search_results", "0001", MARS)["nasa_id"]) == mars_ids[:100]
    assert set(images["nasa_id"]) <= set(mars_ids[:100])
    # Exactly the stored pages' tables and images (page 0002 too if the sensor test ran first).
    assert f"{PREFIX}/{MARS}/moon_images/0001.parquet" in mars_layout(live)
    assert mars_keys(live) == mars_layout(live)
    assert moon_objects(live) == before


def test_mars_search_refresh_runs_mars_images_job_for_mars_pages(live, mars_ids):
    before = moon_objects(live)
    live.cli("sensor", "start", "-w", WORKSPACE, "mars_search_refresh")
    try:
        tags = {"dagster/sensor_name": "mars_search_refresh"}
        runs = live.wait_until(
            "the first tick's two runs to end",
            lambda: (r := live.runs(tags)) and len(r) >= 2
            and all(x["status"] in ("SUCCESS", "FAILURE", "CANCELED") for x in r) and r,
            240,
        )
    finally:
        live.cli("sensor", "stop", "-w", WORKSPACE, "mars_search_refresh")

    # The first tick (empty cursor) asks for every page of mars's 130 hits, with mars's job.
    for run in runs:
        assert run["status"] == "SUCCESS", (run, live.run_errors(run["run_id"]))
    assert sorted((r["job"], r["tags"]["dagster/partition"]) for r in runs) == [
        ("mars_images_job", "0001"), ("mars_images_job", "0002")]
    for page in ("0001", "0002"):
        assert set(live.assert_page_stored(page, MARS)["nasa_id"]) <= set(mars_ids)
    assert len(live.table("search_results", "0002", MARS)) == MARS_HITS - 100
    assert mars_keys(live) == mars_layout(live)
    assert f"{PREFIX}/{MARS}/moon_images/0002.parquet" in mars_layout(live)
    # moon's sensor stayed stopped with no tick (its cursor is its own); moon's data is untouched.
    assert live.runs({"dagster/sensor_name": "nasa_search_refresh"}) == []
    assert sensor_state(live, "nasa_search_refresh") == {"status": "STOPPED", "ticks": []}
    assert moon_objects(live) == before


def test_page_queue_and_nasa_api_pool_apply_across_datasets(live, mars_ids):
    client = live.client()

    def submit(job: str, page: str) -> str:
        return client.submit_job_execution(job, repository_location_name=LOCATION,
                                           repository_name=REPOSITORY,
                                           tags={"dagster/partition": page})

    # mars's run of page 0001 holds its search answer until release().
    live.double.hold_next("search")
    held = len(live.double.requests)
    first = submit("mars_images_job", "0001")
    try:
        live.wait_until(
            "mars page 0001's search to be held",
            lambda: any(kind == "search" and "q=mars" in path and "page=1&" in path + "&"
                        for kind, path in live.double.requests[held:]),
            120,
        )
        # moon's page 0001 has the same page key: its run waits behind mars's. mars's page 0002
        # has another key and runs meanwhile.
        same_page = submit("moon_images_job", "0001")
        other_page = submit("mars_images_job", "0002")
        live.assert_success(other_page)
        assert run_info(live, same_page)["status"] == "QUEUED"
        assert run_info(live, first)["status"] == "STARTED"
    finally:
        live.double.release()

    for run_id in (first, same_page):
        live.assert_success(run_id)
    a, b = run_info(live, first), run_info(live, same_page)
    assert a["endTime"] <= b["startTime"], (a, b)
    # Both datasets' runs claim the one nasa_api pool: one bound on concurrent searches.
    assert a["allPools"] == b["allPools"] == ["nasa_api"]
    assert run_info(live, other_page)["allPools"] == ["nasa_api"]
