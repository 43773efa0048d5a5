"""search_results never replaces good data with a bad answer: a short or empty search page fails
the run and leaves every table and image of its pages as they were."""

import pytest

from nasa_assets.dataset.sampling import is_sampled
from nasa_assets.nasa.parsing import SearchPage, expected_items, short_page_problem
from nasa_assets_tests.helpers import materialize_pages, read_table

TABLES = ("search_results", "sampled_manifest", "moon_images", "rejected")
# What is asserted is how many answers were asked for, not how long was waited between them.
QUICK_RETRIES = {"NASA_RETRY_BACKOFF_SECONDS": "0.01"}
# A guard on the search answer does not depend on how many images a page has: about 1 in 10.
FACTOR = 10
SAMPLED = {"SEARCH_RESULT_SAMPLING_FACTOR": str(FACTOR)}


def sampled_images(double, pages) -> int:
    """How many images the runs of `pages` (numbers, 100 items each) download."""
    ids = [item["data"][0]["nasa_id"] for item in double.corpus()]
    return sum(is_sampled(i, FACTOR) for p in pages for i in ids[(p - 1) * 100:p * 100])


def snapshot(reader, pages) -> dict:
    """The set of stored images, and what tells each of them and every table of `pages` changed
    (on S3 a rewrite of the same bytes too: its last-modified time)."""
    images = sorted(reader.image_keys())
    tables = [f"{t}/{p}.parquet" for t in TABLES for p in pages]
    fingerprints = reader.fingerprints(tables + images)
    assert all(fingerprints[k] for k in tables)  # every table is there
    return fingerprints | {"images": images}


def failure_message(result) -> str:
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "search_results"
    return failure.event_specific_data.error.message


@pytest.mark.parametrize(
    ("page", "total", "expected"),
    [(1, 250, 100), (2, 250, 100), (3, 250, 50), (4, 250, 0), (1, 0, 0), (100, 20_000, 100),
     (101, 20_000, 0)],
)
def test_expected_items_follow_total_hits(page, total, expected):
    assert expected_items(page, total, 100, 100) == expected


def test_a_short_page_is_named_and_a_full_or_trailing_one_is_not():
    assert short_page_problem(2, SearchPage(items=[], total_hits=250), 100, 100) == (
        "search page 2 answered 0 items but total_hits 250 implies 100")
    assert short_page_problem(3, SearchPage(items=[{}] * 49, total_hits=250), 100, 100) == (
        "search page 3 answered 49 items but total_hits 250 implies 50")
    assert short_page_problem(3, SearchPage(items=[{}] * 50, total_hits=250), 100, 100) is None
    assert short_page_problem(4, SearchPage(items=[], total_hits=250), 100, 100) is None
    assert short_page_problem(101, SearchPage(exhausted=True), 100, 100) is None


def test_an_empty_answer_overwrites_nothing_and_fails_the_run(target, nasa_double):
    env, reader = target
    env = env | QUICK_RETRIES | SAMPLED | {"NASA_MAX_RETRIES": "2"}
    assert materialize_pages(env, "0002").success
    before = snapshot(reader, ["0002"])
    assert len(before["images"]) == sampled_images(nasa_double, [2]) > 0

    nasa_double.faults = {"always": {"search": "empty"}}
    nasa_double.reset_counts()
    result = materialize_pages(env, "0002")

    assert not result.success
    assert failure_message(result).endswith(
        ": search page 2 answered 0 items but total_hits 250 implies 100; "
        "nothing of page 0002 was overwritten\n")
    assert nasa_double.counts["search"] == 3  # the first answer and NASA_MAX_RETRIES more
    assert nasa_double.counts["collection"] == nasa_double.counts["image"] == 0
    assert snapshot(reader, ["0002"]) == before
    assert not result.get_asset_materialization_events()


# The retry is the search client's; no stored object is at stake, so one backend is enough.
@pytest.mark.parametrize("target", ["local"], indirect=True)
def test_one_empty_answer_followed_by_a_good_one_is_a_transient_error(target, nasa_double):
    env, reader = target
    nasa_double.faults = {"search": ["empty"]}
    result = materialize_pages(env | QUICK_RETRIES | SAMPLED | {"NASA_MAX_RETRIES": "2"}, "0002")
    assert result.success
    assert nasa_double.counts["search"] == 2
    assert len(read_table(reader.get("search_results/0002.parquet"))) == 100
    assert len(read_table(reader.get("moon_images/0002.parquet"))) == sampled_images(nasa_double, [2])


def test_one_bad_page_of_a_range_run_fails_the_run_and_writes_no_page(target, nasa_double):
    env, reader = target
    env = env | QUICK_RETRIES | SAMPLED | {"NASA_MAX_RETRIES": "1"}
    pages = ["0001", "0002", "0003"]
    assert materialize_pages(env, "0001", "0003").success
    before = snapshot(reader, pages)
    assert len(before["images"]) == sampled_images(nasa_double, [1, 2, 3])
    assert all(sampled_images(nasa_double, [p]) for p in (1, 2, 3))  # each page stored images

    nasa_double.reset_counts()
    nasa_double.faults = {"by_page": {2: "empty"}}  # pages 1 and 3 answer, page 2 never does
    result = materialize_pages(env, "0001", "0003")

    assert not result.success
    assert failure_message(result).endswith(
        ": search page 2 answered 0 items but total_hits 250 implies 100; nothing of page 0002 was "
        "overwritten, nor of the other 2 pages of this run\n")
    # The pages are fetched concurrently: page 2 twice (NASA_MAX_RETRIES=1), the others once.
    assert nasa_double.counts["search"] == 4
    assert snapshot(reader, pages) == before
    assert not result.get_asset_materialization_events()
