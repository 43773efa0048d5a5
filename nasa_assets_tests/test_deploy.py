"""What can be checked of the production artefacts without Docker or a cluster: the Dockerfile's
inputs, command and dependencies, the instance files in deploy/ against Dagster's own config
schemas, and the Helm values against the instance file they mirror."""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata as metadata
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from nasa_assets.dataset.datasets import load_datasets
from nasa_assets.defs.settings_spec import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
HELM_ENV_FILE = DEPLOY / "helm" / "nasa-assets.env"
INSTANCE_FILES = [DEPLOY / "dagster.yaml", DEPLOY / "ecs" / "dagster.yaml"]
SECRET_NAMES = {"NASA_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "DAGSTER_PG_PASSWORD"}


# -- Dockerfile --------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def _args(name: str) -> list[str]:
    return [args for instruction, args in _instructions() if instruction == name]


def _exec_form(args: str) -> list[str]:
    argv = json.loads(args)
    assert isinstance(argv, list), f"exec form expected (JSON array), got {args}"
    return argv


def _cmd() -> list[str]:
    (cmd,) = _args("CMD")
    return _exec_form(cmd)


def _exposed_port() -> int:
    (port,) = _args("EXPOSE")
    return int(port.split("/")[0])


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate, pattern = pattern.startswith("!"), pattern.lstrip("!").strip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.replace("**/", ""))
               for p in prefixes):
            ignored = not negate
    return ignored


def test_every_path_the_dockerfile_copies_exists_and_reaches_the_build_context():
    patterns = _dockerignore()
    copies = _args("COPY") + _args("ADD")
    assert copies
    for args in copies:
        sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
        assert sources, args
        for source in sources:
            matches = list(ROOT.glob(source))
            assert matches, f"COPY source {source!r} does not exist"
            for match in matches:
                files = [match] if match.is_file() else [p for p in match.rglob("*.py")]
                assert files, f"COPY source {source!r} holds no files"
                for file in files:
                    rel = file.relative_to(ROOT).as_posix()
                    if "__pycache__" not in rel:
                        assert not _ignored(rel, patterns), f"{rel} is COPYed but .dockerignored"


def test_the_build_context_leaves_out_secrets_and_local_state():
    patterns = _dockerignore()
    for rel in (".env", ".venv/bin/python", ".git/config", "data/moon_dataset/x.parquet",
                ".dagster_home/dagster.yaml", "nasa_assets/__pycache__/x.pyc"):
        assert _ignored(rel, patterns), f"{rel} would be sent to the Docker build"


def test_the_image_is_slim_unprivileged_and_secret_free():
    (base,) = _args("FROM")
    assert base == "python:3.11-slim"
    (user,) = _args("USER")
    assert user not in {"root", "0"} and not user.startswith(("root:", "0:"))
    env = " ".join(_args("ENV"))
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in env
    text = DOCKERFILE.read_text()
    for instruction in ("ENV", "ARG"):
        for args in _args(instruction):
            assert not re.search(r"KEY|SECRET|PASSWORD|TOKEN", args, re.I), f"{instruction} {args}"
    # Every dependency ships wheels: no compiler or apt packages are installed, so none remain.
    assert not re.search(r"apt-get|apk add|gcc|build-essential", text)
    # Helm's user deployments and the run launchers replace the command: no ENTRYPOINT in the way.
    assert not _args("ENTRYPOINT")


def _dockerfile_pip_installs() -> list[list[str]]:
    installs = []
    for run in _args("RUN"):
        for command in re.split(r"&&|;", run):
            words = shlex.split(command)
            if words[:2] == ["pip", "install"]:
                installs.append(words[2:])
    return installs


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _closure(project: str, extras: set[str]) -> dict[str, str]:
    """Installed name -> version of everything `project[extras]` pulls in (markers honoured)."""
    seen: dict[str, str] = {}
    visited: set[tuple[str, frozenset]] = set()
    todo = [(canonicalize_name(project), frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in visited:
            continue
        visited.add((name, wanted))
        dist = metadata.distribution(name)
        seen[name] = dist.version
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in {"", *wanted}):
                continue
            todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return seen


def test_the_image_installs_exactly_what_the_tests_ran_with():
    installs = _dockerfile_pip_installs()
    dependency_install = next(args for args in installs if any(a.startswith(".[") for a in args))
    assert "-c" in dependency_install
    assert dependency_install[dependency_install.index("-c") + 1] == "constraints.txt"
    (target,) = [a for a in dependency_install if a.startswith(".[")]
    extras = set(target[2:-1].split(","))
    assert extras == {"postgres"}
    # The code layer adds nothing new.
    assert all("--no-deps" in args for args in installs if args is not dependency_install)

    # Every extra the image uses is installed here, and every package it resolves to is pinned in
    # constraints.txt at the version this test run uses.
    pins = _pins()
    installed = _closure("nasa_assets", extras)
    unpinned = sorted(name for name in installed if name != "nasa-assets" and name not in pins)
    assert not unpinned, f"in the image but not pinned in constraints.txt: {unpinned}"
    drift = {n: (v, pins[n]) for n, v in installed.items() if n in pins and pins[n] != v}
    assert not drift, f"installed here vs pinned (the image gets the pin): {drift}"
    assert "dagster-postgres" in installed and "psycopg2-binary" in installed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _venv_script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_the_image_command_serves_the_code_location(tmp_path):
    """The CMD, run from this venv in an empty folder with a bare environment, serves gRPC."""
    from dagster._api.list_repositories import sync_list_repositories_grpc
    from dagster._grpc.client import DagsterGrpcClient

    argv = _cmd()
    assert argv[:3] == ["dagster", "code-server", "start"]
    assert argv[argv.index("-m") + 1] == "nasa_assets.definitions"
    assert argv[argv.index("-h") + 1] == "0.0.0.0"
    assert int(argv[argv.index("-p") + 1]) == _exposed_port()
    (healthcheck,) = _args("HEALTHCHECK")
    probe = _exec_form(healthcheck[healthcheck.index("CMD") + 3:])
    assert probe == ["dagster", "api", "grpc-health-check", "-p", str(_exposed_port())]

    port = _free_port()
    argv = [_venv_script("dagster"), *argv[1:]]
    argv[argv.index("-p") + 1] = str(port)
    argv[argv.index("-h") + 1] = "127.0.0.1"
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
           "HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log = tmp_path / "code-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        client = DagsterGrpcClient(port=port, host="127.0.0.1")
        # Wait with the client's own health check (in this process), then run the image's
        # HEALTHCHECK command once: each run of it is a `dagster` process, seconds of CPU.
        deadline = time.monotonic() + 90
        while client.health_check_query() != "SERVING":
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not serving after 90 s:\n{log.read_text()}"
            time.sleep(0.2)
        probe = [_venv_script("dagster"), "api", "grpc-health-check", "-p", str(port)]
        checked = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        response = sync_list_repositories_grpc(client)
        assert [s.repository_name for s in response.repository_symbols] == ["__repository__"]
        assert response.dagster_library_versions["dagster"] == metadata.version("dagster")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            returncode = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"code server ignored SIGTERM:\n{log.read_text()}")
    assert returncode == 0, log.read_text()
    # Nothing of the process group is left: its children may take a moment to exit after the
    # server, so wait for that (bounded) instead of a fixed pause.
    deadline = time.monotonic() + 20
    while _group_alive(proc.pid):
        assert time.monotonic() < deadline, "a process of the code server's group outlived it"
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# -- deploy/dagster.yaml and deploy/ecs/dagster.yaml -------------------------------------------


def _env_refs(node) -> set[str]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(_env_refs(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_env_refs(v) for v in node)) if node else set()
    return set()


def _resolve_class(block: dict):
    return getattr(importlib.import_module(block["module"]), block["class"])


@pytest.mark.parametrize("path", INSTANCE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_instance_file_is_valid_for_dagster_and_its_classes(path, monkeypatch):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.storage.config import pg_config

    raw = yaml.safe_load(path.read_text())
    refs = _env_refs(raw)
    for name in refs:
        monkeypatch.setenv(name, "5432" if name.endswith("_PORT") else f"value-of-{name}")

    config, custom_instance_class = dagster_instance_config(str(path.parent))
    assert custom_instance_class is None

    storage = process_config(pg_config(), config["storage"]["postgres"])
    assert storage.success, storage.errors
    db = storage.value["postgres_db"]
    assert db["password"] == "value-of-DAGSTER_PG_PASSWORD" and db["port"] == 5432
    assert db["scheme"] == "postgresql+psycopg2"  # the driver dagster-postgres installs
    for key in ("compute_logs", "run_coordinator", "run_launcher"):
        if key in config:
            block = config[key]
            result = process_config(_resolve_class(block).config_type(), block.get("config") or {})
            assert result.success, (key, result.errors)
    assert config["compute_logs"]["class"] == "S3ComputeLogManager"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_retries"]["enabled"] and config["run_retries"]["max_retries"] >= 1


@pytest.mark.parametrize("path", INSTANCE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_instance_file_takes_every_deployment_setting_from_the_environment(path, monkeypatch):
    from dagster._config import process_config
    from dagster._core.storage.config import pg_config

    raw = yaml.safe_load(path.read_text())
    db = raw["storage"]["postgres"]["postgres_db"]
    for key in ("username", "password", "hostname", "db_name", "port"):
        assert isinstance(db[key], dict) and set(db[key]) == {"env"}, key
    logs = raw["compute_logs"]["config"]
    assert set(logs["bucket"]) == {"env"} and set(logs["prefix"]) == {"env"}
    assert "endpoint_url" not in logs  # boto3 reads AWS_ENDPOINT_URL itself, when set
    # Unset, a variable fails loading with its name, instead of a literal standing in.
    for name in _env_refs(raw):
        monkeypatch.setenv(name, "5432")
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    result = process_config(pg_config(), raw["storage"]["postgres"])
    assert not result.success and "DAGSTER_PG_PASSWORD" in str(result.errors)


@pytest.mark.parametrize("path", INSTANCE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_instance_file_uses_only_the_current_concurrency_keys(path):
    raw = yaml.safe_load(path.read_text())
    assert "run_queue" not in raw
    assert "default_op_concurrency_limit" not in raw["concurrency"]
    assert set(raw["concurrency"]) == {"pools", "runs"}
    assert not set(raw["run_coordinator"].get("config") or {}) & {
        "max_concurrent_runs", "tag_concurrency_limits", "block_op_concurrency_limited_runs"}
    assert raw["concurrency"]["pools"]["granularity"] == "op"
    assert raw["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    # One run per page at a time.
    assert raw["concurrency"]["runs"]["tag_concurrency_limits"] == [
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]


def test_ecs_instance_file_is_the_base_one_plus_the_ecs_run_launcher():
    base, ecs = (yaml.safe_load(p.read_text()) for p in INSTANCE_FILES)
    launcher = ecs.pop("run_launcher")
    assert "run_launcher" not in base  # DefaultRunLauncher: what the Postgres queue test runs
    assert ecs == base
    assert (launcher["module"], launcher["class"]) == ("dagster_aws.ecs", "EcsRunLauncher")
    secrets = {s["name"] for s in launcher["config"]["secrets"]}
    assert secrets == {"DAGSTER_PG_PASSWORD", "NASA_API_KEY"}
    assert not SECRET_NAMES & set(launcher["config"]["env_vars"])
    # The run tasks get what the instance file itself reads.
    assert _env_refs(base) - {"DAGSTER_PG_PASSWORD"} <= set(launcher["config"]["env_vars"])


# -- Helm values -------------------------------------------------------------------------------


def _helm() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def _env_file() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in HELM_ENV_FILE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return {k.strip(): v.strip() for k, v in pairs}


def test_helm_user_deployment_runs_this_image_and_module():
    values = _helm()
    user = values["dagster-user-deployments"]
    assert user["enabled"] is True
    (deployment,) = user["deployments"]
    makefile_image = re.search(r"^IMAGE \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert f"{deployment['image']['repository']}:{deployment['image']['tag']}" == makefile_image
    cmd = _cmd()
    assert deployment["codeServerArgs"] == cmd[cmd.index("-m"):cmd.index("-m") + 2]
    assert "dagsterApiGrpcArgs" not in deployment
    assert deployment["port"] == _exposed_port()
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    for component in (deployment, values["dagsterWebserver"], values["dagsterDaemon"]):
        assert {"name": "nasa-assets-config"} in component["envConfigMaps"]
        assert {"name": "nasa-assets-secrets"} in component["envSecrets"]
        assert "env" not in component  # settings come from the ConfigMap, secrets from the Secret


def test_helm_instance_settings_match_deploy_dagster_yaml():
    values, instance = _helm(), yaml.safe_load(INSTANCE_FILES[0].read_text())
    pools, runs = instance["concurrency"]["pools"], instance["concurrency"]["runs"]
    assert values["concurrency"] == {
        "enabled": True,
        "pools": {"defaultLimit": pools["default_limit"], "granularity": pools["granularity"]},
        "runs": {"maxConcurrentRuns": runs["max_concurrent_runs"],
                 "tagConcurrencyLimits": runs["tag_concurrency_limits"]},
    }
    daemon = values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert not daemon["runCoordinator"]["config"]["queuedRunCoordinator"]  # limits: concurrency
    retries = instance["run_retries"]
    assert daemon["runRetries"] == {
        "enabled": retries["enabled"], "maxRetries": retries["max_retries"],
        "retryOnAssetOrOpFailure": retries["retry_on_asset_or_op_failure"],
    }
    monitoring = instance["run_monitoring"]
    assert daemon["runMonitoring"] == {
        "enabled": monitoring["enabled"],
        "startTimeoutSeconds": monitoring["start_timeout_seconds"],
        "pollIntervalSeconds": monitoring["poll_interval_seconds"],
        "freeSlotsAfterRunEndSeconds": monitoring["free_slots_after_run_end_seconds"],
    }
    logs = instance["compute_logs"]["config"]
    helm_logs = values["computeLogManager"]
    assert helm_logs["type"] == instance["compute_logs"]["class"]
    s3 = helm_logs["config"]["s3ComputeLogManager"]
    assert (s3["bucket"], s3["prefix"], s3["uploadInterval"]) == (
        logs["bucket"], logs["prefix"], logs["upload_interval"])
    db = instance["storage"]["postgres"]["postgres_db"]
    assert values["postgresql"]["postgresqlScheme"] == db["scheme"]
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in values["postgresql"]


def test_helm_settings_file_holds_settings_and_no_secrets():
    settings = _env_file()
    assert not SECRET_NAMES & set(settings)
    instance = yaml.safe_load(INSTANCE_FILES[0].read_text())
    compute_log_vars = _env_refs(instance["compute_logs"])
    assert compute_log_vars <= set(settings)
    # Only names the project declares (nasa_assets/defs/settings_spec.py) or the instance file
    # reads: a typo here would silently leave a default in force.
    unknown = set(settings) - set(SETTINGS) - compute_log_vars
    assert not unknown, unknown
    assert "S3_BUCKET_NAME" in settings and "DAGSTER_COMPUTE_LOGS_BUCKET" in settings


# -- the datasets file -------------------------------------------------------------------------

HELM_DATASETS = DEPLOY / "helm" / "datasets.yaml"


def test_helm_mounts_the_datasets_file_where_nasa_datasets_file_points():
    (deployment,) = _helm()["dagster-user-deployments"]["deployments"]
    (volume,) = deployment["volumes"]
    (mount,) = deployment["volumeMounts"]
    config_map = volume["configMap"]
    (item,) = config_map["items"]
    assert (mount["name"], mount["readOnly"]) == (volume["name"], True)
    # The code server and, through includeConfigInLaunchedRuns, every run pod read the same path.
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    path = f"{mount['mountPath']}/{item['path']}"
    assert _env_file()["NASA_DATASETS_FILE"] == path
    # The documented command creates that ConfigMap, with that key, from the shipped file.
    command = (f"kubectl -n dagster create configmap {config_map['name']} "
               f"--from-file={item['key']}={HELM_DATASETS.relative_to(ROOT)}")
    assert command in (ROOT / "docs" / "production.md").read_text()
    assert command.split(" ", 3)[3] in HELM_DATASETS.read_text()
    # ECS and single-host instructions use the same path.
    readme = (DEPLOY / "README.md").read_text()
    assert f"COPY datasets.yaml {path}" in readme
    assert f"ENV NASA_DATASETS_FILE={path}" in readme
    assert f'-v "$PWD/datasets.yaml:{path}:ro"' in readme
    assert f"-e NASA_DATASETS_FILE={path}" in readme


def test_the_shipped_helm_datasets_file_loads_as_moon_alone():
    # (datasets.example.yaml is checked by test_datasets_file.py.)
    assert [s.name for s in load_datasets(str(HELM_DATASETS))] == ["moon"]
