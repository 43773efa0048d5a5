"""moon_dataset never silently shrinks: MAX_DATASET_SHRINK and the accept_shrink run config."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from nasa_assets.dataset.consolidate import shrink_problem
from nasa_assets.dataset.sampling import is_sampled
from nasa_assets.defs.assets.moon_dataset import moon_dataset
from nasa_assets.defs.assets.moon_dataset_card import moon_dataset_card
from nasa_assets.defs.settings import resources_from_env
from nasa_assets_tests.helpers import (
    PAGE_ASSETS,
    LocalReader,
    S3Reader,
    copy_folder,
    local_env,
    materialize_pages,
    read_table,
    s3_env,
)

ROOT = Path(__file__).resolve().parent.parent
ACCEPT = {"ops": {"moon_dataset": {"config": {"accept_shrink": True}}}}


def build_dataset(env: dict, run_config=None):
    return dg.materialize(
        [*PAGE_ASSETS, moon_dataset, moon_dataset_card], selection=[moon_dataset, moon_dataset_card],
        resources=resources_from_env(env),
        run_config=run_config, raise_on_error=False,
    )


def shrink_check(result):
    [evaluation] = [e for e in result.get_asset_check_evaluations()
                    if e.check_name == "shrink_within_limit"]
    return evaluation


def published(reader) -> tuple[bytes, bytes]:
    return reader.get("moon_dataset.parquet"), reader.get("README.md")


# Shrink limits are dataset logic: local storage, but for one refusal on S3 (sampled pages).
@pytest.fixture(scope="module")
def shrunk_once(tmp_path_factory, module_doubles):
    """A published dataset of 250 rows (pages 1-3), then NASA lists 200 hits and page 3 is
    materialized again, empty: a rebuild would have 200 rows, 20% fewer. Built once per module."""
    double = module_doubles()
    root = tmp_path_factory.mktemp("shrunk") / "dataset"
    env = local_env(double, root)
    assert materialize_pages(env, "0001", "0003").success
    assert build_dataset(env).success
    assert len(read_table((root / "moon_dataset.parquet").read_bytes())) == 250
    double.total_hits = 200
    assert materialize_pages(env, "0003").success
    return env, root


@pytest.fixture
def shrunk(shrunk_once, tmp_path):
    """(settings, reader) of a copy of `shrunk_once`'s folder, for a test that rebuilds it."""
    env, root = shrunk_once
    copy = tmp_path / "dataset"
    return copy_folder(env, root, copy), LocalReader(copy)


@pytest.mark.parametrize(("previous", "new", "limit", "refused"), [
    (None, 0, 0.1, False), (0, 0, 0.1, False), (250, 250, 0.1, False), (250, 300, 0.0, False),
    (250, 225, 0.1, False), (250, 224, 0.1, True), (250, 0, 0.1, True), (250, 0, 1.0, False),
    (250, 249, 0.0, True),
])
def test_shrink_problem_applies_the_limit(previous, new, limit, refused):
    assert (shrink_problem(previous, new, limit) is not None) == refused


def test_a_refused_shrink_on_s3_keeps_the_published_objects(nasa_double, s3_server, s3_client, s3_bucket):
    """The check reads the published table back from S3, and a refusal writes no object there."""
    env = s3_env(nasa_double, s3_server, s3_bucket, SEARCH_RESULT_SAMPLING_FACTOR="2")
    reader = S3Reader(s3_client, s3_bucket, "moon_dataset")
    ids = [item["data"][0]["nasa_id"] for item in nasa_double.corpus()]
    previous = sum(is_sampled(i, 2) for i in ids[:250])
    new = sum(is_sampled(i, 2) for i in ids[:200])
    assert shrink_problem(previous, new, 0.1)  # the sample still shrinks past the limit
    assert materialize_pages(env, "0001", "0003").success
    assert build_dataset(env).success
    nasa_double.total_hits = 200
    assert materialize_pages(env, "0003").success
    before = published(reader)
    objects = reader.fingerprints(reader.keys())

    result = build_dataset(env)

    assert not result.success
    evaluation = shrink_check(result)
    assert not evaluation.passed
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert (metadata["previous_rows"], metadata["new_rows"]) == (previous, new)
    assert published(reader) == before and reader.fingerprints(reader.keys()) == objects


def test_a_shrink_beyond_the_limit_keeps_the_published_dataset_and_fails(shrunk):
    env, reader = shrunk
    before = published(reader)

    result = build_dataset(env)

    assert not result.success
    evaluation = shrink_check(result)
    assert not evaluation.passed
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert (metadata["previous_rows"], metadata["new_rows"]) == (250, 200)
    assert metadata["problems"] == [
        "moon_dataset would shrink from 250 to 200 rows (20% fewer; MAX_DATASET_SHRINK=0.1)"]
    assert "accept_shrink: true" in evaluation.description
    assert not result.get_asset_materialization_events()
    [failure] = result.get_step_failure_events()
    assert "shrink_within_limit" in failure.event_specific_data.error.message
    assert published(reader) == before


def test_a_person_accepts_a_real_shrink_with_the_run_config(shrunk):
    env, reader = shrunk
    result = build_dataset(env, run_config=ACCEPT)

    assert result.success
    evaluation = shrink_check(result)
    assert evaluation.passed and evaluation.metadata["accepted_shrink"].value is True
    assert len(read_table(reader.get("moon_dataset.parquet"))) == 200
    assert "| images | 200 |" in reader.get("README.md").decode("utf-8")
    # The acceptance is for that run only; the next rebuild compares with the 200 rows.
    again = build_dataset(env)
    assert again.success and shrink_check(again).metadata["previous_rows"].value == 200


def test_a_shrink_within_max_dataset_shrink_is_published(shrunk):
    env, reader = shrunk
    result = build_dataset(env | {"MAX_DATASET_SHRINK": "0.2"})
    assert result.success
    assert shrink_check(result).metadata["accepted_shrink"].value is False
    assert len(read_table(reader.get("moon_dataset.parquet"))) == 200


@pytest.mark.parametrize("value", ["nan", "inf", "1.5", "-0.1", "ten"])
def test_max_dataset_shrink_is_validated_by_name(value):
    with pytest.raises(ValueError, match="MAX_DATASET_SHRINK"):
        resources_from_env({"MAX_DATASET_SHRINK": value})


def test_dagster_cli_accepts_a_shrink_with_config_json(shrunk, tmp_path):
    env, reader = shrunk
    root = reader.root
    before = (root / "moon_dataset.parquet").read_bytes()
    # Without the config this folder's rebuild is refused (in process: the refusal itself is
    # test_a_shrink_beyond_the_limit_keeps_the_published_dataset_and_fails's subject), so what
    # the command below changes is the config's doing.
    refused = build_dataset(env)
    assert not refused.success and not shrink_check(refused).passed
    [failure] = refused.get_step_failure_events()
    assert "shrink_within_limit" in failure.event_specific_data.error.message
    assert (root / "moon_dataset.parquet").read_bytes() == before

    process_env = {k: v for k, v in os.environ.items() if not k.startswith(("NASA_", "S3_", "DAGSTER_"))}
    accepted = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "nasa_assets.definitions",
         "--select", "moon_dataset", "--config-json", json.dumps(ACCEPT)],
        cwd=tmp_path, env=process_env | env | {"PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    assert len(read_table((root / "moon_dataset.parquet").read_bytes())) == 200
