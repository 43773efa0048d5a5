"""moon_images refuses a page whose latest manifest_valid evaluation failed, in any later run."""

import dagster as dg

from nasa_assets.dataset.sampling import is_sampled
from nasa_assets.defs.assets.moon_images import moon_images, refusal_reason
from nasa_assets.defs.assets.sampled_manifest import sampled_manifest
from nasa_assets.defs.assets.search_results import search_results
from nasa_assets.defs.settings import resources_from_env
from nasa_assets_tests.helpers import PAGE_ASSETS, local_env, materialize_pages, read_table

# 1 item in 10 is sampled: what the gate decides depends on the check's outcome, not on how many
# images a page stores.
SAMPLED = {"SEARCH_RESULT_SAMPLING_FACTOR": "10"}


def evaluation(passed: bool, severity=dg.AssetCheckSeverity.ERROR, problems=None):
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("sampled_manifest"), check_name="manifest_valid", passed=passed,
        metadata={"problems": dg.MetadataValue.json(problems or [])}, severity=severity,
    )


def test_the_last_evaluation_of_the_run_decides():
    assert refusal_reason([evaluation(True)]) is None
    assert refusal_reason([evaluation(False, problems=["too many rejected"]), evaluation(True)]) is None
    assert refusal_reason([evaluation(False, problems=["too many rejected"])]) == (
        "manifest_valid failed: ['too many rejected']")
    assert refusal_reason([evaluation(False, severity=dg.AssetCheckSeverity.WARN)]) is None
    assert refusal_reason([]) == "manifest_valid was not evaluated in the run that wrote the manifest"


def run_alone(asset, env, instance, page="0001", last=None):
    tags = {"dagster/asset_partition_range_start": page, "dagster/asset_partition_range_end": last or page}
    return dg.materialize(
        PAGE_ASSETS, selection=[asset], resources=resources_from_env(env), instance=instance,
        tags=tags, raise_on_error=False,
    )


def test_a_failed_manifest_check_blocks_a_later_run_of_moon_images_alone(tmp_path, nasa_double):
    root = tmp_path / "dataset"
    good = local_env(nasa_double, root, **SAMPLED)
    # Images live on the double's host, which this setting does not allow: every item is rejected.
    strict = local_env(nasa_double, root, NASA_ALLOWED_HOSTS="images-assets.nasa.gov", **SAMPLED)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_pages(good, "0001", instance=instance).success
    images_before = (root / "moon_images/0001.parquet").read_bytes()

    failed = materialize_pages(strict, "0001", instance=instance)
    assert not failed.success
    assert len(read_table((root / "sampled_manifest/0001.parquet").read_bytes())) == 0
    nasa_double.reset_counts()

    refused = run_alone(moon_images, good, instance)

    assert not refused.success
    [failure] = refused.get_step_failure_events()
    message = failure.event_specific_data.error.message
    assert "moon_images refused, nothing downloaded or overwritten: page 0001: manifest_valid failed:" in message
    assert "MAX_REJECTED_FRACTION" in message
    assert failed.run_id[:8] in message
    assert nasa_double.counts["image"] == 0
    assert (root / "moon_images/0001.parquet").read_bytes() == images_before
    assert not refused.get_asset_materialization_events()

    # A manifest that passes again lifts the refusal.
    assert run_alone(sampled_manifest, good, instance).success
    again = run_alone(moon_images, good, instance)
    assert again.success
    assert set(read_table((root / "moon_images/0001.parquet").read_bytes())["status"]) == {"already_stored"}


def test_moon_images_alone_runs_after_a_passing_manifest(tmp_path, nasa_double):
    env = local_env(nasa_double, tmp_path, **SAMPLED)
    instance = dg.DagsterInstance.ephemeral()
    assert run_alone(search_results, env, instance, "0002").success
    assert run_alone(sampled_manifest, env, instance, "0002").success
    result = run_alone(moon_images, env, instance, "0002")
    assert result.success
    page = [item["data"][0]["nasa_id"] for item in nasa_double.corpus()[100:200]]
    table = read_table((tmp_path / "moon_images/0002.parquet").read_bytes())
    assert list(table["nasa_id"]) == [nasa_id for nasa_id in page if is_sampled(nasa_id, 10)]
    assert set(table["status"]) == {"stored"}



def test_one_refused_page_refuses_the_whole_range_run_of_moon_images(tmp_path, nasa_double):
    good = local_env(nasa_double, tmp_path, **SAMPLED)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_pages(good, "0001", "0002", instance=instance).success
    before = {p: (tmp_path / f"moon_images/{p}.parquet").read_bytes() for p in ("0001", "0002")}
    # 30 items of page 2 lose their nasa_id: its manifest fails the check in a run of page 2.
    nasa_double.put_raw_items(100, [{"href": "x", "data": [{"title": "no id"}], "links": []}] * 30)
    assert not materialize_pages(good, "0002", instance=instance).success
    nasa_double.reset_counts()

    refused = run_alone(moon_images, good, instance, "0001", "0002")

    assert not refused.success
    [failure] = refused.get_step_failure_events()
    message = failure.event_specific_data.error.message
    assert "page 0002: manifest_valid failed" in message and "page 0001" not in message
    assert nasa_double.counts["image"] == 0
    assert {p: (tmp_path / f"moon_images/{p}.parquet").read_bytes() for p in before} == before
