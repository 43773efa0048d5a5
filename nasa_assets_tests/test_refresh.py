"""The refresh sensor's state and its notion of "affected" pages, as pure functions."""

import hashlib
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasa_assets.dataset.refresh import (
    DEFAULT_DROP_SHARE,
    Decision,
    PageSeen,
    RefreshState,
    decide,
    fingerprint,
    item_ids,
    last_page,
    pages_to_check,
    sudden_drop,
)


def corpus(n: int, prefix: str = "ID") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


def page_of(items: list[str], page: int) -> list[str]:
    return items[(page - 1) * 100 : page * 100]


def tick(items: list[str], previous: RefreshState | None, requests: list | None = None,
         drop_share: float = DEFAULT_DROP_SHARE):
    """What the sensor does against a search API holding `items` (capped at 10,000)."""
    requests = [] if requests is None else requests
    requests.append(1)
    fetched = {1: page_of(items, 1)}
    for page in pages_to_check(previous, len(items), fetched[1], drop_share):
        requests.append(page)
        fetched[page] = page_of(items, page)
    return decide(previous, len(items), fetched, drop_share)


def settled(items: list[str], previous: RefreshState | None) -> Decision:
    """The decision once the results are confirmed: a sudden drop is acted on at its second tick."""
    decision = tick(items, previous)
    return tick(items, decision.state) if decision.suspicious else decision


def changed_pages(before: list[str], after: list[str]) -> set[str]:
    last = max(last_page(len(before)), last_page(len(after)))
    return {f"{p:04d}" for p in range(1, last + 1) if page_of(before, p) != page_of(after, p)}


@pytest.mark.parametrize(
    "total,last", [(0, 0), (1, 1), (100, 1), (101, 2), (250, 3), (10_000, 100), (12_345, 100)]
)
def test_last_page(total, last):
    assert last_page(total) == last


def test_fingerprint_is_order_sensitive_and_unambiguous():
    assert fingerprint(["a", "b"]) != fingerprint(["b", "a"])
    assert fingerprint(["a,b"]) != fingerprint(["a", "b"])
    assert fingerprint([None]) != fingerprint(["None"])
    assert fingerprint(["a", None]) == hashlib.sha256(b"[\"a\",null]").hexdigest()


def test_item_ids_survive_malformed_items():
    items = [{"data": [{"nasa_id": "x"}]}, {"data": []}, {"data": [{"nasa_id": 5}]}, "junk", None, {}]
    assert item_ids(items) == ["x", None, None, None, None, None]


def test_cursor_round_trips_and_is_versioned_json():
    state = RefreshState(
        250, {1: PageSeen.of(["a"]), 3: PageSeen.of(["b", "c"])}, generation=4, watch=3
    )
    cursor = state.to_cursor()
    data = json.loads(cursor)
    assert data["v"] == 3 and data["total_hits"] == 250 and data["generation"] == 4
    assert data["watch"] == 3 and data["suspect"] is None
    assert data["pages"]["0003"] == {"count": 2, "fingerprint": fingerprint(["b", "c"])}
    assert RefreshState.from_cursor(cursor) == state
    assert RefreshState.from_cursor(None) is None
    assert RefreshState.from_cursor("") is None


def test_a_version_1_cursor_is_read_with_the_watch_at_page_2():
    v1 = json.dumps({"v": 1, "total_hits": 250, "generation": 3,
                     "pages": {"0001": {"count": 1, "fingerprint": fingerprint(["a"])}}})
    assert RefreshState.from_cursor(v1) == RefreshState(250, {1: PageSeen.of(["a"])}, 3, watch=2)


@pytest.mark.parametrize("bad", ["not json", "[]", '{"v": 4, "total_hits": 1, "pages": {}}',
                                 '{"v": 1}', '{"v": 1, "total_hits": 3, "pages": {"x": {}}}'])
def test_unreadable_cursor_is_a_value_error(bad):
    with pytest.raises(ValueError, match="unreadable refresh cursor"):
        RefreshState.from_cursor(bad)


def test_first_tick_requests_every_existing_page():
    decision = tick(corpus(250), None)
    assert decision.affected == ["0001", "0002", "0003"]
    assert set(decision.state.pages) == {1, 3}
    assert decision.state.generation == 1
    assert tick(corpus(12_000)[:10_000], None).affected[-1] == "0100"


def test_first_tick_without_hits_requests_nothing():
    decision = tick([], None)
    assert decision.affected == []
    assert decision.state.total_hits == 0


def test_no_hits_tick_after_tick_requests_nothing():
    state = tick([], None).state
    for _ in range(3):
        decision = tick([], state)
        assert decision.affected == [] and "no change" in decision.reason
        state = decision.state
    assert state.generation == 0
    # Results that drop to nothing (confirmed) re-materialize the old pages once, then settle.
    gone = settled([], tick(corpus(250), None).state)
    assert gone.affected == ["0001", "0002", "0003"]
    assert tick([], gone.state).affected == []


def test_unchanged_results_cost_two_requests_each_tick_watching_pages_in_turn():
    items = corpus(250)
    state = tick(items, None).state
    watched = []
    for _ in range(5):
        requests = []
        again = tick(items, state, requests)
        assert again.affected == [] and "no change" in again.reason
        assert again.state.total_hits == 250 and again.state.generation == state.generation
        assert len(requests) == 2
        watched.append(requests[1])
        state = again.state
    assert watched == [2, 3, 2, 3, 2]
    assert state.pages == {p: PageSeen.of(page_of(items, p)) for p in (1, 2, 3)}
    single = tick(corpus(80), None).state
    requests = []
    assert tick(corpus(80), single, requests).affected == [] and requests == [1]


def test_hits_appended_to_a_partial_last_page():
    items = corpus(250)
    state = tick(items, None).state
    decision = tick(items + corpus(60, "NEW"), state)
    assert decision.affected == ["0003", "0004"]
    assert "kept its 50 items" in decision.reason
    assert decision.state.total_hits == 310 and set(decision.state.pages) == {1, 3, 4}


def test_hits_appended_after_a_full_last_page_start_on_the_next_page():
    items = corpus(200)
    state = tick(items, None).state
    assert tick(items + corpus(5, "NEW"), state).affected == ["0003"]


def test_hits_inserted_in_the_middle_affect_everything_after_page_one():
    items = corpus(450)
    state = tick(items, None).state
    after = items[:230] + corpus(3, "NEW") + items[230:]
    decision = tick(after, state)
    assert decision.affected == ["0002", "0003", "0004", "0005"]
    assert "later pages shifted" in decision.reason


def test_new_hit_on_page_one_affects_every_page():
    items = corpus(250)
    state = tick(items, None).state
    requests = []
    decision = tick(corpus(1, "NEW") + items, state, requests)
    assert decision.affected == ["0001", "0002", "0003"]
    # The old last page is not needed to decide; only the new last page is fetched to remember.
    assert requests == [1, 3]


def test_shrinking_results_rematerialize_pages_past_the_new_end():
    items = corpus(250)
    state = tick(items, None).state
    decision = tick(items[:150], state)
    assert decision.affected == ["0002", "0003"]  # 0003 becomes an empty table


def test_replaced_item_with_same_total_affects_only_its_page():
    items = corpus(250)
    state = tick(items, None).state
    on_first = list(items)
    on_first[7] = "REPLACED"
    assert tick(on_first, state).affected == ["0001"]
    on_last = list(items)
    on_last[249] = "REPLACED"
    # The watch is on page 2 first, then on the last page.
    assert tick(on_last, state).affected == []
    assert tick(on_last, tick(items, state).state).affected == ["0003"]


@pytest.mark.parametrize("position", [0, 150, 230, 399, 449])
def test_an_in_place_change_on_any_page_is_found_within_one_round_of_the_watch(position):
    items = corpus(450)  # pages 1-5
    state = tick(items, None).state
    for _ in range(4):  # one round: every page has been seen
        state = tick(items, state).state
    changed = list(items)
    changed[position] = "REPLACED"
    affected = []
    for _ in range(4):
        decision = tick(changed, state)
        affected += decision.affected
        state = decision.state
    assert affected == [f"{position // 100 + 1:04d}"]


def test_a_page_seen_for_the_first_time_is_only_remembered():
    items = corpus(450)
    state = tick(items, None).state
    assert 2 not in state.pages
    decision = tick(items[:120] + ["REPLACED"] + items[121:], state)
    assert decision.affected == [] and 2 in decision.state.pages


def test_a_refresh_forgets_what_the_refreshed_pages_held():
    items = corpus(450)
    state = tick(items, None).state
    for _ in range(4):
        state = tick(items, state).state
    assert set(state.pages) == {1, 2, 3, 4, 5}
    shifted = items[:230] + corpus(3, "NEW") + items[230:]
    decision = tick(shifted, state)
    assert decision.affected == ["0002", "0003", "0004", "0005"]
    # Pages 2 and 3 were not read on this tick, so their old fingerprints are dropped rather than
    # compared with what the refresh already fetched; 5 (the old last page) and 1 were read.
    assert set(decision.state.pages) == {1, 5}


def test_changes_past_the_api_cap_affect_nothing():
    state = tick(corpus(10_000), None).state
    decision = tick(corpus(10_000), RefreshState(12_000, state.pages, state.generation))
    assert decision.affected == []
    assert decision.state.total_hits == 10_000


def test_run_keys_are_deterministic_and_new_for_each_generation():
    a, b = corpus(250), corpus(250) + corpus(10, "NEW")
    start = tick(a, None).state
    first = tick(b, start)
    same = tick(b, start)
    assert [first.run_key(k) for k in first.affected] == [same.run_key(k) for k in same.affected]
    assert first.run_key("0003").startswith("page-0003-g2-")
    # A -> B -> A -> B: the second A -> B is a new generation, so its runs are not deduplicated.
    back = tick(a, first.state)
    forth = tick(b, back.state)
    assert forth.affected == first.affected
    earlier = {first.run_key(k) for k in first.affected}
    assert earlier.isdisjoint(forth.run_key(k) for k in forth.affected)
    # A tick that requests nothing does not advance the generation.
    assert tick(b, forth.state).state.generation == forth.state.generation


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(0, 1_000),
    op=st.sampled_from(["insert", "delete", "append"]),
    where=st.floats(0, 1),
    count=st.integers(1, 150),
)
def test_every_changed_page_is_affected_when_the_total_changes(size, op, where, count):
    before = corpus(size)
    at = int(where * size)
    if op == "insert":
        after = before[:at] + corpus(count, "NEW") + before[at:]
    elif op == "append":
        after = before + corpus(count, "NEW")
    else:
        after = before[:at] + before[at + count :]
    if len(after) == len(before):
        return
    decision = settled(after, tick(before, None).state)
    assert changed_pages(before, after) <= set(decision.affected)
    assert decision.affected == sorted(decision.affected)


# -- a sudden drop of total_hits is confirmed before anything acts on it ---------------------


@pytest.mark.parametrize("before,after,share,sudden", [
    (250, 0, 0.5, True), (250, 124, 0.5, True), (250, 125, 0.5, False), (250, 240, 0.5, False),
    (250, 300, 0.5, False), (250, 249, 0.0, True), (250, 1, 1.0, False), (250, 0, 1.0, True),
    (0, 0, 0.5, False),
])
def test_sudden_drop(before, after, share, sudden):
    assert sudden_drop(before, after, share) is sudden


def test_a_sudden_drop_waits_for_a_second_observation():
    items = corpus(250)
    state = tick(items, None).state
    requests: list = []
    first = tick([], state, requests)
    assert first.suspicious and first.affected == [] and requests == [1]  # page 1 only
    assert "250 -> 0" in first.reason and "later tick" in first.reason
    # Everything but the suspicious total is kept.
    assert first.state == replace(state, suspect=0)
    assert RefreshState.from_cursor(first.state.to_cursor()) == first.state
    second = tick([], first.state)
    assert not second.suspicious and second.affected == ["0001", "0002", "0003"]
    assert second.state.total_hits == 0 and second.state.suspect is None


def test_the_old_total_seen_again_forgets_the_suspicion():
    items = corpus(250)
    state = tick(items, None).state
    suspicious = tick(items[:100], state)
    assert suspicious.suspicious and suspicious.state.suspect == 100
    again = tick(items, suspicious.state)
    assert again.affected == [] and "no change" in again.reason
    assert again.state.suspect is None and again.state.generation == state.generation
    # The forgotten drop needs two observations again.
    assert tick(items[:100], again.state).suspicious


def test_a_different_drop_on_the_next_tick_is_suspicious_again():
    items = corpus(250)
    state = tick(items, None).state
    first = tick(items[:100], state)
    other = tick(items[:10], first.state)
    assert other.suspicious and other.state.suspect == 10 and other.affected == []
    assert tick(items[:10], other.state).affected == ["0001", "0002", "0003"]


def test_a_drop_within_the_share_is_acted_on_at_once():
    items = corpus(250)
    state = tick(items, None).state
    decision = tick(items[:150], state)  # 40 % fewer hits: under the default share of 50 %
    assert not decision.suspicious and decision.affected == ["0002", "0003"]
    assert tick(items[:150], state, drop_share=0.3).suspicious


def test_version_2_cursors_are_read_with_no_suspicion():
    v2 = json.dumps({"v": 2, "total_hits": 250, "generation": 3, "watch": 3,
                     "pages": {"0001": {"count": 1, "fingerprint": fingerprint(["a"])}}})
    state = RefreshState.from_cursor(v2)
    assert state == RefreshState(250, {1: PageSeen.of(["a"])}, generation=3, watch=3)
    assert state.suspect is None
