"""Self-repair and one run per page, through a real `dagster dev` (webserver + daemon).

Each test gets its own `dagster dev` (live.py) with the NASA double's 250 hits (pages 0001-0003), a
fresh moto bucket, a 3 s sensor interval and a 2 s first repair wait.
"""

from collections.abc import Iterator

import pytest

from nasa_assets_tests.live import LOCATION, REPOSITORY, WORKSPACE, LiveDagster, running_dagster

SENSOR = "nasa_search_refresh"
PAGES = ["0001", "0002", "0003"]
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# Bounds on waits (live.wait_until), generous for a loaded 2-core machine; no assertion is about
# speed.
FIRST_RUNS_TIMEOUT = 240
REPAIRED_TIMEOUT = 150

RUN_TIMES_QUERY = """
query RunTimes($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}
"""


@pytest.fixture(name="live")
def fixture_live(s3_server: str, tmp_path) -> Iterator[LiveDagster]:
    with running_dagster(
        s3_server, tmp_path,
        NASA_SENSOR_INTERVAL_SECONDS="3",
        NASA_REPAIR_BACKOFF_SECONDS="2",
        NASA_REPAIR_MAX_RUNS_PER_TICK="5",
        # Failed downloads are not retried within a run: the repair is what is under test.
        NASA_MAX_RETRIES="0",
        # A held search answer (the concurrency test) must outlast the other page's run start.
        NASA_READ_TIMEOUT="110",
        SEARCH_RESULT_SAMPLING_FACTOR="10",  # 25 images in all: quick runs
    ) as live:
        yield live


def run_times(live: LiveDagster, tags: dict[str, str] | None = None) -> list[dict]:
    run_filter = {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
    result = live.graphql(RUN_TIMES_QUERY, {"filter": run_filter})["runsOrError"]
    assert result["__typename"] == "Runs", result
    return [
        {"run_id": r["runId"], "status": r["status"], "start": r["startTime"], "end": r["endTime"],
         "tags": {t["key"]: t["value"] for t in r["tags"]}}
        for r in result["results"]
    ]


def page_complete(live: LiveDagster, page: str) -> bool:
    """Every row of the page's manifest is in its moon_images table, stored, with its object."""
    try:
        images = live.assert_page_stored(page)
        manifest = live.table("sampled_manifest", page)
    except Exception:  # noqa: BLE001  (not written yet, or not complete: keep waiting)
        return False
    return len(manifest) > 0 and sorted(images["nasa_id"]) == sorted(manifest["nasa_id"])


def test_after_a_file_host_outage_the_dataset_completes_with_nobody_acting(live):
    double = live.double
    # The file host is down (images and collection.json) when the sensor's first tick asks for
    # every page.
    double.configure(faults={"always": {"image": "503", "collection": "503"}})
    live.cli("sensor", "start", "-w", WORKSPACE, SENSOR)
    try:
        by_sensor = {"dagster/sensor_name": SENSOR}

        def first_runs_done():
            runs = [r for r in live.runs(by_sensor)
                    if r["tags"]["dagster/run_key"].startswith("page-")]
            return len(runs) == 3 and all(r["status"] in FINISHED for r in runs) and runs

        first = live.wait_until(
            "the first tick's three runs to end", first_runs_done, FIRST_RUNS_TIMEOUT
        )
        assert sorted(r["tags"]["dagster/partition"] for r in first) == PAGES
        assert not any(page_complete(live, page) for page in PAGES)

        double.configure(faults={})  # the outage ends; from here on nobody acts
        live.wait_until(
            "every page to be complete",
            lambda: all(page_complete(live, page) for page in PAGES),
            REPAIRED_TIMEOUT,
        )
    finally:
        live.cli("sensor", "stop", "-w", WORKSPACE, SENSOR)

    runs = run_times(live)
    # Every run was the sensor's: the three first ones and its repairs.
    assert {r["tags"].get("dagster/sensor_name") for r in runs} == {SENSOR}
    repairs = [r for r in runs if r["tags"]["dagster/run_key"].startswith("repair-")]
    assert {r["tags"]["dagster/partition"] for r in repairs} == set(PAGES)
    assert all(r["tags"]["nasa/repair"] for r in repairs)
    # The first failure of each page was repaired, so a run key never blocked a retry: for each
    # page, the latest run succeeded and every run key is distinct.
    assert len({r["tags"]["dagster/run_key"] for r in runs}) == len(runs)
    for page in PAGES:
        latest = [r for r in runs if r["tags"]["dagster/partition"] == page][0]  # newest first
        assert latest["status"] == "SUCCESS", (latest, live.run_errors(latest["run_id"]))
    # Never two runs of a page at once.
    for page in PAGES:
        spans = sorted((r["start"], r["end"]) for r in runs
                       if r["tags"]["dagster/partition"] == page and r["start"])
        assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:])), (page, spans)


def test_runs_of_one_page_run_one_after_the_other_and_pages_in_parallel(live):
    double = live.double
    client = live.client()
    # The first two search requests wait until release(): both runs that may start stay in progress
    # however fast or slow each one reaches STARTED, so "at once" is observed, not raced.
    double.hold_next("search")
    double.hold_next("search")
    launched = {}
    try:
        for name, page in (("a", "0002"), ("b", "0002"), ("c", "0001")):
            launched[name] = client.submit_job_execution(
                "moon_images_job", repository_location_name=LOCATION, repository_name=REPOSITORY,
                tags={"dagster/partition": page},
            )

        def two_started():
            runs = {r["run_id"]: r for r in live.runs()}
            started = [r for r in runs.values() if r["status"] == "STARTED"]
            return len(started) >= 2 and (started, runs)

        # A run of each page holds its search answer; the second run of page 0002 cannot start.
        started, runs = live.wait_until("runs of two pages in progress at once", two_started, 120)
        assert sorted(r["tags"]["dagster/partition"] for r in started) == ["0001", "0002"]
        # The second run of page 0002 is still queued behind the first.
        second = [runs[launched[n]] for n in ("a", "b") if runs[launched[n]]["status"] != "STARTED"]
        assert [r["status"] for r in second] == ["QUEUED"]
    finally:
        double.release()

    statuses = {name: live.wait_for_run(run_id) for name, run_id in launched.items()}
    assert statuses == {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"}
    times = {r["run_id"]: r for r in run_times(live)}
    a, b = sorted((times[launched[n]] for n in ("a", "b")), key=lambda r: r["start"])
    assert a["end"] <= b["start"], (a, b)  # one after the other
