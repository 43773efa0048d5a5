"""Property tests: parsing, key derivation and URL checks hold for arbitrary input."""

import json
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from nasa_assets.dataset import tables
from nasa_assets.dataset.keys import image_key, safe_name
from nasa_assets.nasa.parsing import (
    SearchResponseError,
    parse_item,
    parse_search_response,
)
from nasa_assets.nasa.urls import parse_allowed_hosts, url_block_reason

SEARCH_COLUMNS = [f.name for f in tables.SCHEMAS["search_results"]]

PROPS = settings(max_examples=200, deadline=None)
FEW = settings(max_examples=80, deadline=None)

# Values json.loads can return (NaN/inf included: Python's json accepts them).
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

FIELDS = ["nasa_id", "title", "description", "date_created", "center", "keywords", "media_type",
          "photographer", "location"]
item_shaped = st.builds(
    lambda data, links, href: {"data": data, "links": links, "href": href},
    data=st.lists(st.fixed_dictionaries({}, optional={f: json_values for f in FIELDS}), max_size=2)
    | json_values,
    links=st.lists(
        st.fixed_dictionaries({}, optional={"href": json_values, "rel": st.sampled_from(
            ["preview", "captions", "alternate", "canonical"]) | json_values,
            "render": st.just("image") | json_values}),
        max_size=3,
    ) | json_values,
    href=json_values,
)
items = json_values | item_shaped


def check_row(row, page, position):
    assert list(row) == SEARCH_COLUMNS
    assert row["page"] == page and row["position"] == position
    assert isinstance(row["keywords"], list)
    assert all(isinstance(k, str) and k for k in row["keywords"])
    for column in ("nasa_id", "title", "description", "center", "media_type", "photographer",
                   "location", "preview_url", "collection_url"):
        assert row[column] is None or isinstance(row[column], str)
    assert isinstance(row["raw"], str)


@PROPS
@given(items, st.integers(1, 100), st.integers(1, 100))
def test_parse_item_never_raises_and_fills_every_column(item, page, position):
    check_row(parse_item(item, page, position), page, position)


@PROPS
@given(item_shaped)
def test_parse_item_keeps_a_faithful_raw_copy(item):
    row = parse_item(item, 1, 1)
    # NaN != NaN, so compare re-serialised text rather than objects
    assert json.dumps(json.loads(row["raw"]), sort_keys=True) == json.dumps(item, sort_keys=True)


@PROPS
@given(items)
def test_parsed_rows_always_fit_the_search_results_table(item):
    df = tables.frame("search_results", [parse_item(item, 1, 1)])
    assert list(df.columns) == SEARCH_COLUMNS
    assert len(df) == 1


@FEW
@given(json_values)
def test_parse_search_response_raises_only_its_own_error(body):
    try:
        page = parse_search_response(body)
    except SearchResponseError:
        return
    assert isinstance(page.items, list)
    assert isinstance(page.total_hits, int) and page.total_hits >= 0
    assert page.next_url is None or isinstance(page.next_url, str)


# st.text() leaves out surrogates by default; allow them here, ids are only ever hashed and slugged
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)


@PROPS
@given(any_text)
def test_safe_name_is_a_plain_bounded_file_name(nasa_id):
    name = safe_name(nasa_id)
    assert name not in ("", ".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".")
    assert ".." not in name
    assert len(name) <= 120
    key = image_key(nasa_id, "https://images-assets.nasa.gov/x~large.jpg")
    assert key == f"images/{name}.jpg"


@PROPS
@given(any_text, any_text)
def test_safe_name_is_injective(a, b):
    if a != b:
        assert safe_name(a) != safe_name(b)


@PROPS
@given(st.text(max_size=40).map(lambda s: s + "/x") | st.sampled_from(["..", "../", "a b", "a_b"]))
def test_safe_name_injective_on_look_alikes(nasa_id):
    variants = {nasa_id, nasa_id.replace(" ", "_"), nasa_id.replace("/", "_"),
                nasa_id.replace("/", "%2F")}
    assert len({safe_name(v) for v in variants}) == len(variants)


ALLOWED = parse_allowed_hosts("images-assets.nasa.gov,127.0.0.1:8080")
url_like = st.builds(
    lambda scheme, auth, host, port, path: f"{scheme}{auth}{host}{port}{path}",
    scheme=st.sampled_from(["http://", "https://", "file://", "", "HTTP://", "ftp://"]),
    auth=st.sampled_from(["", "user@", "u:p@", "images-assets.nasa.gov@"]),
    host=st.sampled_from(["images-assets.nasa.gov", "127.0.0.1", "[::1]", "evil.example", ""])
    | st.text(max_size=20),
    port=st.sampled_from(["", ":80", ":443", ":8080", ":99999", ":x", ":"]),
    path=st.text(max_size=20),
)


@PROPS
@given(st.text(max_size=100) | url_like)
def test_url_block_reason_never_raises(url):
    reason = url_block_reason(url, ALLOWED)
    assert reason is None or (isinstance(reason, str) and reason)
    if reason is None:
        # anything let through is plain http(s) without credentials
        parts = urlsplit(url)
        assert parts.scheme in ("http", "https")
        assert parts.username is None and parts.password is None
        assert parts.hostname in ("images-assets.nasa.gov", "127.0.0.1")
