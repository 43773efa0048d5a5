"""The file-host breaker on its own: when it opens, what its probe decides, who waits."""

import threading

import pytest

from nasa_assets.nasa.breaker import Breaker


def in_thread(call):
    """Runs `call` in a thread; returns (thread, outcome list filled when it returns)."""
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
    thread.start()
    return thread, outcome


def test_it_opens_after_threshold_consecutive_failures_only():
    breaker = Breaker(threshold=3, pause=0)
    for _ in range(2):
        assert breaker.before_request()
        breaker.failure()
    assert breaker.before_request()
    breaker.success()  # a success in between: the count starts again
    for _ in range(2):
        assert breaker.before_request()
        breaker.failure()
    assert breaker.state == "closed"
    assert breaker.before_request()
    breaker.failure()
    assert breaker.state == "open"
    assert breaker.metadata() == {"file_host_requests": 6, "file_host_failures": 5,
                                  "breaker_opened": True, "file_host_unavailable": False}


def test_a_failed_probe_leaves_it_down_and_nothing_more_is_sent():
    breaker = Breaker(threshold=1, pause=0)
    assert breaker.before_request()
    breaker.failure()
    assert breaker.before_request()  # the probe
    assert breaker.state == "probing"
    breaker.failure()
    assert breaker.down
    assert [breaker.before_request() for _ in range(5)] == [False] * 5
    breaker.success()  # a late answer of a request sent earlier does not revive it
    assert breaker.down and not breaker.before_request()
    assert breaker.metadata()["file_host_requests"] == 2


def test_a_successful_probe_closes_it():
    breaker = Breaker(threshold=1, pause=0)
    breaker.before_request()
    breaker.failure()
    assert breaker.before_request()
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.before_request()
    assert breaker.metadata()["breaker_opened"] is True


def test_others_wait_for_the_probe_and_follow_its_outcome():
    breaker = Breaker(threshold=1, pause=0)
    breaker.before_request()
    breaker.failure()
    assert breaker.before_request()  # this thread probes
    waiter, outcome = in_thread(breaker.before_request)
    waiter.join(0.2)
    assert waiter.is_alive() and outcome == []  # held while the probe is out
    breaker.failure()
    waiter.join(10)
    assert outcome == [False]


def test_a_failure_of_another_thread_does_not_decide_the_probe():
    breaker = Breaker(threshold=1, pause=0)
    breaker.before_request()
    breaker.failure()
    assert breaker.before_request()  # this thread probes
    late, _ = in_thread(breaker.failure)  # a request sent before the breaker opened
    late.join(10)
    assert breaker.state == "probing"
    breaker.success()
    assert breaker.state == "closed"


def test_requests_wait_out_the_pause_and_any_success_reopens_the_way():
    breaker = Breaker(threshold=1, pause=3600)
    breaker.before_request()
    breaker.failure()
    waiter, outcome = in_thread(breaker.before_request)
    waiter.join(0.2)
    assert waiter.is_alive() and outcome == []  # an hour's pause: nobody probes yet
    breaker.success()  # an answer that was in flight: the host is back
    waiter.join(10)
    assert outcome == [True] and breaker.state == "closed"


def test_a_probe_that_never_went_out_hands_probing_to_the_next_request():
    breaker = Breaker(threshold=1, pause=0)
    breaker.before_request()
    breaker.failure()
    assert breaker.before_request()
    waiter, outcome = in_thread(breaker.before_request)
    breaker.release()  # e.g. the URL could not be sent
    waiter.join(10)
    assert outcome == [True] and breaker.state == "probing"


def test_trip_opens_at_once():
    breaker = Breaker(threshold=100, pause=0)
    breaker.trip()
    assert breaker.state == "open" and breaker.metadata()["breaker_opened"] is True
    assert breaker.before_request()
    breaker.trip()  # the probe is told to wait that long again: down
    assert breaker.down


@pytest.mark.parametrize("threshold, pause", [(0, 1.0), (1, -1.0), (1, float("nan"))])
def test_nonsense_parameters_are_refused(threshold, pause):
    with pytest.raises(ValueError):
        Breaker(threshold, pause)
