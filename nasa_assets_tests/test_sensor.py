"""The refresh sensor over a sequence of NASA states, evaluated with build_sensor_context."""

import json
import socket

import dagster as dg
import pytest

from nasa_assets.dataset.refresh import RefreshState
from nasa_assets.dataset.repair import Backoff, RepairPolicy
from nasa_assets.dataset.sampling import is_sampled
from nasa_assets.definitions import defs
from nasa_assets.defs.jobs import moon_images_job
from nasa_assets.defs.resources import NasaApiResource
from nasa_assets.defs.sensors import (
    interval_seconds,
    nasa_search_refresh,
    read_cursor,
    refresh_sensor,
    write_cursor,
)
from nasa_assets.defs.settings import resources_from_env
from nasa_assets_tests.helpers import PAGE_ASSETS, local_env

# The change detection alone (repairs off: they read the instance; see the repair tests below).
CHANGES_ONLY = refresh_sensor(policy=RepairPolicy(max_runs_per_tick=0))


def nasa_for(double, **overrides) -> NasaApiResource:
    settings = {"base_url": double.base_url, "allowed_hosts": double.host, "max_retries": 0}
    return NasaApiResource(**{**settings, **overrides})


def tick(nasa: NasaApiResource, cursor: str | None, sensor=CHANGES_ONLY, instance=None):
    with dg.build_sensor_context(
        cursor=cursor, resources={"nasa": nasa}, definitions=defs, instance=instance
    ) as context:
        return sensor(context)


def evaluate(nasa: NasaApiResource, cursor: str | None):
    """What the daemon receives: run requests resolved against the job, and the cursor to store."""
    with dg.build_sensor_context(cursor=cursor, resources={"nasa": nasa}, definitions=defs) as context:
        return CHANGES_ONLY.evaluate_tick(context)


def pages(result: dg.SensorResult) -> list[str]:
    return [r.partition_key for r in result.run_requests or []]


def skip_message(result: dg.SensorResult) -> str:
    return result.skip_reason.skip_message if result.skip_reason else ""


@pytest.fixture
def started(nasa_double):
    """(resource, cursor after a first tick) with the double's 250 hits; request counts reset."""
    nasa = nasa_for(nasa_double)
    cursor = tick(nasa, None).cursor
    nasa_double.reset_counts()
    return nasa, cursor


def test_ships_stopped_targeting_the_job_with_a_configurable_interval():
    assert nasa_search_refresh.default_status == dg.DefaultSensorStatus.STOPPED
    assert nasa_search_refresh.job_name == "moon_images_job"
    assert nasa_search_refresh.minimum_interval_seconds == interval_seconds()
    assert interval_seconds({}) == 3600
    assert interval_seconds({"NASA_SENSOR_INTERVAL_SECONDS": " 5 "}) == 5
    for bad in ("soon", "0"):
        with pytest.raises(ValueError, match="NASA_SENSOR_INTERVAL_SECONDS"):
            interval_seconds({"NASA_SENSOR_INTERVAL_SECONDS": bad})
    # The code location builds its sensor from the same environment.
    located = defs.resolve_sensor_def("nasa_search_refresh")
    assert (located.job_name, located.minimum_interval_seconds, located.default_status) == (
        "moon_images_job", interval_seconds(), dg.DefaultSensorStatus.STOPPED)


def test_first_tick_requests_the_pages_that_exist(nasa_double):
    result = tick(nasa_for(nasa_double), None)
    assert pages(result) == ["0001", "0002", "0003"]
    assert len({r.run_key for r in result.run_requests}) == 3
    cursor = json.loads(result.cursor)
    assert cursor["v"] == 3 and cursor["total_hits"] == 250 and cursor["repair"] == {}
    assert sorted(cursor["pages"]) == ["0001", "0003"]
    assert nasa_double.counts["search"] == 2


def test_run_requests_resolve_to_partitioned_runs_of_the_job(nasa_double):
    data = evaluate(nasa_for(nasa_double), None)
    assert [r.tags["dagster/partition"] for r in data.run_requests] == ["0001", "0002", "0003"]
    assert {r.tags["dagster/sensor_name"] for r in data.run_requests} == {"nasa_search_refresh"}
    assert json.loads(data.cursor)["total_hits"] == 250


def test_no_change_skips_with_at_most_two_requests(nasa_double, started):
    nasa, cursor = started
    result = tick(nasa, cursor)
    assert not result.run_requests
    assert "no change" in skip_message(result)
    before, after = json.loads(cursor), json.loads(result.cursor)
    assert after["total_hits"] == before["total_hits"] and after["generation"] == before["generation"]
    assert (before["watch"], after["watch"]) == (2, 3)  # the next tick compares page 3
    assert nasa_double.counts["search"] <= 2


def test_new_hits_at_the_end_affect_the_last_pages(nasa_double, started):
    nasa, cursor = started
    nasa_double.insert_items(60, at=250)
    result = tick(nasa, cursor)
    assert pages(result) == ["0003", "0004"]
    assert json.loads(result.cursor)["total_hits"] == 310
    assert nasa_double.counts["search"] == 3  # page 1, the old last page 3, the new last page 4
    # The new state is the baseline of the next tick.
    nasa_double.reset_counts()
    again = tick(nasa, result.cursor)
    assert not again.run_requests and nasa_double.counts["search"] == 2


def test_a_new_hit_on_page_one_affects_every_page(nasa_double, started):
    nasa, cursor = started
    nasa_double.insert_items(1, at=0)
    assert pages(tick(nasa, cursor)) == ["0001", "0002", "0003"]


def test_a_replaced_item_affects_its_page_only(nasa_double, started):
    nasa, cursor = started
    nasa_double.replace_item(5, "MOON-REPLACED-1")
    result = tick(nasa, cursor)
    assert pages(result) == ["0001"]
    nasa_double.replace_item(249, "MOON-REPLACED-2")
    assert pages(tick(nasa, result.cursor)) == ["0003"]


def test_a_change_in_a_middle_page_is_found_when_its_turn_comes(nasa_double, started):
    nasa, cursor = started
    for _ in range(2):  # pages 2 and 3 are each compared once
        cursor = tick(nasa, cursor).cursor
    nasa_double.replace_item(150, "MOON-REPLACED-MIDDLE")
    affected = []
    for _ in range(2):
        result = tick(nasa, cursor)
        affected += pages(result)
        cursor = result.cursor
    assert affected == ["0002"]


def test_the_same_state_twice_gives_identical_run_keys(nasa_double, started):
    nasa, cursor = started
    nasa_double.insert_items(60, at=250)
    first, second = tick(nasa, cursor), tick(nasa, cursor)
    assert [r.run_key for r in first.run_requests] == [r.run_key for r in second.run_requests]
    assert first.cursor == second.cursor


@pytest.mark.parametrize("faults", [["500"] * 10, [None, "503"]], ids=["page-1", "last-page"])
def test_failing_api_skips_and_keeps_the_cursor(nasa_double, started, faults):
    nasa, cursor = started
    nasa_double.insert_items(60, at=250)  # a change the failed tick must not swallow
    nasa_double.faults = {"search": faults}
    result = tick(nasa, cursor)
    assert not result.run_requests
    assert result.cursor is None  # None: the daemon keeps the stored cursor
    assert "NASA search API failed" in skip_message(result) and "HTTP 50" in skip_message(result)
    nasa_double.faults = {"search": faults}
    assert evaluate(nasa, cursor).cursor == cursor  # what the daemon stores: the old cursor

    nasa_double.faults = {}
    assert pages(tick(nasa, cursor)) == ["0003", "0004"]  # seen on the next good tick


def test_an_exhausted_request_budget_skips_without_any_request(nasa_double):
    nasa = nasa_for(nasa_double, rate_limit_per_hour=2)
    first = tick(nasa, None)  # page 1 and the last page: the whole budget
    assert pages(first) == ["0001", "0002", "0003"] and nasa_double.counts["search"] == 2
    nasa_double.reset_counts()
    nasa_double.insert_items(60, at=250)
    result = tick(nasa, first.cursor)
    assert not result.run_requests and result.cursor is None  # the stored cursor is kept
    assert skip_message(result).startswith("NASA API request budget exhausted for ")
    assert nasa_double.counts["search"] == 0


def test_unreachable_api_skips_without_leaking_the_key(nasa_double, started):
    _, cursor = started
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    nasa = nasa_for(nasa_double, base_url=closed, api_key="sekrit-key-123")
    result = tick(nasa, cursor)
    assert result.cursor is None and not result.run_requests
    assert "ConnectionError" in skip_message(result)
    assert "sekrit" not in skip_message(result)


def test_an_unreadable_cursor_starts_over(nasa_double):
    result = tick(nasa_for(nasa_double), '{"v": 99}')
    assert pages(result) == ["0001", "0002", "0003"]
    assert json.loads(result.cursor)["v"] == 3


def test_a_struggling_api_costs_a_tick_one_retry_at_most(nasa_double):
    # The steps' client would retry 4 times with up to 30 s waits; a tick must stay well inside
    # the daemon's sensor timeout, so its client retries once and waits at most 5 s.
    nasa = nasa_for(nasa_double, max_retries=4)
    nasa_double.faults = {"search": ["429"] * 10}
    result = tick(nasa, None)
    assert "NASA search API failed" in skip_message(result)
    assert nasa_double.counts["search"] == 2


# -- repairs, read from a real instance ----------------------------------------------------------


def run_pages(env: dict, instance, *keys: str) -> dict[str, str]:
    """Runs of moon_images_job (in process, one per page) against `env`; page -> run status."""
    job = dg.Definitions(
        assets=PAGE_ASSETS, jobs=[moon_images_job], resources=resources_from_env(env)
    ).resolve_job_def("moon_images_job")
    return {
        key: job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
        .dagster_run.status.value
        for key in keys
    }


def break_pages(double, env, instance) -> None:
    """Page 0001's images fail, page 0002's run fails, 0003 never runs; the double's faults are
    cleared and its request counts reset afterwards."""
    double.faults = {"always": {"image": "503"}}
    run_pages(env, instance, "0001")
    double.faults = {"always": {"search": "500", "image": "503"}}
    assert run_pages(env, instance, "0002") == {"0002": "FAILURE"}
    double.faults = {}
    double.reset_counts()


# One broken instance per module for the tests that only read it; a test that adds runs breaks
# its own. 1 item in 50 is sampled: page 0001 keeps 3 images, enough to fail, and page 0003 keeps 2
# to store.
@pytest.fixture(scope="module")
def broken_build(module_doubles, tmp_path_factory):
    """(double, settings, cursor of a first tick (so no page counts as changed), instance)."""
    double = module_doubles()
    env = local_env(double, tmp_path_factory.mktemp("broken") / "dataset", NASA_MAX_RETRIES="0",
                    SEARCH_RESULT_SAMPLING_FACTOR="50")
    cursor = tick(nasa_for(double), None).cursor
    instance = dg.DagsterInstance.ephemeral()
    break_pages(double, env, instance)
    return double, env, cursor, instance


@pytest.fixture
def broken_pages(broken_build):
    """The shared broken instance, for a test that only reads it: (resource, cursor, instance,
    double), the double's faults cleared and its request counts reset."""
    double, _, cursor, instance = broken_build
    double.faults = {}
    double.reset_counts()
    return nasa_for(double), cursor, instance, double


@pytest.fixture
def broken_own(broken_build, tmp_path):
    """A broken instance and dataset root of its own, for a test that adds runs: (resource,
    cursor, instance, settings, double)."""
    double, env, cursor, _ = broken_build
    env = {**env, "NASA_ASSETS_LOCAL_DIR": str(tmp_path / "dataset")}
    instance = dg.DagsterInstance.ephemeral()
    break_pages(double, env, instance)
    return nasa_for(double), cursor, instance, env, double


def repairing(**policy) -> dg.SensorDefinition:
    return refresh_sensor(policy=RepairPolicy(**policy))


def test_repairs_start_with_the_pages_that_never_ran_and_wait_for_the_failed_ones(broken_pages):
    nasa, cursor, instance, double = broken_pages
    result = tick(nasa, cursor, repairing(backoff_seconds=300), instance)
    assert [(r.partition_key, r.run_key, r.tags) for r in result.run_requests] == [
        ("0003", "repair-0003-a0-new",
         {"nasa/repair": "never materialized", "nasa/repair_attempt": "0"}),
    ]
    backoff = json.loads(result.cursor)["repair"]
    assert sorted(backoff) == ["0001", "0002"] and {b[0] for b in backoff.values()} == {1}
    assert double.counts["search"] <= 2  # the instance answers the rest


def test_due_repairs_cover_failed_runs_failed_images_and_missing_pages(broken_pages):
    nasa, cursor, instance, double = broken_pages
    last = {r.dagster_run.tags["dagster/partition"]: r.dagster_run.run_id
            for r in instance.get_run_records()}
    result = tick(nasa, cursor, repairing(backoff_seconds=0), instance)
    requests = {r.partition_key: r for r in result.run_requests}
    assert sorted(requests) == ["0001", "0002", "0003"]
    sampled = [item["data"][0]["nasa_id"] for item in double.corpus()[:100]]
    failed = sum(is_sampled(nasa_id, 50) for nasa_id in sampled)
    assert failed and requests["0001"].tags["nasa/repair"] == f"{failed} failed images"
    assert requests["0002"].tags["nasa/repair"] == "last run FAILURE"
    assert requests["0002"].run_key == f"repair-0002-a1-{last['0002'][:8]}"
    # A tick retried with the same cursor asks for the same runs (the daemon drops repeats).
    again = tick(nasa, cursor, repairing(backoff_seconds=0), instance)
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in result.run_requests]
    assert len(tick(nasa, cursor, repairing(backoff_seconds=0, max_runs_per_tick=2), instance)
               .run_requests) == 2


def test_a_repaired_page_is_forgotten_a_new_failure_gets_a_new_run_key_and_then_nothing_is_due(
    broken_own
):
    nasa, cursor, instance, env, double = broken_own
    sensor = repairing(backoff_seconds=0)
    first = tick(nasa, cursor, sensor, instance)
    assert run_pages(env, instance, "0001", "0003") == {"0001": "SUCCESS", "0003": "SUCCESS"}
    double.faults = {"always": {"search": "500"}}
    assert run_pages(env, instance, "0002") == {"0002": "FAILURE"}
    double.faults = {}
    second = tick(nasa, first.cursor, sensor, instance)
    (request,) = second.run_requests
    assert request.partition_key == "0002" and request.tags["nasa/repair_attempt"] == "2"
    assert request.run_key not in {r.run_key for r in first.run_requests}
    assert sorted(json.loads(second.cursor)["repair"]) == ["0002"]
    # Every page repaired: nothing is due (backoff 0 would request any page that still needed it),
    # and the cursor forgets 0002's backoff.
    assert run_pages(env, instance, "0002") == {"0002": "SUCCESS"}
    result = tick(nasa, second.cursor, sensor, instance)
    assert not result.run_requests
    assert skip_message(result).endswith("no page needs repair")
    assert json.loads(result.cursor)["repair"] == {}


def test_a_suspicious_drop_requests_no_repair_either(broken_pages, nasa_double):
    _, cursor, instance, _ = broken_pages
    nasa_double.total_hits = 0  # another double: the shared one keeps its 250 hits
    result = tick(nasa_for(nasa_double), cursor, repairing(backoff_seconds=0), instance)
    assert not result.run_requests and "250 -> 0" in skip_message(result)
    assert json.loads(result.cursor)["suspect"] == 0


def test_cursor_keeps_the_refresh_state_when_only_the_repair_state_is_unreadable():
    state = RefreshState(250, generation=2)
    good = write_cursor(state, {"0002": Backoff(2, "run-1", 10.0)})
    assert read_cursor(good) == (state, {"0002": Backoff(2, "run-1", 10.0)})
    bad = json.dumps({**json.loads(good), "repair": {"0002": "junk"}})
    warnings = []
    assert read_cursor(bad, warnings.append) == (state, {})
    assert "backoff starts over" in warnings[0]
    assert read_cursor(state.to_cursor()) == (state, {})  # written before repairs existed
