"""The code location loads, and its settings come from the environment as documented."""

import re

import dagster as dg
import pytest

from nasa_assets.defs import settings as settings_module
from nasa_assets.defs.resources import LocalDatasetStorage, S3DatasetStorage
from nasa_assets.defs.sensors import interval_seconds
from nasa_assets.defs.settings import resources_from_env
from nasa_assets.defs.settings_spec import SETTINGS_LIST


def test_definitions_load_and_job_resolves():
    from nasa_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("moon_images_job")
    assert {n.name for n in job.nodes} == {"search_results", "sampled_manifest", "moon_images"}
    # The CLI's dataset rebuild runs a job the code location defines, so the UI knows it.
    dataset_job = defs.resolve_job_def("moon_dataset_job")
    assert {n.name for n in dataset_job.nodes} == {"moon_dataset", "moon_dataset_card", "moon_webdataset"}
    specs = {key.name: key for key in defs.resolve_asset_graph().asset_check_keys}
    assert set(specs) == {"manifest_valid", "images_complete", "unique_nasa_id", "uris_exist", "sha256_sample",
                          "shrink_within_limit", "no_duplicate_group_across_splits"}
    assert {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()} == {
        "search_results", "sampled_manifest", "moon_images", "moon_dataset", "moon_dataset_card",
        "moon_webdataset"}
    assert defs.resolve_assets_def("moon_webdataset").group_names_by_key == {
        dg.AssetKey("moon_webdataset"): "moon_dataset"}
    search = defs.resolve_assets_def("search_results")
    assert search.partitions_def.get_partition_keys()[:2] == ["0001", "0002"]
    assert len(search.partitions_def.get_partition_keys()) == 100
    assert search.op.pool == "nasa_api"


@pytest.mark.parametrize("env,storage_kinds", [({}, set()), ({"S3_BUCKET_NAME": "my-bucket"}, {"s3"})])
def test_asset_kinds_name_the_storage_in_use(env, storage_kinds):
    from nasa_assets.definitions import definitions_from_env

    graph = definitions_from_env(env).resolve_asset_graph()
    for name in ("search_results", "sampled_manifest", "moon_images", "moon_dataset"):
        assert graph.get(dg.AssetKey(name)).kinds == {"python", "parquet"} | storage_kinds, name
    assert graph.get(dg.AssetKey("moon_dataset_card")).kinds == {"python", "markdown"} | storage_kinds
    assert graph.get(dg.AssetKey("moon_webdataset")).kinds == {"python"} | storage_kinds


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
    ("NASA_ALLOWED_HOSTS", " , "), ("NASA_ALLOWED_HOSTS", "[::1]:x"), ("NASA_DOWNLOAD_TIMEOUT", "0"),
    ("NASA_DOWNLOAD_TIMEOUT", "soon"), ("NASA_FILE_HOST_PAUSE_SECONDS", "-1"),
    ("NASA_FILE_HOST_PAUSE_SECONDS", "7200"),
])
def test_bad_settings_are_refused_at_load_naming_the_variable(name, value):
    # At load, not mid-run: the code location does not start, and the message names what to fix.
    with pytest.raises(ValueError, match=name):
        resources_from_env({name: value})


# Every float setting, from the declarations, so a new one is covered too.
FLOAT_SETTINGS = sorted(setting.name for setting in SETTINGS_LIST if setting.kind is float)
READERS = (resources_from_env, settings_module.total_hits_drop_share,
           settings_module.repair_policy_from_env, interval_seconds)


def test_the_float_settings_are_found():
    assert {"NASA_READ_TIMEOUT", "NASA_DOWNLOAD_TIMEOUT", "NASA_FILE_HOST_PAUSE_SECONDS",
            "MAX_REJECTED_FRACTION", "MAX_FAILED_FRACTION", "NASA_TOTAL_HITS_DROP_SHARE",
            "NASA_REPAIR_BACKOFF_SECONDS"} <= set(FLOAT_SETTINGS)


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", " NaN "])
def test_float_settings_refuse_inf_and_nan_naming_the_variable(name, value):
    errors = []
    for reader in READERS:  # the one that reads `name` must refuse it
        try:
            reader({name: value})
        except ValueError as error:
            errors.append(str(error))
    assert errors and all(re.match(f"^{name} must be a finite number", e) for e in errors), errors


def test_new_limits_reach_the_client():
    client = resources_from_env({"NASA_DOWNLOAD_TIMEOUT": "12.5", "NASA_FILE_HOST_PAUSE_SECONDS": "0"})["nasa"].client()
    assert client.download_timeout == 12.5 and client.new_breaker().pause == 0
    defaults = resources_from_env({})["nasa"]
    assert (defaults.download_timeout, defaults.file_host_pause) == (600.0, 30.0)
    assert defaults.probe_client().download_timeout == 20.0  # a sensor tick stays short
