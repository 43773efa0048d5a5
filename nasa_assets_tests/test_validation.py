"""Row validation, manifest screening and invariants, and the URL allow-list."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nasa_assets.dataset import tables
from nasa_assets.dataset.manifest import (
    attach_image,
    listed_renditions,
    reason_counts,
    rejected_row,
    sample,
    screen,
)
from nasa_assets.dataset.validation import manifest_problems, rejection_budget, rejection_reason
from nasa_assets.nasa.parsing import parse_item, parse_items
from nasa_assets.nasa.urls import parse_allowed_hosts, redact, url_block_reason


DATA = Path(__file__).parent / "data"
NOW = datetime(2025, 6, 1, tzinfo=UTC)
NASA = parse_allowed_hosts("images-assets.nasa.gov")


def load(name: str):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def item(**fields):
    data = {"nasa_id": "PIA12235", "title": "Nearside of the Moon", "media_type": "image",
            "date_created": "2009-09-24T18:00:22Z"} | fields
    return {"href": "https://images-assets.nasa.gov/image/x/collection.json", "data": [data],
            "links": []}


def row(position=1, **fields):
    return parse_item(item(**fields), 1, position)


# --- rejection_reason ------------------------------------------------------------------------


def test_valid_row_has_no_reason():
    assert rejection_reason(row(), NOW) is None


@pytest.mark.parametrize(
    "parsed, reason",
    [
        (parse_item({"data": []}, 1, 1), "item has no data object"),
        (parse_item({"data": ["x"]}, 1, 1), "item has no data object"),
        (parse_item(None, 1, 1), "item has no data object"),
        (row(nasa_id=None), "missing nasa_id"),
        (row(nasa_id="  "), "missing nasa_id"),
        (row(media_type="video"), "media_type is not image: 'video'"),
        (row(media_type=None), "media_type is not image: None"),
        (row(title=None), "missing title"),
        (row(title="\x00"), "missing title"),
        (row(date_created=None), "missing date_created"),
        (row(date_created="July 20, 1969"), "unparsable date_created: 'July 20, 1969'"),
        (row(date_created="1850-01-01T00:00:00Z"),
         "implausible date_created: 1850-01-01T00:00:00+00:00"),
        (row(date_created="3000-01-01T00:00:00Z"),
         "implausible date_created: 3000-01-01T00:00:00+00:00"),
    ],
)
def test_rejection_reasons(parsed, reason):
    assert rejection_reason(parsed, NOW) == reason


def test_date_boundaries():
    assert rejection_reason(row(date_created="1900-01-01T00:00:00Z"), NOW) is None
    assert rejection_reason(row(date_created="1899-12-31T23:59:59Z"), NOW) is not None
    # one day of slack after "now" for time zones and clock skew
    assert rejection_reason(row(date_created="2025-06-02T00:00:00Z"), NOW) is None
    assert rejection_reason(row(date_created="2025-06-02T00:00:01Z"), NOW) is not None


def test_unparsable_date_reason_is_bounded():
    reason = rejection_reason(row(date_created="x" * 500), NOW)
    assert reason == f"unparsable date_created: {'x' * 40!r}"


def test_real_moon_page_rejects_exactly_the_videos():
    rows = parse_items(load("search-moon-page1.json")["collection"]["items"], 1)
    reasons = {r["nasa_id"]: rejection_reason(r, NOW) for r in rows}
    assert reasons == {
        "NHQ_2019_0311_Go Forward to the Moon": "media_type is not image: 'video'",
        "NHQ_2018_0131_Super Blue Moon Lunar Eclipse": "media_type is not image: 'video'",
        "PIA12235": None,
        "PIA13517": None,
        "NHQ_2018_0126_Jan. 31, 2018 Super Blue Blood Moon": "media_type is not image: 'video'",
        "PIA12229": None,
        "PIA12233": None,
        "PIA09000": None,
    }


# --- manifest --------------------------------------------------------------------------------


def test_screen_rejects_duplicates_and_keeps_the_first():
    rows = [row(1, title="first"), row(2, title="second"), row(3, nasa_id="PIA13517"),
            row(4, media_type="video", nasa_id="PIA13517")]
    valid, rejected = screen(rows, NOW)
    assert [(r["position"], r["nasa_id"], r["title"]) for r in valid] == [
        (1, "PIA12235", "first"), (3, "PIA13517", "Nearside of the Moon"),
    ]
    assert [(r["position"], r["nasa_id"], r["reason"]) for r in rejected] == [
        (2, "PIA12235", "duplicate nasa_id on this page"),
        (4, "PIA13517", "media_type is not image: 'video'"),
    ]
    assert set(rejected[0]) == {"page", "position", "nasa_id", "raw", "reason"}
    assert json.loads(rejected[0]["raw"])["data"][0]["title"] == "second"


def test_an_invalid_first_copy_does_not_block_a_valid_later_one():
    valid, rejected = screen([row(1, title=None), row(2)], NOW)
    assert [r["position"] for r in valid] == [2]
    assert [r["reason"] for r in rejected] == ["missing title"]


def test_rejected_row_keeps_null_nasa_id():
    parsed = parse_item({"data": []}, 4, 9)
    assert rejected_row(parsed, "item has no data object") == {
        "page": 4, "position": 9, "nasa_id": None, "raw": '{"data": []}',
        "reason": "item has no data object",
    }


def test_sample_uses_nasa_id_hash():
    rows = [row(i, nasa_id=n) for i, n in enumerate(
        ["PIA12235", "as11-40-5874", "iss026-s-001", "NHQ_2019_0311_Go Forward to the Moon"], 1)]
    assert sample(rows, 1) == rows
    # buckets mod 3: PIA12235 0, as11-40-5874 0, iss026-s-001 0, NHQ_... 2
    assert [r["nasa_id"] for r in sample(rows, 3)] == ["PIA12235", "as11-40-5874", "iss026-s-001"]


RENDITIONS = {
    "large": "https://images-assets.nasa.gov/image/PIA12235/PIA12235~large.jpg",
    "thumb": "https://images-assets.nasa.gov/image/PIA12235/PIA12235~thumb.jpg",
}


def test_attach_image_on_an_allowed_host():
    manifest_row, reason = attach_image(row(), RENDITIONS, "medium", NASA)
    assert reason is None
    assert manifest_row["rendition"] == "large"
    assert manifest_row["image_url"] == RENDITIONS["large"]
    assert manifest_row["image_key"] == "images/PIA12235.jpg"
    assert manifest_row["title"] == "Nearside of the Moon"


def test_attach_image_refuses_a_host_not_allowed():
    evil = {"large": "https://evil.example/PIA12235~large.jpg"}
    manifest_row, reason = attach_image(row(), evil, "large", NASA)
    assert manifest_row is None
    assert reason == "image URL refused: host evil.example:443 is not in NASA_ALLOWED_HOSTS"


def test_attach_image_without_renditions():
    assert attach_image(row(), {}, "large", NASA) == (None, "no image rendition available")


def test_listed_renditions_by_link_format():
    v11 = parse_item(load("search-nasa_id-iss026-s-001-v1.1.json")["collection"]["items"][0], 1, 1)
    assert sorted(listed_renditions(v11)) == ["large", "medium", "orig", "small", "thumb"]
    v10 = parse_item(load("search-moon-page1.json")["collection"]["items"][2], 1, 1)
    assert listed_renditions(v10) is None
    assert listed_renditions({"raw": "not json"}) is None
    assert listed_renditions({"raw": "[1, 2]"}) is None


def test_reason_counts_groups_by_kind():
    rejected = [
        {"reason": "unparsable date_created: 'a'"},
        {"reason": "unparsable date_created: 'b'"},
        {"reason": "missing title"},
        {"reason": "media_type is not image: 'video'"},
        {"reason": "media_type is not image: 'audio'"},
        {"reason": "unparsable date_created: 'c'"},
    ]
    assert reason_counts(rejected) == {
        "unparsable date_created": 3, "media_type is not image": 2, "missing title": 1,
    }
    assert reason_counts([]) == {}


# --- manifest_problems -----------------------------------------------------------------------


def good_manifest_rows():
    out = []
    for position, nasa_id in enumerate(["PIA12235", "PIA13517", "PIA12229"], 1):
        manifest_row, _ = attach_image(
            row(position, nasa_id=nasa_id),
            {"large": f"https://images-assets.nasa.gov/image/{nasa_id}/{nasa_id}~large.jpg"},
            "large", NASA,
        )
        out.append(manifest_row)
    return out


def problems_of(rows):
    return manifest_problems(tables.frame("sampled_manifest", rows), NASA, NOW)


def test_good_manifest_has_no_problems():
    assert problems_of(good_manifest_rows()) == []
    assert problems_of([]) == []


def broken(**changes):
    rows = good_manifest_rows()
    rows[1] = rows[1] | changes
    return rows


@pytest.mark.parametrize(
    "rows, problem",
    [
        (broken(nasa_id=None), "1 rows without nasa_id"),
        (broken(nasa_id=""), "1 rows without nasa_id"),
        (broken(nasa_id="PIA12235"), "duplicate nasa_id: ['PIA12235']"),
        (broken(title=None), "1 rows without title"),
        (broken(date_created=None), "1 rows with a missing or implausible date_created"),
        (broken(date_created=datetime(1850, 1, 1, tzinfo=UTC)),
         "1 rows with a missing or implausible date_created"),
        (broken(date_created=datetime(3000, 1, 1, tzinfo=UTC)),
         "1 rows with a missing or implausible date_created"),
        (broken(media_type="video"), "1 rows whose media_type is not image"),
        (broken(image_url="http://169.254.169.254/latest/meta-data"),
         "1 image URLs off the allowed hosts, e.g. 'http://169.254.169.254/latest/meta-data'"),
    ],
)
def test_each_broken_invariant_is_reported(rows, problem):
    assert problems_of(rows) == [problem]


def test_missing_image_url_is_reported():
    # pandas shows the missing value as None or nan depending on its string dtype
    [problem] = problems_of(broken(image_url=None))
    assert problem.startswith("1 image URLs off the allowed hosts, e.g. ")


def test_several_problems_at_once():
    rows = good_manifest_rows()
    rows[0] = rows[0] | {"title": None, "media_type": "audio"}
    rows[2] = rows[2] | {"title": None}
    assert problems_of(rows) == [
        "2 rows without title", "1 rows whose media_type is not image",
    ]


# --- URL allow-list --------------------------------------------------------------------------


def test_parse_allowed_hosts():
    assert parse_allowed_hosts(" Images-Assets.NASA.gov , 127.0.0.1:8080,") == (
        ("images-assets.nasa.gov", None), ("127.0.0.1", 8080),
    )


@pytest.mark.parametrize("spec, message", [("", "empty"), (" , ", "empty"),
                                           ("host:http", "bad host:port")])
def test_parse_allowed_hosts_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_allowed_hosts(spec)


LOCAL = parse_allowed_hosts("images-assets.nasa.gov,127.0.0.1:8080")


@pytest.mark.parametrize(
    "url",
    [
        "https://images-assets.nasa.gov/image/PIA12235/PIA12235~large.jpg",
        "http://images-assets.nasa.gov/image/PIA12235/PIA12235~large.jpg",
        "https://images-assets.nasa.gov:443/x",
        "http://images-assets.nasa.gov:80/x",
        "HTTPS://Images-Assets.NASA.gov/x",
        "https://images-assets.nasa.gov/video/NHQ_2019_0311_Go Forward to the Moon/x~thumb.jpg",
        "http://127.0.0.1:8080/image/x~large.jpg",
    ],
)
def test_allowed_urls(url):
    assert url_block_reason(url, LOCAL) is None


@pytest.mark.parametrize(
    "url, reason",
    [
        # a bare host allows the scheme's default port only
        ("https://images-assets.nasa.gov:8443/x",
         "host images-assets.nasa.gov:8443 is not in NASA_ALLOWED_HOSTS"),
        ("http://images-assets.nasa.gov:443/x",
         "host images-assets.nasa.gov:443 is not in NASA_ALLOWED_HOSTS"),
        # host:port allows that port only, not the default one
        ("http://127.0.0.1/x", "host 127.0.0.1:80 is not in NASA_ALLOWED_HOSTS"),
        ("http://127.0.0.1:8081/x", "host 127.0.0.1:8081 is not in NASA_ALLOWED_HOSTS"),
        ("https://127.0.0.1/x", "host 127.0.0.1:443 is not in NASA_ALLOWED_HOSTS"),
        ("file:///etc/passwd", "scheme 'file' is not http(s)"),
        ("ftp://images-assets.nasa.gov/x", "scheme 'ftp' is not http(s)"),
        ("images-assets.nasa.gov/x", "scheme '(none)' is not http(s)"),
        ("http://images-assets.nasa.gov@evil.example/", "URL carries credentials"),
        ("http://user:pw@images-assets.nasa.gov/x", "URL carries credentials"),
        ("http://evil.example\\@images-assets.nasa.gov/x", "URL carries credentials"),
        ("http://169.254.169.254/latest/meta-data/",
         "host 169.254.169.254:80 is not in NASA_ALLOWED_HOSTS"),
        ("http://10.0.0.1/x", "host 10.0.0.1:80 is not in NASA_ALLOWED_HOSTS"),
        ("http://images-assets.nasa.gov.evil.example/x",
         "host images-assets.nasa.gov.evil.example:80 is not in NASA_ALLOWED_HOSTS"),
        ("https://evil.example/images-assets.nasa.gov",
         "host evil.example:443 is not in NASA_ALLOWED_HOSTS"),
        ("http://images-assets.nasa.gov:99999/x", "malformed URL"),
        ("http://[::1/x", "malformed URL"),
        ("", "no URL"),
        (None, "no URL"),
        (42, "no URL"),
    ],
)
def test_blocked_urls(url, reason):
    assert url_block_reason(url, LOCAL) == reason


def test_loopback_is_refused_unless_listed():
    assert url_block_reason("http://127.0.0.1/x", NASA) == (
        "host 127.0.0.1:80 is not in NASA_ALLOWED_HOSTS"
    )
    assert url_block_reason("http://127.0.0.1/x", parse_allowed_hosts("127.0.0.1")) is None


def test_port_zero_is_not_the_default_port():
    """Port 0 is neither 80/443 nor a listed port; it must not ride on the default."""
    assert url_block_reason("http://images-assets.nasa.gov:0/x", NASA) == (
        "host images-assets.nasa.gov:0 is not in NASA_ALLOWED_HOSTS"
    )


def test_redact_hides_api_key_values():
    url = "https://images-api.nasa.gov/search?q=moon&api_key=SECRET123&page=2"
    assert redact(url) == "https://images-api.nasa.gov/search?q=moon&api_key=REDACTED&page=2"
    shouted = redact("https://api.nasa.gov/x?API_KEY=SECRET123&token=abc")
    assert shouted == "https://api.nasa.gov/x?API_KEY=REDACTED&token=REDACTED"


def test_redact_leaves_urls_without_secrets_alone():
    assert redact("https://images-api.nasa.gov/search?q=moon&page=2") == (
        "https://images-api.nasa.gov/search?q=moon&page=2"
    )
    assert redact("https://images-assets.nasa.gov/image/x/x~large.jpg") == (
        "https://images-assets.nasa.gov/image/x/x~large.jpg"
    )
    assert redact("http://[::1?api_key=SECRET123") == "<malformed url>"


def _counts(items, rejected, sampled, unresolved):
    return {"items": items, "rejected": rejected, "sampled": sampled, "unresolved": unresolved}


def test_rejection_budget_measures_lookups_against_the_sampled_items():
    pages = {"0001": _counts(100, 10, 90, 0), "0002": _counts(100, 14, 6, 14), "0003": _counts(0, 0, 0, 0)}
    problems, rejected, unresolved = rejection_budget(pages, 0.2)
    assert rejected == {"0001": 0.1, "0002": 0.14, "0003": 0.0}
    assert unresolved == {"0001": 0.0, "0002": 0.7, "0003": 0.0}
    assert problems == [
        "share of sampled items without a usable image URL above MAX_REJECTED_FRACTION=0.2: {'0002': 0.7}"
    ]
    problems, _, _ = rejection_budget({"0001": _counts(100, 30, 70, 0)}, 0.2)
    assert problems == ["rejected share above MAX_REJECTED_FRACTION=0.2: {'0001': 0.3}"]


def test_one_lost_item_of_a_tiny_sample_is_tolerated():
    # A sampling factor of 30 keeps ~3 items a page: one lost look-up is a third, not a broken API.
    assert rejection_budget({"0001": _counts(100, 1, 2, 1)}, 0.2)[0] == []
    assert rejection_budget({"0001": _counts(100, 2, 3, 2)}, 0.2)[0] != []
