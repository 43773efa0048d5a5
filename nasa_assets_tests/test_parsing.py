"""Parsing of /search bodies, fed with real recorded NASA responses."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nasa_assets.dataset import tables
from nasa_assets.nasa.parsing import (
    MAX_TEXT,
    SearchResponseError,
    clean_text,
    is_results_cap,
    parse_date,
    parse_item,
    parse_items,
    parse_keywords,
    parse_search_response,
)

DATA = Path(__file__).parent / "data"

SEARCH_COLUMNS = [f.name for f in tables.SCHEMAS["search_results"]]


def load(name: str):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


# --- parse_search_response -------------------------------------------------------------------


def test_moon_page_items_total_and_next_link():
    page = parse_search_response(load("search-moon-page1.json"))
    assert len(page.items) == 8
    assert page.total_hits == 9776
    assert page.next_url == "https://images-api.nasa.gov/search?page=2&q=moon"
    assert page.exhausted is False


def test_apollo11_page_keeps_http_next_link_verbatim():
    page = parse_search_response(load("search-apollo11-image-page1-first20.json"))
    assert len(page.items) == 20
    assert page.total_hits == 1472
    assert page.next_url == "http://images-api.nasa.gov/search?q=apollo+11&media_type=image&page=2"


def test_zero_hits_is_an_empty_page_without_next():
    page = parse_search_response(load("search-zero-hits.json"))
    assert page.items == []
    assert page.total_hits == 0
    assert page.next_url is None


def test_last_page_without_links_key_has_no_next_url():
    body = load("search-last-page-no-next-link.json")
    assert "links" not in body["collection"]  # the recorded quirk this test is about
    page = parse_search_response(body)
    assert page.next_url is None
    assert page.total_hits == 2
    assert len(page.items) == 2


def test_error_body_raises_with_the_api_reason():
    with pytest.raises(SearchResponseError) as caught:
        parse_search_response(load("error-search-no-parameters.json"))
    assert "Expected 'q' text search parameter or other keywords." in str(caught.value)


@pytest.mark.parametrize(
    "body, message",
    [
        (None, "no collection object"),
        ([], "no collection object"),
        ("<html>", "no collection object"),
        ({"collection": "x"}, "no collection object"),
        ({"collection": {"items": None}}, "collection.items is not a list"),
        ({"collection": {"items": {}}}, "collection.items is not a list"),
    ],
)
def test_non_search_bodies_raise(body, message):
    with pytest.raises(SearchResponseError, match=message):
        parse_search_response(body)


def test_missing_or_bad_total_hits_falls_back_to_item_count():
    assert parse_search_response({"collection": {"items": [{}, {}]}}).total_hits == 2
    bad = {"collection": {"items": [{}], "metadata": {"total_hits": -5}}}
    assert parse_search_response(bad).total_hits == 1
    text = {"collection": {"items": [], "metadata": {"total_hits": "12"}}}
    assert parse_search_response(text).total_hits == 0


def test_only_a_next_link_with_string_href_counts():
    body = {"collection": {"items": [], "links": [
        {"rel": "prev", "href": "https://x/prev"},
        {"rel": "next", "href": 5},
        "junk",
    ]}}
    assert parse_search_response(body).next_url is None


def test_is_results_cap():
    assert is_results_cap("Maximum number of search results have been displayed")
    assert is_results_cap("maximum NUMBER of search results have been displayed.")
    assert not is_results_cap("Expected 'q' text search parameter or other keywords.")
    assert not is_results_cap(None)
    assert not is_results_cap("")


# --- parse_item on real items ----------------------------------------------------------------


def test_first_moon_item_exact_row():
    item = load("search-moon-page1.json")["collection"]["items"][0]
    row = parse_item(item, 3, 1)
    assert list(row) == SEARCH_COLUMNS  # the search_results table's columns, in order
    assert row["page"] == 3
    assert row["position"] == 1
    assert row["nasa_id"] == "NHQ_2019_0311_Go Forward to the Moon"
    assert row["title"] == "Go Forward to the Moon"
    assert row["date_created"] == datetime(2019, 3, 11, tzinfo=UTC)
    assert row["date_created"].utcoffset().total_seconds() == 0
    assert row["center"] == "HQ"
    assert row["media_type"] == "video"
    assert row["keywords"] == ["Moon", "Mars", "Forward to the Moon"]
    assert row["photographer"] is None
    assert row["location"] is None
    # hrefs keep NASA's literal spaces; encoding is the client's job
    assert row["preview_url"] == (
        "https://images-assets.nasa.gov/video/NHQ_2019_0311_Go Forward to the Moon/"
        "NHQ_2019_0311_Go Forward to the Moon~thumb.jpg"
    )
    assert row["collection_url"] == (
        "https://images-assets.nasa.gov/video/NHQ_2019_0311_Go Forward to the Moon/collection.json"
    )
    assert row["description"].startswith("NASA is going to the Moon and on to Mars")
    assert json.loads(row["raw"]) == item


def test_moon_page_rows_ids_types_and_times():
    rows = parse_items(load("search-moon-page1.json")["collection"]["items"], page=1)
    assert [r["position"] for r in rows] == list(range(1, 9))
    assert [r["nasa_id"] for r in rows] == [
        "NHQ_2019_0311_Go Forward to the Moon",
        "NHQ_2018_0131_Super Blue Moon Lunar Eclipse",
        "PIA12235",
        "PIA13517",
        "NHQ_2018_0126_Jan. 31, 2018 Super Blue Blood Moon",
        "PIA12229",
        "PIA12233",
        "PIA09000",
    ]
    assert [r["media_type"] for r in rows] == [
        "video", "video", "image", "image", "video", "image", "image", "image",
    ]
    # JPL items carry real times of day
    assert rows[2]["date_created"] == datetime(2009, 9, 24, 18, 0, 22, tzinfo=UTC)
    assert rows[7]["date_created"] == datetime(2007, 8, 7, 12, 50, 3, tzinfo=UTC)
    assert rows[2]["title"] == "Nearside of the Moon"
    assert rows[2]["center"] == "JPL"
    assert rows[2]["preview_url"] == (
        "https://images-assets.nasa.gov/image/PIA12235/PIA12235~thumb.jpg"
    )
    assert rows[4]["keywords"] == ["Super Blue Blood Moon", "supermoons", "blood moon"]


def test_apollo11_photographer_and_location():
    rows = parse_items(load("search-apollo11-image-page1-first20.json")["collection"]["items"], 1)
    assert len(rows) == 20
    first, second = rows[0], rows[1]
    assert first["nasa_id"] == "jsc2007e034221"
    assert first["title"] == "Apollo 11 spacecraft pre-launch"
    assert first["date_created"] == datetime(1969, 7, 11, tzinfo=UTC)
    assert first["keywords"] == ["Apollo", "Apollo 11", "Launch"]
    assert first["photographer"] is None
    # trailing space of the recorded description is trimmed
    assert first["description"].endswith("Photo filed 11 July 1969.")
    assert second["nasa_id"] == "NHQ201907180108"
    assert second["photographer"] == "NASA/Aubrey Gemignani"
    assert second["location"] == "National Mall"
    assert second["keywords"] == [
        "Apollo 11", "Apollo 11 50th Anniversary", "DC", "National Mall", "Washington",
    ]
    assert all(r["media_type"] == "image" for r in rows)


def test_v11_item_without_keywords_and_dash_stub_description():
    item = load("search-nasa_id-iss026-s-001-v1.1.json")["collection"]["items"][0]
    row = parse_item(item, 1, 1)
    assert row["nasa_id"] == "iss026-s-001"
    assert row["title"] == "iss026-s-001"
    assert row["keywords"] == []
    assert row["description"] == "ISS026-S-001 (June 2010) ---"
    assert row["date_created"] == datetime(2010, 4, 14, tzinfo=UTC)
    assert row["center"] == "JSC"
    base = "https://images-assets.nasa.gov/image/iss026-s-001"
    assert row["preview_url"] == f"{base}/iss026-s-001~thumb.jpg"
    assert row["collection_url"] == f"{base}/collection.json"


def test_apollo8_single_comma_string_keyword_is_kept_whole():
    item = load("search-apollo-pagesize1.json")["collection"]["items"][0]
    row = parse_item(item, 1, 1)
    assert row["keywords"] == ["Apollo, Apollo 8, NASA, Film, Film Transfers"]
    assert row["media_type"] == "video"
    assert row["date_created"] == datetime(2017, 11, 16, tzinfo=UTC)


def test_missing_fields_are_none_and_keywords_empty():
    row = parse_item({"data": [{}]}, 2, 7)
    assert row["page"] == 2 and row["position"] == 7
    for column in SEARCH_COLUMNS:
        if column in ("page", "position", "keywords", "raw"):
            continue
        assert row[column] is None, column
    assert row["keywords"] == []
    assert json.loads(row["raw"]) == {"data": [{}]}


@pytest.mark.parametrize(
    "item", [None, 5, "text", [], {}, {"data": []}, {"data": "x"}, {"data": [7]}]
)
def test_malformed_items_give_empty_rows(item):
    row = parse_item(item, 1, 1)
    assert row["nasa_id"] is None
    assert row["keywords"] == []
    assert row["preview_url"] is None
    assert row["collection_url"] is None
    assert json.loads(row["raw"]) == item


def test_control_characters_are_stripped_and_text_trimmed():
    item = {"data": [{"nasa_id": " PIA\x0012235\x07 ", "title": "Moon\x1b[31m\x7f\ttitle\n",
                      "center": "\x01JPL"}]}
    row = parse_item(item, 1, 1)
    assert row["nasa_id"] == "PIA12235"
    # tab and newline are not control junk; only the ones in the stripped set go
    assert row["title"] == "Moon[31m\ttitle"
    assert row["center"] == "JPL"


def test_very_long_fields_are_cut():
    item = {"data": [{
        "nasa_id": "i" * 600, "title": "t" * 2000, "description": "d" * (MAX_TEXT + 5000),
        "center": "c" * 300, "media_type": "m" * 80, "photographer": "p" * 900,
        "location": "l" * 900, "keywords": ["k" * 700],
    }]}
    row = parse_item(item, 1, 1)
    assert len(row["nasa_id"]) == 500
    assert len(row["title"]) == 1000
    assert len(row["description"]) == MAX_TEXT
    assert len(row["center"]) == 100
    assert len(row["media_type"]) == 50
    assert len(row["photographer"]) == 500
    assert len(row["location"]) == 500
    assert row["keywords"] == ["k" * 500]


def test_non_string_field_values():
    item = {"data": [{"nasa_id": 12345, "title": True, "description": ["a"], "center": 1.5,
                      "keywords": {"a": 1}, "date_created": 20190720}]}
    row = parse_item(item, 1, 1)
    assert row["nasa_id"] == "12345"
    assert row["title"] is None  # a bool is not text
    assert row["description"] is None
    assert row["center"] == "1.5"
    assert row["keywords"] == []
    # 20190720 becomes "20190720", a valid ISO basic date
    assert row["date_created"] == datetime(2019, 7, 20, tzinfo=UTC)


# --- helpers ---------------------------------------------------------------------------------


def test_parse_keywords():
    assert parse_keywords("Moon, Mars,, Apollo 11 ,") == ["Moon", "Mars", "Apollo 11"]
    assert parse_keywords(["Washington, DC", " Moon ", "", None, 3]) == [
        "Washington, DC", "Moon", "3",
    ]
    assert parse_keywords(None) == []
    assert parse_keywords({"k": "v"}) == []
    assert parse_keywords("") == []


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2019-07-20T00:00:00Z", datetime(2019, 7, 20, tzinfo=UTC)),
        ("2019-07-20t20:17:40z", datetime(2019, 7, 20, 20, 17, 40, tzinfo=UTC)),
        ("2019-07-20", datetime(2019, 7, 20, tzinfo=UTC)),
        ("2019-07-20T20:17:40", datetime(2019, 7, 20, 20, 17, 40, tzinfo=UTC)),
        ("2019-07-20T22:17:40+02:00", datetime(2019, 7, 20, 20, 17, 40, tzinfo=UTC)),
        (" 2009-09-24T18:00:22Z\n", datetime(2009, 9, 24, 18, 0, 22, tzinfo=UTC)),
        ("July 20, 1969", None),
        ("2019-13-01", None),
        ("", None),
        (None, None),
        (["2019-07-20"], None),
    ],
)
def test_parse_date(value, expected):
    parsed = parse_date(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_date_out_of_range_after_utc_conversion_is_none(value):
    """Valid ISO text whose UTC equivalent leaves datetime's range; must not raise."""
    assert parse_date(value) is None


def test_frame_accepts_item_with_json_escaped_lone_surrogate():
    """JSON may carry "\\ud800"; one such item must not crash the whole page's table."""
    item = json.loads(
        '{"href": "https://images-assets.nasa.gov/image/a\\udc00/collection.json",'
        ' "data": [{"nasa_id": "PIA\\ud80012235", "title": "Moon \\udc00",'
        ' "keywords": ["\\ud83d"], "media_type": "image"}],'
        ' "links": [{"href": "https://images-assets.nasa.gov/x\\ud800~thumb.jpg",'
        ' "rel": "preview"}]}'
    )
    assert "\ud800" in item["data"][0]["nasa_id"]  # json.loads really yields a lone surrogate
    row = parse_item(item, 1, 1)
    df = tables.frame("search_results", [row])
    assert len(df) == 1
    assert df.loc[0, "media_type"] == "image"
    json.loads(df.loc[0, "raw"])  # raw stays valid JSON


def test_clean_text():
    assert clean_text("  a\x00b  ") == "ab"
    assert clean_text("abcdef", limit=3) == "abc"
    assert clean_text(" \x01 ") is None
    assert clean_text(7) == "7"
    assert clean_text(False) is None
    assert clean_text(None) is None
    assert clean_text({"a": 1}) is None


def test_real_pages_fit_the_search_results_schema():
    rows = parse_items(load("search-moon-page1.json")["collection"]["items"], 1)
    df = tables.frame("search_results", rows)
    assert list(df.columns) == SEARCH_COLUMNS
    assert len(df) == 8
    assert df.loc[0, "date_created"] == datetime(2019, 3, 11, tzinfo=UTC)
    assert list(df.loc[0, "keywords"]) == ["Moon", "Mars", "Forward to the Moon"]
