"""The code location loads, and its settings come from the environment as documented."""

import dagster as dg
import pytest

from nasa_assets.resources import LocalDatasetStorage, S3DatasetStorage
from nasa_assets.settings import resources_from_env


def test_definitions_load_and_job_resolves():
    from nasa_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("moon_images_job")
    assert {n.name for n in job.nodes} == {"search_results", "sampled_manifest", "moon_images"}
    specs = {key.name: key for key in defs.resolve_asset_graph().asset_check_keys}
    assert set(specs) == {"manifest_valid", "images_complete", "unique_nasa_id", "uris_exist", "sha256_sample"}
    search = defs.resolve_assets_def("search_results")
    assert search.partitions_def.get_partition_keys()[:2] == ["0001", "0002"]
    assert len(search.partitions_def.get_partition_keys()) == 100
    assert search.op.pool == "nasa_api"


def test_every_job_runs_its_steps_in_the_run_worker():
    """UI Materialize, `dagster asset materialize` and `dagster job launch` all get the in-process
    executor: no subprocess (and no re-import of the stack) per step."""
    from nasa_assets.definitions import defs

    for name in ("moon_images_job", "__ASSET_JOB"):
        assert defs.resolve_job_def(name).executor_def is dg.in_process_executor


def test_defaults_are_local_storage_without_credentials():
    resources = resources_from_env({})
    assert isinstance(resources["storage"], LocalDatasetStorage)
    assert resources["storage"].root == "data/moon_dataset"
    assert resources["nasa"].base_url == "https://images-api.nasa.gov"
    assert resources["nasa"].query == "moon"
    assert resources["nasa"].api_key is None
    assert resources["settings"].sampling_factor == 1
    assert resources["settings"].rendition == "large"


def test_bucket_switches_to_s3_and_key_is_an_env_var(monkeypatch):
    monkeypatch.setenv("NASA_API_KEY", "sekrit-key")
    env = {"S3_BUCKET_NAME": "my-bucket", "S3_KEY_PREFIX": "/ds/", "NASA_API_KEY": "sekrit-key",
           "SEARCH_RESULT_SAMPLING_FACTOR": "10", "NASA_IMAGE_RENDITION": "Medium"}
    resources = resources_from_env(env)
    storage = resources["storage"]
    assert isinstance(storage, S3DatasetStorage)
    assert (storage.bucket, storage.prefix) == ("my-bucket", "ds")
    # An EnvVar, not the value: the key never lands in run config shown by the UI.
    assert resources["nasa"].api_key == dg.EnvVar("NASA_API_KEY")
    assert resources["settings"].sampling_factor == 10
    assert resources["settings"].rendition == "medium"


@pytest.mark.parametrize("name,value", [
    ("SEARCH_RESULT_SAMPLING_FACTOR", "ten"), ("SEARCH_RESULT_SAMPLING_FACTOR", "0"),
    ("MAX_REJECTED_FRACTION", "x"), ("MAX_REJECTED_FRACTION", "1.5"), ("MAX_FAILED_FRACTION", "-0.1"),
    ("NASA_API_RATE_LIMIT_PER_HOUR", "0"), ("DOWNLOAD_CONCURRENCY", "0"), ("DOWNLOAD_CONCURRENCY", "1000"),
    ("MAX_IMAGE_BYTES", "0"), ("NASA_READ_TIMEOUT", "0"), ("NASA_MAX_RETRIES", "-1"),
    ("NASA_IMAGE_RENDITION", "huge"), ("NASA_ALLOWED_HOSTS", "images-assets.nasa.gov:https"),
    ("NASA_ALLOWED_HOSTS", " , "),
])
def test_bad_settings_are_refused_at_load_naming_the_variable(name, value):
    # At load, not mid-run: the code location does not start, and the message names what to fix.
    with pytest.raises(ValueError, match=name):
        resources_from_env({name: value})
