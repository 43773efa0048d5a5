"""The command-line ways in: `dagster asset materialize` and `python -m nasa_assets run`.

Each entry point runs once as a real child process; the CLI's other cases, whose subject is what
it prints and its exit code, call its `main(argv)` in this process (no 2 s import per case)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nasa_assets.__main__ import main

ROOT = Path(__file__).resolve().parent.parent


def _settings(double, data_dir) -> dict:
    return dict(NASA_API_BASE_URL=double.base_url, NASA_ALLOWED_HOSTS=double.host,
                NASA_ASSETS_LOCAL_DIR=str(data_dir))


def _env(double, data_dir, home=None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NASA_", "S3_", "DAGSTER_"))}
    env.update(_settings(double, data_dir), PYTHONPATH=str(ROOT))
    if home:
        env["DAGSTER_HOME"] = str(home)
    return env


@pytest.fixture
def cli(monkeypatch, tmp_path, capfd):
    """`python -m nasa_assets <argv>` in this process, in tmp_path, with only the given project
    settings: returns (exit code, stdout, stderr)."""
    def call(argv: list[str], **settings: str) -> tuple[int, str, str]:
        for name in [n for n in os.environ if n.startswith(("NASA_", "S3_", "DAGSTER_"))]:
            monkeypatch.delenv(name)
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        capfd.readouterr()
        code = main(argv)
        out, err = capfd.readouterr()
        return code, out, err
    return call


def test_dagster_asset_materialize_one_partition(tmp_path, nasa_double):
    data = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "nasa_assets.definitions",
         "--select", "search_results,sampled_manifest,moon_images", "--partition", "0001"],
        cwd=tmp_path, env=_env(nasa_double, data), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RUN_SUCCESS" in proc.stderr + proc.stdout
    images = pd.read_parquet(data / "moon_images" / "0001.parquet")
    assert len(images) == 100 and set(images["status"]) == {"stored"}
    assert len(list((data / "images").iterdir())) == 100
    assert nasa_double.counts["search"] == 1


def test_module_run_prints_where_the_data_went(tmp_path, nasa_double):
    data = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "nasa_assets", "run", "--pages", "1-2"],
        cwd=tmp_path, env=_env(nasa_double, data), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"dataset at {data.resolve().as_uri()}" in proc.stdout
    assert "0001...0002 moon_images: 200 stored, 0 already stored, 0 failed" in proc.stdout
    assert sorted(p.name for p in (data / "moon_images").iterdir()) == ["0001.parquet", "0002.parquet"]
    # The WebDataset export follows moon_dataset in the same command.
    index = (data / "webdataset" / "index.json").resolve()
    assert f"moon_webdataset: 200 samples in 3 shards (written), index {index.as_uri()}" in proc.stdout


def test_module_run_of_another_dataset_fills_its_own_folder(tmp_path, nasa_double, cli):
    mars_ids = nasa_double.add_query("mars", 130)
    (tmp_path / "datasets.yaml").write_text("datasets:\n  - {name: mars, query: mars}\n")
    settings = _settings(nasa_double, tmp_path / "data")
    code, out, err = cli(["run", "--pages", "1", "--dataset", "mars"], **settings,
                         NASA_DATASETS_FILE="datasets.yaml")
    assert code == 0, err[-3000:]
    mars = (tmp_path / "data" / "mars").resolve()
    assert "0001 mars/moon_images: 100 stored, 0 already stored, 0 failed" in out
    assert f"dataset at {mars.as_uri()}" in out
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["mars"]  # nothing of moon's
    table = pd.read_parquet(mars / "moon_dataset.parquet")
    assert sorted(table["nasa_id"]) == mars_ids[:100]
    assert nasa_double.counts["search"] == 1


def test_module_run_names_a_bad_datasets_file_or_dataset_without_a_traceback(
        tmp_path, nasa_double, cli):
    (tmp_path / "datasets.yaml").write_text("datasets:\n  - {name: mars, query: mars, sampling: 2}\n")
    for argv, extra, message in [
        ([], {"NASA_DATASETS_FILE": "datasets.yaml"},
         "NASA_DATASETS_FILE datasets.yaml: entry 1 (mars): unknown key 'sampling'"),
        (["--dataset", "venus"], {}, "no dataset 'venus'; declared: moon"),
    ]:
        code, _, err = cli(["run", *argv], **_settings(nasa_double, tmp_path / "d"), **extra)
        assert code == 2 and message in err, err
        assert "Traceback" not in err
    assert nasa_double.counts["search"] == 0


def test_a_bad_datasets_file_stops_the_code_location_with_the_file_and_entry_first(tmp_path, nasa_double):
    (tmp_path / "datasets.yaml").write_text("datasets:\n  - {name: mars, qeury: mars}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "nasa_assets.definitions"],
        cwd=tmp_path, env={**_env(nasa_double, tmp_path / "d"), "NASA_DATASETS_FILE": "datasets.yaml"},
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    failed = next(i for i, line in enumerate(lines) if "Validation failed for code location" in line)
    # Dagster's own traceback follows; the first line of the error says what to fix, and where.
    assert lines[failed + 1] == (
        "nasa_assets.dataset.datasets.DatasetsFileError: NASA_DATASETS_FILE datasets.yaml: entry 1 "
        "(mars): unknown key 'qeury' (allowed: name, query, sampling_factor, rendition, split_fractions)"
    )
    assert nasa_double.counts["search"] == 0


def test_module_run_rejects_bad_pages_without_a_traceback(tmp_path, nasa_double, cli):
    code, _, err = cli(["run", "--pages", "0-300"], **_settings(nasa_double, tmp_path / "d"))
    assert code == 2
    assert "pages run from 1 to 100" in err
    assert "Traceback" not in err


def test_module_run_reports_an_unreachable_api_without_a_traceback(tmp_path, nasa_double, cli):
    settings = _settings(nasa_double, tmp_path / "d")
    settings["NASA_API_BASE_URL"] = "http://127.0.0.1:9"  # discard port: connection refused
    settings["NASA_RETRY_BACKOFF_SECONDS"] = "0.01"  # the 4 retries are asserted, not their waits
    code, out, err = cli(["run", "--pages", "1"], **settings)
    assert code == 1
    assert ("0001 step search_results failed: nasa_assets.nasa.errors.NasaApiError: search page 1: "
            "GET http://127.0.0.1:9/search failed after 5 attempts: "
            "ConnectionError ([Errno 111] Connection refused)") in err
    # What failed and why, not where in the code: the frames stay in the run's event log.
    assert "Stack Trace" not in err and 'File "' not in err
    assert "Traceback" not in err
    # Nothing new was stored, so the dataset is left alone rather than rebuilt empty.
    assert "moon_dataset not rebuilt because a page run failed" in err
    assert not (tmp_path / "d" / "moon_dataset.parquet").exists()
    assert "the search step failed against http://127.0.0.1:9; is the server there running?" in err
    # No claim of a dataset that is not there.
    assert f"no dataset at {(tmp_path / 'd').resolve().as_uri()} yet" in out
    assert "dataset at" not in out.replace("no dataset at", "")


def test_a_failed_search_against_nasa_points_to_the_offline_demo():
    from nasa_assets.__main__ import _search_hint

    hint = _search_hint("https://images-api.nasa.gov")
    assert "`make run` needs network access to NASA's API" in hint
    assert "`make demo` runs the same pipeline offline" in hint
    assert "make demo" not in _search_hint("http://127.0.0.1:35439")
