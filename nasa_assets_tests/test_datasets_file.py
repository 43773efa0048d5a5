"""The datasets file: what it declares, and the one clear error a bad file gets."""

from pathlib import Path

import pytest

from nasa_assets.dataset.datasets import (
    DatasetSpec,
    DatasetsFileError,
    load_datasets,
    parse_datasets,
)
from nasa_assets.defs.settings import datasets_from_env

EXAMPLE = Path(__file__).resolve().parent.parent / "datasets.example.yaml"


def parse(text: str):
    return parse_datasets(text, "datasets.yaml")


def test_unset_is_moon_alone_with_the_environment_values():
    assert load_datasets(None) == load_datasets("") == (DatasetSpec(),)
    assert datasets_from_env({}) == datasets_from_env({"NASA_DATASETS_FILE": "  "}) == (DatasetSpec(),)
    moon = DatasetSpec()
    assert (moon.key_prefix, moon.folder, moon.group) == ([], "", "moon_dataset")
    assert (moon.images_job, moon.dataset_job, moon.sensor) == (
        "moon_images_job", "moon_dataset_job", "nasa_search_refresh")
    # Left unset, a field takes the environment's value.
    assert moon.with_defaults("moon", 1, "large", "a=1") == DatasetSpec("moon", "moon", 1, "large", "a=1")


def test_entries_with_every_field_and_moon_first():
    specs = parse("""
datasets:
  - name: mars
    query: mars rover
    sampling_factor: 3
    rendition: medium
    split_fractions: {train: 0.5, test: 0.5}
  - name: earth_at_night
    query: earth at night
    split_fractions: train=0.9,test=0.1
  - name: moon
    query: moon landing
""")
    assert specs == (
        DatasetSpec("moon", "moon landing"),
        DatasetSpec("mars", "mars rover", 3, "medium", "train=0.5,test=0.5"),
        DatasetSpec("earth_at_night", "earth at night", None, None, "train=0.9,test=0.1"),
    )
    mars = specs[1]
    assert (mars.key_prefix, mars.folder, mars.group) == (["mars"], "mars", "mars")
    assert (mars.images_job, mars.dataset_job, mars.sensor) == (
        "mars_images_job", "mars_dataset_job", "mars_search_refresh")
    # Its own values win over the environment's; the rest come from it.
    assert specs[2].with_defaults("moon", 1, "large", "a=1") == DatasetSpec(
        "earth_at_night", "earth at night", 1, "large", "train=0.9,test=0.1")


def test_a_file_without_moon_still_has_moon_and_moon_needs_no_query():
    assert parse("datasets:\n  - {name: mars, query: mars}\n")[0] == DatasetSpec()
    assert parse("datasets:\n  - {name: moon, sampling_factor: 5}\n") == (DatasetSpec(sampling_factor=5),)
    assert parse("datasets: []\n") == (DatasetSpec(),)


@pytest.mark.parametrize("text,message", [
    ("datasets:\n  - {name: mars, qeury: mars}\n",
     "datasets.yaml: entry 1 (mars): unknown key 'qeury' (allowed: name, query, sampling_factor, "
     "rendition, split_fractions)"),
    ("datasets:\n  - {name: Mars, query: mars}\n", "entry 1 (Mars): name must be lower-case letters"),
    ("datasets:\n  - {name: ../up, query: mars}\n", "entry 1 (../up): name must be"),
    ("datasets:\n  - {name: mars/x, query: mars}\n", "entry 1 (mars/x): name must be"),
    ("datasets:\n  - {name: 1mars, query: mars}\n", "entry 1 (1mars): name must be"),
    ("datasets:\n  - {name: " + "m" * 41 + ", query: mars}\n", "name must be"),
    ("datasets:\n  - {query: mars}\n", "datasets.yaml: entry 1: name must be"),
    ("datasets:\n  - {name: images, query: mars}\n", "entry 1 (images): name 'images' is reserved"),
    ("datasets:\n  - {name: nasa, query: mars}\n", "name 'nasa' is reserved"),
    ("datasets:\n  - {name: moon_dataset, query: mars}\n", "name 'moon_dataset' is reserved"),
    ("datasets:\n  - {name: mars, query: a}\n  - {name: mars, query: b}\n",
     "datasets.yaml: entry 2 (mars): the name 'mars' is used by an earlier entry"),
    ("datasets:\n  - {name: moon}\n  - {name: moon, query: b}\n", "entry 2 (moon): the name 'moon'"),
    ("datasets:\n  - {name: mars}\n", "entry 1 (mars): query is required"),
    ("datasets:\n  - {name: mars, query: '  '}\n", "query must be a non-empty string"),
    ("datasets:\n  - {name: mars, query: 5}\n", "query must be a non-empty string, got 5"),
    ("datasets:\n  - {name: mars, query: m, sampling_factor: 0}\n", "sampling_factor must be a whole number"),
    ("datasets:\n  - {name: mars, query: m, sampling_factor: 2.5}\n", "sampling_factor must be"),
    ("datasets:\n  - {name: mars, query: m, sampling_factor: true}\n", "sampling_factor must be"),
    ("datasets:\n  - {name: mars, query: m, rendition: huge}\n",
     "rendition must be one of orig, large, medium, small, thumb, got 'huge'"),
    ("datasets:\n  - {name: mars, query: m, split_fractions: {train: 0.8, test: 0.1}}\n",
     "entry 1 (mars): split_fractions fractions must add up to 1, got 0.9"),
    ("datasets:\n  - {name: mars, query: m, split_fractions: {train: 1.5, test: -0.5}}\n",
     "split_fractions expects name=fraction pairs"),
    ("datasets:\n  - {name: mars, query: m, split_fractions: {train: yes}}\n",
     "split_fractions maps split names to numbers"),
    ("datasets:\n  - {name: mars, query: m, split_fractions: [0.5, 0.5]}\n",
     "split_fractions is a mapping such as"),
    ("datasets:\n  - {name: mars, query: a, query: b}\n", "not valid YAML"),
    ("datasets:\n  - mars\n", "entry 1: is a str, not a mapping"),
    ("- {name: mars, query: m}\n", "datasets.yaml: expects one key, `datasets`"),
    ("datasets: {mars: {query: m}}\n", "expects one key, `datasets`"),
    ("datasets: []\nextra: 1\n", "expects one key, `datasets`"),
    ("", "expects one key, `datasets`"),
    ("datasets: [\n", "datasets.yaml: not valid YAML"),
])
def test_a_bad_file_is_one_error_naming_the_file_and_entry(text, message):
    with pytest.raises(DatasetsFileError) as caught:
        parse(text)
    assert message in str(caught.value)
    # No chained traceback of the YAML parser or of our own checks under it.
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_the_file_is_found_through_the_setting(tmp_path):
    path = tmp_path / "datasets.yaml"
    path.write_text("datasets:\n  - {name: mars, query: mars}\n")
    assert [s.name for s in datasets_from_env({"NASA_DATASETS_FILE": str(path)})] == ["moon", "mars"]
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(DatasetsFileError, match=f"^NASA_DATASETS_FILE {missing}: cannot be read"):
        datasets_from_env({"NASA_DATASETS_FILE": str(missing)})
    path.write_text("datasets:\n  - {name: mars, query: mars, size: 3}\n")
    with pytest.raises(DatasetsFileError, match=f"^NASA_DATASETS_FILE {path}: entry 1 \\(mars\\): unknown key"):
        datasets_from_env({"NASA_DATASETS_FILE": str(path)})


def test_the_example_file_is_valid():
    specs = load_datasets(str(EXAMPLE))
    assert [s.name for s in specs][0] == "moon" and len(specs) >= 3
