"""The dataset card renderer and its summary: pure functions, no storage, no Dagster."""

import datetime as dt

import pytest

from nasa_assets.dataset.card import NASA_GUIDELINES_URL, CardFacts, render_card
from nasa_assets.dataset.card_source import source_of
from nasa_assets.dataset.columns import COLUMN_MEANINGS, type_name
from nasa_assets.dataset.pages import page_ranges
from nasa_assets.dataset.summary import human_bytes, summarize
from nasa_assets.dataset.tables import SCHEMAS, frame

UTC = dt.timezone.utc


def _table(rows):
    base = {"split": "train", "center": "JSC", "rendition": "large", "bytes": 100,
            "date_created": dt.datetime(1969, 7, 20, tzinfo=UTC), "title": "t"}
    return frame("moon_dataset", [{**base, "nasa_id": f"id{i}", **row} for i, row in enumerate(rows)])


def _facts(**overrides):
    facts = dict(root_uri="s3://bucket/moon_dataset", query="moon", sampling_factor=1,
                 rendition="large", split_fractions={"train": 0.8, "validation": 0.1, "test": 0.1},
                 pages_included=["0001", "0002"], pages_missing=98)
    return CardFacts(**{**facts, **overrides})


TABLE = _table([
    {},
    {"split": "test", "center": "HQ", "bytes": 250, "date_created": dt.datetime(2019, 1, 2, tzinfo=UTC)},
    {"center": "HQ", "date_created": dt.datetime(2024, 5, 6, 7, 8, tzinfo=UTC)},
    {"center": None, "date_created": None, "rendition": "medium"},
])


def test_summary_counts_everything_once():
    summary = summarize(TABLE, ["train", "validation", "test"])
    assert summary.images == 4
    assert summary.total_bytes == 550
    # Configured splits with no image still appear, with 0.
    assert summary.per_split == {"train": 3, "validation": 0, "test": 1}
    assert summary.per_center == {"HQ": 2, "(unknown)": 1, "JSC": 1}
    assert summary.per_rendition == {"large": 3, "medium": 1}
    assert summary.per_decade == {"1960s": 1, "2010s": 1, "2020s": 1, "(unknown)": 1}
    assert (summary.first_date, summary.last_date) == ("1969-07-20", "2024-05-06")


def test_summary_of_an_empty_table():
    summary = summarize(_table([]), ["train", "test"])
    assert (summary.images, summary.total_bytes) == (0, 0)
    assert summary.per_split == {"train": 0, "test": 0}
    assert summary.per_center == {} and summary.per_decade == {}
    assert summary.first_date is None
    card = render_card(summary, _facts(pages_included=[], pages_missing=100))
    assert "| images | 0 |" in card
    assert "| dates | no dates |" in card
    assert "| train | 0 | - |" in card


def test_card_states_provenance_counts_schema_loader_and_guidelines():
    card = render_card(summarize(TABLE, ["train", "validation", "test"]),
                       _facts(sampling_factor=10, query="moon landing"))
    assert card.startswith("# ")
    assert "| images | 4 |" in card
    assert "| total size | 550 B (550 bytes) |" in card
    assert "| dates | 1969-07-20 to 2024-05-06 |" in card
    assert "`moon landing`" in card
    assert "about 1 item in 10" in card and "SEARCH_RESULT_SAMPLING_FACTOR=10" in card
    assert "large requested" in card
    assert "| search pages included | 0001-0002 (2 of 100; 98 not materialized yet) |" in card
    for line in ("| train | 3 | 75.0% |", "| validation | 0 | 0.0% |", "| test | 1 | 25.0% |",
                 "| HQ | 2 | 50.0% |", "| medium | 1 | 25.0% |", "| 1960s | 1 | 25.0% |"):
        assert line in card, line
    assert "train 0.8, validation 0.1, test 0.1" in card
    # Schema: every column, with a type that survives Markdown, and a meaning.
    for f in SCHEMAS["moon_dataset"]:
        assert f"| `{f.name}` | {type_name(f.type)} | {COLUMN_MEANINGS[f.name]} |" in card
    assert "| `keywords` | list of string |" in card
    assert "| `date_created` | timestamp (us, UTC) |" in card
    assert "<item" not in card
    # The loader, pointed at this dataset.
    assert 'load_manifest("s3://bucket/moon_dataset")' in card
    assert 'iter_images("s3://bucket/moon_dataset", split="train")' in card
    # NASA's guidelines, as a note with the source, not as legal advice.
    assert NASA_GUIDELINES_URL in card
    assert "not legal advice" in card
    for phrase in ("acknowledged", "endorsement", "insignia", "third parties"):
        assert phrase in card, phrase


@pytest.mark.parametrize("url,title,source,note", [
    ("https://images-api.nasa.gov", "Moon images from the NASA Image and Video Library",
     "the NASA Image and Video Library search API (images-api.nasa.gov)", "These images come from NASA."),
    ("http://127.0.0.1:35439", "Synthetic images from the offline NASA double",
     "the offline NASA double at http://127.0.0.1:35439", "its images are synthetic, not NASA's."),
    # Only scheme, host and port of the setting: no credentials, path or query.
    ("https://user:pw@mirror.example:8443/api?key=s3cret", "Images from mirror.example",
     "the search API at https://mirror.example:8443 (NASA_API_BASE_URL)",
     "That is not NASA's own API (images-api.nasa.gov)."),
])
def test_card_states_the_source_it_was_built_from(url, title, source, note):
    card = render_card(summarize(TABLE, ["train", "validation", "test"]), _facts(api_base_url=url))
    assert card.startswith(f"# {title}\n")
    assert f"| source | {source} |" in card
    assert note in card
    # NASA's guidelines are still summarized, but only NASA's images are said to come from NASA.
    assert ("These images come from NASA." in card) is ("nasa.gov" in source)
    assert NASA_GUIDELINES_URL in card
    assert not any(secret in card for secret in (":pw@", "s3cret", "8443/api"))


@pytest.mark.parametrize("url,is_nasa", [
    ("https://images-api.nasa.gov", True), ("https://images-api.nasa.gov/", True),
    ("http://localhost:8765", False), ("http://[::1]:8765", False), ("https://images-api.nasa.gov.evil", False),
])
def test_source_of(url, is_nasa):
    assert source_of(url).is_nasa is is_nasa


def test_every_column_has_a_meaning():
    assert list(COLUMN_MEANINGS) == [f.name for f in SCHEMAS["moon_dataset"]]


def test_cells_cannot_break_the_tables():
    card = render_card(summarize(_table([{"center": "A|B"}])), _facts(query="moon | sun"))
    assert "| A\\|B | 1 |" in card
    assert "`moon \\| sun`" in card


def test_render_is_deterministic():
    summary = summarize(TABLE, ["train", "validation", "test"])
    assert render_card(summary, _facts()) == render_card(summary, _facts())


@pytest.mark.parametrize("keys,text", [
    ([], "none"),
    (["0001"], "0001"),
    (["0001", "0002", "0003"], "0001-0003"),
    (["0007", "0001", "0002", "0009", "0010"], "0001-0002, 0007, 0009-0010"),
])
def test_page_ranges(keys, text):
    assert page_ranges(keys) == text


@pytest.mark.parametrize("size,text", [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (358_235, "358.2 KB"), (2_500_000_000, "2.5 GB"),
    (7 * 10**15, "7000.0 TB"),
])
def test_human_bytes(size, text):
    assert human_bytes(size) == text


def test_duplicate_pairs_are_thumbnails_relative_to_the_card():
    from nasa_assets.dataset.card import CardFacts, duplicates_section

    facts = CardFacts(root_uri="s3://b/p", query="moon", sampling_factor=1, rendition="large",
                      split_fractions={"train": 1.0})
    assert duplicates_section(facts) == []  # a card built without duplicate figures has no section
    facts.duplicates = {"images": 5, "groups": 3, "duplicate_groups": 1,
                        "images_in_duplicate_groups": 3, "exact_copies": 1, "near_copies": 1,
                        "largest_group": 3}
    facts.duplicate_examples = {"exact": [], "near": [
        {"a": 'a"b', "b": "c d", "distance": 4, "a_key": "images/a_b~1.jpg", "b_key": "images/c d.jpg"}]}
    text = "\n".join(duplicates_section(facts))
    assert "| exact copies (same bytes as another image of their group) | 1 |" in text
    assert "Examples of exact copies" not in text  # no pair of that kind: no empty table
    assert ('| <a href="images/a_b~1.jpg"><img src="images/a_b~1.jpg" width="160" alt="a&quot;b">'
            '</a><br>`a"b` | <a href="images/c%20d.jpg"><img src="images/c%20d.jpg" width="160" '
            'alt="c d"></a><br>`c d` | 4 |') in text


def test_markdown_tables_escape_every_cell_one_way():
    from nasa_assets.dataset.markdown import cell, table

    assert cell("a|b\nc\r") == "a\\|b c "
    assert table(["", ""], [["x", 1]]) == ["| | |", "|---|---|", "| x | 1 |"]
    assert table(["name", "n"], [[cell("A|B"), 2]], align="lr") == [
        "| name | n |", "|---|---:|", "| A\\|B | 2 |"]


def test_the_card_of_another_dataset_names_it_and_its_own_settings():
    own = _facts(dataset="mars", query="mars", sampling_factor=2, rendition="medium",
                 from_file=frozenset({"sampling_factor", "rendition"}))
    card = render_card(summarize(TABLE, ["train", "validation", "test"]), own)
    assert card.startswith("# mars: images from the NASA Image and Video Library\n")
    assert "for the query `mars`" in card and "| query | `mars` |" in card
    assert "| sampling | about 1 item in 2, chosen by a hash of nasa_id (sampling_factor of `mars` in " \
           "NASA_DATASETS_FILE) |" in card
    assert "| rendition | medium requested (rendition of `mars` in NASA_DATASETS_FILE);" in card
    # Its splits come from the environment: the card names the variable.
    assert "Changing DATASET_SPLIT_FRACTIONS moves" in card
    assert "SEARCH_RESULT_SAMPLING_FACTOR" not in card and "NASA_IMAGE_RENDITION" not in card
    assert "Moon" not in card

    moon = render_card(summarize(TABLE, ["train", "validation", "test"]), _facts(sampling_factor=2))
    assert moon.startswith("# Moon images from the NASA Image and Video Library\n")
    assert "(SEARCH_RESULT_SAMPLING_FACTOR=2)" in moon and "(NASA_IMAGE_RENDITION)" in moon
