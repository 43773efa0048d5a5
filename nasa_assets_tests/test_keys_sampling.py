"""Image keys from nasa_id, deterministic sampling and splits, and page-range parsing."""

import hashlib
import itertools
import json
import os
import subprocess
import sys
import signal
import threading
import time
from collections import Counter
from pathlib import PurePosixPath

import pytest

from nasa_assets.dataset.keys import extension_of, image_key, safe_name, table_key
from nasa_assets.dataset.pages import (
    PAGE_KEYS,
    fetch_pages,
    page_key,
    page_number,
    page_ranges,
    page_runs,
    parse_page_range,
)
from nasa_assets.dataset.sampling import is_sampled, sample_bucket, seeded_sample, split_for
from nasa_assets_tests.helpers import image_row, materialize_pages, read_table


# --- safe_name / image_key -------------------------------------------------------------------

VERBATIM = ["PIA12235", "NHQ201907180108", "201407220003HQ", "AS11-40-5874", "A.B", "X", "1969"]
# Lower-case letters: the exact spelling is hashed, so case-only twins differ where case is ignored.
LOWER_CASE = ["as11-40-5874", "iss026-s-001", "jsc2007e034221", "624073main_1969-04-04_full", "a.b",
              "x", "Pia12235"]

TRICKY = [
    "../../etc/passwd", "..", ".", "...", "/", "//", "", " ", "\x00", "a\x00b", ".hidden",
    "-dash", "_under", "a/b", "a_b", "a b", "a%2Fb", "a%20b", "%", "a\\b", "a..b",
    "NHQ_2019_0311_Go Forward to the Moon", "NHQ_2018_0126_Jan. 31, 2018 Super Blue Blood Moon",
    "Mondlandung ÄÖÜ", "月球", "🌕", "a~b", "x" * 120, "x" * 121, "é" * 300, "a/../../b",
    "C:\\Windows\\system32", "images/../../x", "\n", "a\tb",
]


@pytest.mark.parametrize("nasa_id", VERBATIM)
def test_plain_ids_are_used_verbatim(nasa_id):
    assert safe_name(nasa_id) == nasa_id
    assert image_key(nasa_id, f"https://h/{nasa_id}~large.jpg") == f"images/{nasa_id}.jpg"


@pytest.mark.parametrize("nasa_id", LOWER_CASE)
def test_ids_with_lower_case_letters_keep_a_readable_slug_and_a_hash(nasa_id):
    digest = hashlib.sha256(nasa_id.encode()).hexdigest()[:24]
    assert safe_name(nasa_id) == f"{nasa_id}~{digest}"


def test_ids_that_differ_only_in_case_never_share_a_name_where_case_is_ignored():
    ids = ["AS11-40-5874", "as11-40-5874", "As11-40-5874", "aS11-40-5874", "PIA12235", "pia12235",
           "MOON-00001", "moon-00001", "a b", "A B"]
    assert len({safe_name(i).casefold() for i in ids}) == len(ids)


def test_traversal_id_gets_slug_and_hash():
    digest = hashlib.sha256(b"../../etc/passwd").hexdigest()[:24]
    assert safe_name("../../etc/passwd") == f"etc_passwd~{digest}"
    key = image_key("../../etc/passwd", "https://h/x~large.jpg")
    assert key == f"images/etc_passwd~{digest}.jpg"


def test_id_with_spaces_keeps_a_readable_slug():
    name = safe_name("NHQ_2019_0311_Go Forward to the Moon")
    slug, digest = name.split("~")
    assert slug == "NHQ_2019_0311_Go_Forward_to_the_Moon"
    assert digest == hashlib.sha256(b"NHQ_2019_0311_Go Forward to the Moon").hexdigest()[:24]


@pytest.mark.parametrize("nasa_id", VERBATIM + LOWER_CASE + TRICKY)
def test_every_name_stays_inside_images(nasa_id):
    name = safe_name(nasa_id)
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".")
    assert ".." not in name
    assert len(name) <= 120
    key = image_key(nasa_id, "https://h/x~large.jpg")
    path = PurePosixPath(key)
    assert path.parent == PurePosixPath("images")
    assert path.name == f"{name}.jpg"


def test_distinct_ids_never_collide():
    ids = VERBATIM + LOWER_CASE + TRICKY
    names = [safe_name(i) for i in ids]
    assert len(set(names)) == len(set(ids))


@pytest.mark.parametrize(
    "a, b",
    [("a b", "a_b"), ("a/b", "a_b"), ("a/b", "a b"), ("a%2Fb", "a/b"), ("..", "."), ("", " "),
     ("x" * 120, "x" * 121), ("a..b", "a_b"), ("a..b", "a._b")],
)
def test_look_alike_pairs_differ(a, b):
    assert safe_name(a) != safe_name(b)


def test_long_verbatim_limit():
    assert safe_name("X" * 120) == "X" * 120
    long = safe_name("X" * 121)
    assert long == "X" * 80 + "~" + hashlib.sha256(b"X" * 121).hexdigest()[:24]


@pytest.mark.parametrize(
    "url, ext",
    [
        ("https://h/x~large.jpg", "jpg"),
        ("https://h/x~orig.TIF", "tif"),
        ("https://h/a b/x~orig.png?x=1", "png"),
        ("https://h/x~orig.mp4", "bin"),
        ("https://h/dir.jpg/file", "bin"),
        ("https://h/noext", "bin"),
    ],
)
def test_extension_of(url, ext):
    assert extension_of(url) == ext


def test_table_key():
    assert table_key("search_results", "0007") == "search_results/0007.parquet"
    assert table_key("moon_dataset") == "moon_dataset.parquet"


# --- sampling --------------------------------------------------------------------------------


def independent_bucket(nasa_id: str, factor: int) -> int:
    """The design's formula, written out again so a change in the package shows up."""
    return int.from_bytes(hashlib.sha256(nasa_id.encode("utf-8")).digest()[:8], "big") % factor


@pytest.mark.parametrize(
    "nasa_id, factor, bucket",
    # computed once with independent_bucket; hard-coded so they can never drift
    [
        ("PIA12235", 10, 5), ("PIA12235", 3, 0), ("PIA12235", 100, 15),
        ("as11-40-5874", 10, 7), ("as11-40-5874", 100, 57),
        ("NHQ_2019_0311_Go Forward to the Moon", 10, 3),
        ("NHQ_2019_0311_Go Forward to the Moon", 3, 2),
        ("iss026-s-001", 10, 6), ("iss026-s-001", 3, 0),
    ],
)
def test_sample_bucket_is_stable(nasa_id, factor, bucket):
    assert sample_bucket(nasa_id, factor) == bucket
    assert independent_bucket(nasa_id, factor) == bucket
    assert is_sampled(nasa_id, factor) is (bucket == 0)


def test_factor_one_keeps_everything():
    ids = [f"id-{i}" for i in range(500)] + ["", "a b", "月"]
    assert all(is_sampled(i, 1) for i in ids)


def test_factor_ten_keeps_about_a_tenth():
    ids = [f"synthetic-{i:05d}" for i in range(10_000)]
    kept = sum(is_sampled(i, 10) for i in ids)
    assert 800 <= kept <= 1200
    assert kept == sum(independent_bucket(i, 10) == 0 for i in ids)


@pytest.mark.parametrize("factor", [0, -1])
def test_factor_below_one_raises(factor):
    with pytest.raises(ValueError, match="at least 1"):
        sample_bucket("PIA12235", factor)
    with pytest.raises(ValueError):
        is_sampled("PIA12235", factor)


FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def independent_split(nasa_id: str, fractions: dict[str, float]) -> str:
    """The split formula written out again: a salted sha256 point on [0, total)."""
    digest = hashlib.sha256(b"split:" + nasa_id.encode("utf-8")).digest()
    point, edge = int.from_bytes(digest[:8], "big") / 2**64 * sum(fractions.values()), 0.0
    for name, fraction in fractions.items():
        edge += fraction
        if point < edge:
            return name
    return name


def test_split_for_is_deterministic():
    assert split_for("PIA12235", FRACTIONS) == "train"
    assert split_for("as11-40-5874", FRACTIONS) == "val"
    assert split_for("iss026-s-001", FRACTIONS) == "train"
    ids = [f"x{i}" for i in range(200)]
    assert [split_for(i, FRACTIONS) for i in ids] == [independent_split(i, FRACTIONS) for i in ids]


def test_split_for_is_the_same_in_another_process():
    # Another interpreter with another str hash seed: nothing process-local may enter the split.
    ids = [f"x{i}" for i in range(200)]
    code = ("import json, sys; from nasa_assets.dataset.sampling import split_for; "
            f"print(json.dumps([split_for(i, {FRACTIONS!r}) for i in {ids!r}]))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert json.loads(out.stdout) == [split_for(i, FRACTIONS) for i in ids]


def test_split_fractions_are_respected_roughly():
    counts = Counter(split_for(f"synthetic-{i:05d}", FRACTIONS) for i in range(10_000))
    assert 7_600 <= counts["train"] <= 8_400
    assert 800 <= counts["val"] <= 1_200
    assert 800 <= counts["test"] <= 1_200


def test_split_fractions_need_not_sum_to_one_and_zero_share_gets_nothing():
    counts = Counter(split_for(f"s{i}", {"a": 0, "b": 3, "c": 1}) for i in range(4_000))
    assert counts["a"] == 0
    assert 2_700 <= counts["b"] <= 3_300
    assert counts["b"] + counts["c"] == 4_000


def test_split_is_independent_of_the_sampling_hash():
    """Kept items (bucket 0) must still spread over every split, or a sampled run has no val."""
    kept = [i for i in (f"synthetic-{n:05d}" for n in range(10_000)) if is_sampled(i, 10)]
    counts = Counter(split_for(i, FRACTIONS) for i in kept)
    assert set(counts) == {"train", "val", "test"}
    assert counts["val"] >= 0.05 * len(kept)


@pytest.mark.parametrize("fractions", [{}, {"a": 0}, {"a": -0.5, "b": 1}])
def test_split_bad_fractions(fractions):
    with pytest.raises(ValueError):
        split_for("x", fractions)


# --- parse_page_range ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("3", ["0003"]),
        ("0003", ["0003"]),
        (" 3 ", ["0003"]),
        ("1-5", ["0001", "0002", "0003", "0004", "0005"]),
        ("0001...0003", ["0001", "0002", "0003"]),
        ("7,1,4", ["0001", "0004", "0007"]),
        ("1-3,2-4", ["0001", "0002", "0003", "0004"]),
        ("5,,5,", ["0005"]),
        ("100", ["0100"]),
        ("99-100", ["0099", "0100"]),
    ],
)
def test_parse_page_range(spec, expected):
    assert parse_page_range(spec) == expected


def test_full_range_is_every_partition():
    assert parse_page_range("1-100") == PAGE_KEYS
    assert len(PAGE_KEYS) == 100
    assert PAGE_KEYS[0] == "0001" and PAGE_KEYS[-1] == "0100"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "no pages given"),
        (" , ", "no pages given"),
        ("abc", "not a page or page range"),
        ("1..5", "not a page or page range"),
        ("-3", "not a page or page range"),
        ("1-", "not a page or page range"),
        ("1-2-3", "not a page or page range"),
        ("2.5", "not a page or page range"),
        ("5-3", "empty page range"),
        ("0", "pages run from 1 to 100"),
        ("101", "pages run from 1 to 100"),
        ("90-101", "pages run from 1 to 100"),
    ],
)
def test_parse_page_range_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_page_range(spec)


def test_page_key_round_trip():
    for page in (1, 42, 100):
        assert page_number(page_key(page)) == page
    assert page_key(7) == "0007"


def test_pairwise_distinct_names_over_generated_ids():
    ids = {"".join(p) for n in range(4) for p in itertools.product("a_ ./%", repeat=n)}
    names = {safe_name(i) for i in ids}
    assert len(names) == len(ids)


@pytest.mark.parametrize(("keys", "runs", "text"), [
    ([], [], "none"),
    (["0003"], [("0003", "0003")], "0003"),
    (["0007", "0001", "0002", "0003"], [("0001", "0003"), ("0007", "0007")], "0001-0003, 0007"),
    (["0099", "0100", "0001"], [("0001", "0001"), ("0099", "0100")], "0001, 0099-0100"),
])
def test_page_runs_group_contiguous_pages(keys, runs, text):
    """The CLI launches one run per contiguous run; the card and metadata print the same runs."""
    assert page_runs(keys) == runs
    assert page_ranges(keys) == text


def test_fetch_pages_keeps_page_order_and_bounds_the_threads_in_flight():
    keys = [page_key(p) for p in range(1, 21)]
    lock, running, most = threading.Lock(), [0], [0]

    def fetch(key):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.01)  # long enough for the other threads to overlap, not a timing assertion
        with lock:
            running[0] -= 1
        return int(key)

    fetched = fetch_pages(keys, fetch, workers=3)
    assert list(fetched) == keys and list(fetched.values()) == list(range(1, 21))
    assert 1 < most[0] <= 3


def test_fetch_pages_raises_the_first_failure_and_starts_no_further_page():
    keys = [page_key(p) for p in range(1, 11)]
    started, release = [], threading.Event()

    def fetch(key):
        started.append(key)
        if key == "0001":
            raise ValueError("page 0001 is short")
        release.wait(2)  # the pages in flight when 0001 fails finish; the queued ones never start
        return key

    with pytest.raises(ValueError, match="page 0001 is short"):
        fetch_pages(keys, fetch, workers=2)
    assert "0001" in started and len(started) <= 3


class _Stopped(BaseException):
    """What Dagster raises in the run worker's main thread when a run is terminated."""


def test_fetch_pages_stopped_while_waiting_starts_no_further_page():
    keys = [page_key(p) for p in range(1, 41)]
    started, release = [], threading.Event()

    def fetch(key):
        started.append(key)
        release.wait(5)
        return key

    def stop(*_):
        raise _Stopped()

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(_Stopped):
            fetch_pages(keys, fetch, workers=4)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        release.set()
    assert len(started) == 4  # the four in flight when the run was stopped; none of the 36 queued


def test_seeded_sample_is_the_same_every_time_and_bounded():
    items = list(range(50))
    assert seeded_sample(items, 5) == seeded_sample(items, 5)
    assert len(set(seeded_sample(items, 5))) == 5 and set(seeded_sample(items, 5)) <= set(items)
    assert sorted(seeded_sample(items, 80)) == items
    assert seeded_sample([], 3) == []


def test_two_ids_differing_only_in_case_get_two_files_even_where_case_is_ignored(target, nasa_double):
    env, reader = target
    nasa_double.replace_item(3, "AS11-40-5874")
    nasa_double.replace_item(4, "as11-40-5874")
    assert materialize_pages(env, "0001").success

    images = read_table(reader.get("moon_images/0001.parquet"))
    assert set(images["status"]) == {"stored"}
    keys = reader.image_keys()
    assert len(keys) == 100
    assert len({key.casefold() for key in keys}) == 100  # no two files a case-blind disk would merge
    upper, lower = image_row(images, "AS11-40-5874"), image_row(images, "as11-40-5874")
    assert upper["image_key"] == "images/AS11-40-5874.jpg"  # upper-case ids keep their plain key
    assert lower["image_key"].startswith("images/as11-40-5874~")
    for row in (upper, lower):
        served = nasa_double.image_bytes_for(row["nasa_id"], "large")
        assert reader.get(row["image_key"]) == served
    assert upper["sha256"] != lower["sha256"]
