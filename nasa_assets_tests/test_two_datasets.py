"""Two datasets from one datasets file: their definitions, and their data side by side in one
storage root without touching each other's tables or images."""

import json

import dagster as dg
import pytest

from nasa_assets.dataset.sampling import is_sampled
from nasa_assets.defs.definitions import definitions_from_env
from nasa_assets_tests.helpers import LocalReader, S3Reader, local_env, read_table

MARS = "datasets:\n  - {name: mars, query: mars, sampling_factor: 3, rendition: medium}\n"
ASSETS = ("search_results", "sampled_manifest", "moon_images", "moon_dataset", "moon_dataset_card",
          "moon_webdataset")
# One page and a dataset rebuild: moon's layout, the same as with moon alone.
TABLES = {"search_results/0001.parquet", "sampled_manifest/0001.parquet", "rejected/0001.parquet",
          "moon_images/0001.parquet", "moon_dataset.parquet", "README.md", "webdataset/index.json"}


def two_datasets(env: dict, tmp_path, text: str = MARS) -> dg.Definitions:
    path = tmp_path / "datasets.yaml"
    path.write_text(text)
    return definitions_from_env({**env, "NASA_DATASETS_FILE": str(path)})


def test_two_datasets_have_their_own_keys_groups_jobs_and_sensors(tmp_path):
    defs = two_datasets({}, tmp_path)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        *ASSETS, *(f"mars/{name}" for name in ASSETS)}
    assert {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()} == {
        **dict.fromkeys(ASSETS, "moon_dataset"), **{f"mars/{name}": "mars" for name in ASSETS}}
    assert sorted(job.name for job in defs.jobs) == [
        "mars_dataset_job", "mars_images_job", "moon_dataset_job", "moon_images_job"]
    nodes = {name: {n.name for n in defs.resolve_job_def(name).nodes} for name in
             ("moon_images_job", "mars_images_job", "moon_dataset_job", "mars_dataset_job")}
    assert nodes == {
        "moon_images_job": {"search_results", "sampled_manifest", "moon_images"},
        "mars_images_job": {"mars__search_results", "mars__sampled_manifest", "mars__moon_images"},
        "moon_dataset_job": {"moon_dataset", "moon_dataset_card", "moon_webdataset"},
        "mars_dataset_job": {"mars__moon_dataset", "mars__moon_dataset_card", "mars__moon_webdataset"},
    }
    assert defs.resolve_job_def("mars_dataset_job").description.startswith("Rebuild mars/moon_dataset ")
    assert defs.resolve_job_def("moon_dataset_job").description.startswith("Rebuild moon_dataset ")
    sensors = {s.name: s for s in defs.sensors}
    assert {name: (s.job_name, s.default_status) for name, s in sensors.items()} == {
        "nasa_search_refresh": ("moon_images_job", dg.DefaultSensorStatus.STOPPED),
        "mars_search_refresh": ("mars_images_job", dg.DefaultSensorStatus.STOPPED),
    }
    checks = {k.to_user_string() for k in graph.asset_check_keys}
    dataset_checks = ("shrink_within_limit", "unique_nasa_id", "uris_exist", "sha256_sample",
                      "no_duplicate_group_across_splits")
    assert {c for c in checks if c.startswith("mars/")} == {
        "mars/sampled_manifest:manifest_valid", "mars/moon_images:images_complete",
        *(f"mars/moon_dataset:{name}" for name in dataset_checks)}
    # Each dataset's chain stays within its own prefix; both search steps share one pool.
    assert graph.get(dg.AssetKey(["mars", "moon_dataset"])).parent_keys == {
        dg.AssetKey(["mars", "moon_images"]), dg.AssetKey(["mars", "sampled_manifest"])}
    searches = (dg.AssetKey("search_results"), dg.AssetKey(["mars", "search_results"]))
    assert {defs.resolve_assets_def(key).op.pool for key in searches} == {"nasa_api"}


def _layout(reader, folder: str = "") -> set[str]:
    """The keys under `folder` of the storage root, relative to it ("" is moon's: all but mars/)."""
    keys = reader.keys()
    if folder:
        return {k[len(folder) + 1:] for k in keys if k.startswith(folder + "/")}
    return {k for k in keys if not k.startswith("mars/")}


def _expected(reader, folder: str = "") -> set[str]:
    """TABLES, the images the dataset's moon_images table lists and the shards its index lists."""
    at = f"{folder}/" if folder else ""
    images = read_table(reader.get(f"{at}moon_images/0001.parquet"))
    index = json.loads(reader.get(f"{at}webdataset/index.json"))
    return TABLES | set(images["image_key"]) | {s["key"] for s in index["shards"]}


@pytest.fixture(params=["local", "s3"])
def side_by_side(request, tmp_path, nasa_double):
    """(settings, reader of the storage root) for one storage backend."""
    if request.param == "local":
        root = tmp_path / "dataset"
        return local_env(nasa_double, root), LocalReader(root)
    from nasa_assets_tests.helpers import s3_env

    server, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
    reader = S3Reader(request.getfixturevalue("s3_client"), bucket, "moon_dataset")
    return s3_env(nasa_double, server, bucket, prefix="moon_dataset"), reader


def test_two_datasets_live_side_by_side(side_by_side, nasa_double, tmp_path):
    env, reader = side_by_side
    # moon samples 1 item in 4 (the environment's factor), mars 1 in 3 (its entry's): each
    # dataset's own setting, and a quarter of moon's images to store, hash and export.
    env = {**env, "SEARCH_RESULT_SAMPLING_FACTOR": "4"}
    mars_ids = nasa_double.add_query("mars", 130)
    moon_ids = [item["data"][0]["nasa_id"] for item in nasa_double.corpus()]
    defs = two_datasets(env, tmp_path)
    instance = dg.DagsterInstance.ephemeral()

    def run(job: str, page: str | None = None):
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=page)
        assert result.success, job

    run("moon_images_job", "0001")
    run("moon_dataset_job")
    moon_before = _layout(reader)
    assert moon_before == _expected(reader)  # moon's keys, exactly as with moon alone
    run("mars_images_job", "0001")
    run("mars_dataset_job")

    # The same layout inside <root>/mars/, and moon's objects untouched by mars's runs.
    assert _layout(reader, "mars") == _expected(reader, "mars")
    assert _layout(reader) == moon_before
    assert reader.keys() == moon_before | {f"mars/{k}" for k in _layout(reader, "mars")}

    # Each dataset's tables hold its own query's items only, with its own settings.
    moon_search = read_table(reader.get("search_results/0001.parquet"))
    mars_search = read_table(reader.get("mars/search_results/0001.parquet"))
    assert list(moon_search["nasa_id"]) == moon_ids[:100]
    assert list(mars_search["nasa_id"]) == mars_ids[:100]
    moon_table = read_table(reader.get("moon_dataset.parquet"))
    mars_table = read_table(reader.get("mars/moon_dataset.parquet"))
    assert list(moon_table["nasa_id"]) == [i for i in moon_ids[:100] if is_sampled(i, 4)]
    assert list(mars_table["nasa_id"]) == [i for i in mars_ids[:100] if is_sampled(i, 3)]
    assert 0 < len(moon_table) < 100 and 0 < len(mars_table) < 100
    # mars: rendition medium (its entry's) instead of the environment's large.
    assert set(moon_table["rendition"]) == {"large"} and set(mars_table["rendition"]) == {"medium"}
    assert all(k.startswith("images/MARS-") for k in mars_table["image_key"])
    assert not any(k.startswith("images/MARS-") for k in moon_table["image_key"])
    mars_card, moon_card = reader.get("mars/README.md").decode(), reader.get("README.md").decode()
    assert "| query | `mars` |" in mars_card and "| query | `moon` |" in moon_card
    # Each card names its dataset and where its settings came from.
    assert mars_card.startswith("# mars: ") and moon_card.startswith("# Synthetic images ")
    assert "(sampling_factor of `mars` in NASA_DATASETS_FILE)" in mars_card
    assert "medium requested (rendition of `mars` in NASA_DATASETS_FILE)" in mars_card
    assert "Changing DATASET_SPLIT_FRACTIONS" in mars_card  # not in its entry: the environment's
    assert "large requested (NASA_IMAGE_RENDITION)" in moon_card
    assert "SEARCH_RESULT_SAMPLING_FACTOR=4" in moon_card

    # A rebuild of mars's dataset from a second page touches none of moon's objects.
    moon_prints = reader.fingerprints(moon_before)
    run("mars_images_job", "0002")
    run("mars_dataset_job")
    assert len(read_table(reader.get("mars/moon_dataset.parquet"))) > len(mars_table)
    assert _layout(reader) == moon_before and reader.fingerprints(moon_before) == moon_prints

    # mars's entry removed from the datasets file: moon's runs leave mars's folder as it was.
    mars_keys = reader.keys() - moon_before
    mars_prints = reader.fingerprints(mars_keys)
    moon_alone = definitions_from_env(env)
    for job, page in (("moon_images_job", "0002"), ("moon_dataset_job", None)):
        assert moon_alone.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=page).success, job
    assert reader.fingerprints(mars_keys) == mars_prints
    assert reader.keys() == _layout(reader) | mars_keys


def test_one_search_budget_for_every_dataset(tmp_path, nasa_double):
    """moon's page run spends the process's only search request of the hour: mars's sensor, in
    the same process, finds the budget spent and asks NASA nothing."""
    nasa_double.add_query("mars", 130)
    env = local_env(nasa_double, tmp_path / "dataset", NASA_API_RATE_LIMIT_PER_HOUR="1")
    defs = two_datasets(env, tmp_path)
    result = defs.resolve_job_def("moon_images_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key="0001")
    assert result.success and nasa_double.counts["search"] == 1
    with dg.build_sensor_context(resources={"nasa": defs.resources["nasa"]}, definitions=defs) as context:
        tick = defs.resolve_sensor_def("mars_search_refresh")(context)
    assert tick.skip_reason.skip_message.startswith("NASA API request budget exhausted")
    assert nasa_double.counts["search"] == 1


def test_the_sensor_of_a_dataset_searches_its_query_for_its_own_job(tmp_path, nasa_double):
    nasa_double.add_query("mars", 130)  # two pages; moon's corpus has three
    defs = two_datasets(local_env(nasa_double, tmp_path / "dataset"), tmp_path)
    with dg.build_sensor_context(resources={"nasa": defs.resources["nasa"]}, definitions=defs,
                                 instance=dg.DagsterInstance.ephemeral()) as context:
        sensor = defs.resolve_sensor_def("mars_search_refresh")
        result = sensor.evaluate_tick(context)
    # The requests carry no job of their own: they run the sensor's, mars_images_job.
    assert sensor.job_name == "mars_images_job" and {r.job_name for r in result.run_requests} == {None}
    assert [r.partition_key for r in result.run_requests] == ["0001", "0002"]
    searches = [path for kind, path in nasa_double.requests if kind == "search"]
    assert searches and all("q=mars" in path for path in searches)


def test_each_sensor_repairs_the_runs_of_its_own_job_only(tmp_path, nasa_double):
    """moon's page 0001 and mars's page 0002 failed last (after the other pages succeeded): each
    sensor asks to repair its own failed page, not the other dataset's newer run of that page."""
    # Two pages each, and 1 item in 50 sampled (a few images per successful run): which runs the
    # sensors repair does not depend on how many pages or images there are.
    nasa_double.total_hits = 200
    nasa_double.add_query("mars", 130)
    env = local_env(nasa_double, tmp_path / "dataset", NASA_MAX_RETRIES="0",
                    SEARCH_RESULT_SAMPLING_FACTOR="50", NASA_REPAIR_BACKOFF_SECONDS="0")
    defs = two_datasets(env, tmp_path, MARS.replace("sampling_factor: 3", "sampling_factor: 50"))
    sensors = ("nasa_search_refresh", "mars_search_refresh")
    with dg.DagsterInstance.ephemeral() as instance:

        def tick(sensor: str, cursor: str | None = None) -> dg.SensorResult:
            with dg.build_sensor_context(cursor=cursor, resources={"nasa": defs.resources["nasa"]},
                                         definitions=defs, instance=instance) as context:
                return defs.resolve_sensor_def(sensor)(context)

        def run(job: str, page: str) -> str:
            return defs.resolve_job_def(job).execute_in_process(
                instance=instance, partition_key=page, raise_on_error=False).dagster_run.status.value

        cursors = {sensor: tick(sensor).cursor for sensor in sensors}  # no page changes from here
        assert run("moon_images_job", "0002") == "SUCCESS"
        assert run("mars_images_job", "0001") == "SUCCESS"
        nasa_double.faults = {"always": {"search": "500"}}
        assert [run("moon_images_job", "0001"), run("mars_images_job", "0002")] == ["FAILURE"] * 2
        nasa_double.faults = {}

        repairs = {sensor: {r.partition_key: r.tags["nasa/repair"]
                            for r in tick(sensor, cursors[sensor]).run_requests}
                   for sensor in sensors}
    assert repairs == {"nasa_search_refresh": {"0001": "last run FAILURE"},
                       "mars_search_refresh": {"0002": "last run FAILURE"}}
