"""Which pages the refresh sensor repairs and when, as pure functions."""

import pytest

from nasa_assets.dataset.repair import (
    Backoff,
    LastImages,
    LastRun,
    PageHealth,
    RepairPolicy,
    page_health,
    plan_repairs,
)
from nasa_assets.defs.settings import repair_policy_from_env, total_hits_drop_share

POLICY = RepairPolicy(backoff_seconds=300, backoff_max_seconds=21600, max_runs_per_tick=5)


def failed(key: str, run_id: str, at: float) -> PageHealth:
    return PageHealth(key, "last run FAILURE", run_id, at)


def test_backoff_doubles_per_failure_up_to_the_cap():
    assert [POLICY.wait(n) for n in range(0, 9)] == [
        0, 300, 600, 1200, 2400, 4800, 9600, 19200, 21600]
    assert POLICY.wait(10_000) == 21600


@pytest.mark.parametrize("last_run,images,in_range,problem", [
    (None, None, True, "never materialized"),
    (None, None, False, None),
    (LastRun("r1", "SUCCESS", 10), LastImages("r1", 0, 9), True, None),
    (LastRun("r1", "FAILURE", 10), LastImages("r0", 0, 5), True, "last run FAILURE"),
    (LastRun("r1", "CANCELED", 10), None, False, "last run CANCELED"),
    # A clean materialization after the failed run (from another job): nothing to repair.
    (LastRun("r1", "FAILURE", 10), LastImages("r2", 0, 20), True, None),
    (LastRun("r1", "SUCCESS", 10), LastImages("r1", 3, 9), True, "3 failed images"),
    (None, LastImages("r2", 2, 9), False, "2 failed images"),
    (LastRun("r1", "SUCCESS", 10), None, True, "never materialized"),
])
def test_page_health(last_run, images, in_range, problem):
    assert page_health("0002", last_run, images, in_range).problem == problem


def test_the_outcome_is_the_run_that_left_the_page_broken():
    assert page_health("0002", LastRun("r1", "FAILURE", 10), None, True) == failed("0002", "r1", 10)
    images = page_health("0002", LastRun("r1", "SUCCESS", 10), LastImages("r1", 3, 9), True)
    assert (images.outcome, images.at) == ("r1", 9)
    assert page_health("0002", None, None, True) == PageHealth("0002", "never materialized")


def test_a_page_never_run_is_requested_at_once():
    plan = plan_repairs([PageHealth("0003", "never materialized")], (), {}, 1000, POLICY)
    assert [(r.key, r.attempt, r.run_key) for r in plan.runs] == [("0003", 0, "repair-0003-a0-new")]
    assert plan.state == {}


def test_the_first_repair_waits_the_first_interval_after_the_failure():
    health = [failed("0002", "run-aaaaaaaa-1", 1000)]
    early = plan_repairs(health, (), {}, 1299, POLICY)
    assert early.runs == [] and early.waiting == {"0002": 1}
    assert early.state == {"0002": Backoff(1, "run-aaaaaaaa-1", 1000)}
    due = plan_repairs(health, (), early.state, 1300, POLICY)
    (run,) = due.runs
    assert (run.key, run.attempt, run.run_key) == ("0002", 1, "repair-0002-a1-run-aaaa")
    assert run.tags == {"nasa/repair": "last run FAILURE", "nasa/repair_attempt": "1"}
    assert due.state == early.state  # the same outcome is not counted twice


def test_each_new_failure_doubles_the_wait_and_gives_a_new_run_key():
    state, now, keys = {}, 0.0, []
    for n, wait in enumerate([300, 600, 1200, 2400], start=1):
        health = [failed("0002", f"run-{n}", now)]
        assert plan_repairs(health, (), state, now + wait - 1, POLICY).runs == []
        plan = plan_repairs(health, (), state, now + wait, POLICY)
        assert [r.attempt for r in plan.runs] == [n]
        keys.append(plan.runs[0].run_key)
        state, now = plan.state, now + wait + 60  # the repair run fails a minute later
    assert state["0002"].failures == 4
    assert len(set(keys)) == 4


def test_the_wait_is_capped():
    state = {"0002": Backoff(30, "run-30", 0)}
    health = [failed("0002", "run-30", 0)]
    assert plan_repairs(health, (), state, 21599, POLICY).runs == []
    assert [r.attempt for r in plan_repairs(health, (), state, 21600, POLICY).runs] == [30]


def test_a_success_resets_the_failure_count():
    state = {"0002": Backoff(5, "run-5", 0)}
    healthy = plan_repairs([PageHealth("0002", None)], (), state, 10, POLICY)
    assert healthy.runs == [] and healthy.state == {}
    # The next failure waits the first interval again.
    again = plan_repairs([failed("0002", "run-6", 100)], (), healthy.state, 400, POLICY)
    assert [r.attempt for r in again.runs] == [1]


def test_a_busy_page_is_never_requested_and_keeps_its_backoff():
    state = {"0002": Backoff(2, "run-2", 0)}
    health = [failed("0002", "run-2", 0), PageHealth("0003", "never materialized")]
    plan = plan_repairs(health, {"0002", "0003"}, state, 10**6, POLICY)
    assert plan.runs == [] and plan.busy == ["0002", "0003"]
    assert plan.state == state


def test_pages_requested_for_a_change_get_no_repair_run():
    missing = [PageHealth("0003", "never materialized")]
    plan = plan_repairs(missing, (), {}, 0, POLICY, requested={"0003"})
    assert plan.runs == [] and plan.waiting == {}


def test_at_most_max_runs_per_tick_the_longest_overdue_first():
    health = [failed(f"{p:04d}", f"run-{p}", 1000 - p) for p in range(1, 9)]
    policy = RepairPolicy(backoff_seconds=10, max_runs_per_tick=3)
    plan = plan_repairs(health, (), {}, 2000, policy)
    assert [r.key for r in plan.runs] == ["0008", "0007", "0006"]
    assert plan.waiting == {f"{p:04d}": 0.0 for p in range(1, 6)}
    assert "waiting 0001 (next tick)" in plan.summary()
    # Every broken page keeps its backoff, requested or not.
    assert sorted(plan.state) == [f"{p:04d}" for p in range(1, 9)]
    assert plan_repairs(health, (), {}, 2000, RepairPolicy(max_runs_per_tick=0)).runs == []


def test_excluded_pages_are_left_alone():
    policy = RepairPolicy(excluded=frozenset({"0002"}))
    health = [failed("0002", "r", 0), PageHealth("0003", "never materialized")]
    plan = plan_repairs(health, (), {"0002": Backoff(1, "r", 0)}, 10**6, policy)
    assert [r.key for r in plan.runs] == ["0003"] and plan.state == {}


def test_backoff_state_round_trips_through_json():
    backoff = Backoff(3, "run-abc", 12.5)
    assert Backoff.from_json(backoff.to_json()) == backoff


def test_settings_from_the_environment():
    assert repair_policy_from_env({}) == RepairPolicy(300, 21600, 5)
    policy = repair_policy_from_env({
        "NASA_REPAIR_BACKOFF_SECONDS": "2", "NASA_REPAIR_BACKOFF_MAX_SECONDS": "60",
        "NASA_REPAIR_MAX_RUNS_PER_TICK": "0", "NASA_REPAIR_SKIP_PAGES": "7, 9-10",
    })
    assert policy == RepairPolicy(2, 60, 0, frozenset({"0007", "0009", "0010"}))
    assert total_hits_drop_share({}) == 0.5
    assert total_hits_drop_share({"NASA_TOTAL_HITS_DROP_SHARE": "0.25"}) == 0.25


@pytest.mark.parametrize("name,value", [
    ("NASA_REPAIR_BACKOFF_SECONDS", "soon"), ("NASA_REPAIR_BACKOFF_SECONDS", "nan"),
    ("NASA_REPAIR_BACKOFF_SECONDS", "inf"), ("NASA_REPAIR_BACKOFF_SECONDS", "-1"),
    ("NASA_REPAIR_BACKOFF_MAX_SECONDS", "inf"), ("NASA_REPAIR_BACKOFF_MAX_SECONDS", "299"),
    ("NASA_REPAIR_MAX_RUNS_PER_TICK", "1.5"), ("NASA_REPAIR_MAX_RUNS_PER_TICK", "-1"),
    ("NASA_REPAIR_SKIP_PAGES", "101"), ("NASA_REPAIR_SKIP_PAGES", "x"),
])
def test_bad_repair_settings_name_the_variable(name, value):
    with pytest.raises(ValueError, match=name):
        repair_policy_from_env({name: value})


@pytest.mark.parametrize("value", ["half", "nan", "inf", "1.5", "-0.1"])
def test_bad_drop_share_names_the_variable(value):
    with pytest.raises(ValueError, match="NASA_TOTAL_HITS_DROP_SHARE"):
        total_hits_drop_share({"NASA_TOTAL_HITS_DROP_SHARE": value})
