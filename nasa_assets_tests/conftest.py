"""Shared fixtures: an isolated environment, the NASA double, and an in-process moto S3 server."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

# The fixtures import the project, boto3 and the double themselves: pytest-xdist's controller
# loads this file too, runs no test, and would otherwise spend seconds importing Dagster first.
if TYPE_CHECKING:
    from nasa_assets_tests.nasa_double import NasaDouble

# Test tiers (pytest -m unit / integration / system; docs/testing.md). A test marked by hand keeps
# its mark; the others are sorted here by the fixtures they use and the module they are in.
TIERS = ("unit", "integration", "system")
# A live `dagster dev`, a PostgreSQL cluster or a browser: minutes, and system packages.
SYSTEM_FIXTURES = {"live_dagster", "postgres", "deployment"}
SYSTEM_MODULES = {"test_live_dagster", "test_live_datasets", "test_live_repair", "test_production_queue"}
# Real sockets (the double, moto), Dagster runs or child processes: seconds each.
INTEGRATION_FIXTURES = {"nasa_double", "module_doubles", "s3_server"}
INTEGRATION_MODULES = {
    "test_bench", "test_cli", "test_client", "test_deploy", "test_kill_rerun", "test_nasa_double",
    "test_no_secret_leaks", "test_pipeline", "test_redirects", "test_s3_store", "test_screening",
}


def tier(module: str, fixtures: set[str]) -> str:
    """The tier of a test, from its module's name and every fixture it uses (directly or not)."""
    if fixtures & SYSTEM_FIXTURES or module in SYSTEM_MODULES:
        return "system"
    if fixtures & INTEGRATION_FIXTURES or module in INTEGRATION_MODULES:
        return "integration"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(name) for name in TIERS):
            module = item.module.__name__.rpartition(".")[2] if item.module else ""
            item.add_marker(tier(module, set(getattr(item, "fixturenames", ()))))


def pytest_collection_finish(session: pytest.Session) -> None:
    # What collection imported (Dagster, pandas, pyarrow, moto) lives for the whole session, yet
    # every full garbage collection walks it again: frozen, and with collections less frequent,
    # a test process spends about 7% less CPU.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


# Settings a developer's shell or .env may carry; none may leak into a test.
_SCRUBBED_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "S3_BUCKET_NAME",
    "NASA_API_KEY",
    "NASA_API_BASE_URL",
    "NASA_ALLOWED_HOSTS",
)


@pytest.fixture(scope="session", autouse=True)
def isolated_aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fake AWS credentials and no project settings from the developer's environment."""
    missing = tmp_path_factory.mktemp("aws") / "absent"
    with pytest.MonkeyPatch.context() as mp:
        for name in _SCRUBBED_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # Keep botocore away from ~/.aws so no real profile, SSO or role can be picked up.
        mp.setenv("AWS_CONFIG_FILE", str(missing))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(autouse=True)
def fresh_rate_budgets() -> Iterator[None]:
    """Each test starts with full request budgets: the process-wide limiters are keyed by API root,
    and a later test's double may get a port an earlier one used."""
    from nasa_assets.nasa.ratelimit import clear_shared_limiters

    clear_shared_limiters()
    yield


@pytest.fixture
def nasa_double() -> Iterator[NasaDouble]:
    """A running NasaDouble with 250 hits."""
    from nasa_assets_tests.nasa_double import NasaDouble

    double = NasaDouble(total_hits=250).start()
    try:
        yield double
    finally:
        double.stop()


@pytest.fixture(scope="module")
def module_doubles() -> Iterator[Callable[[], NasaDouble]]:
    """Starts a new NasaDouble with 250 hits on each call, running until the module's tests are
    done: for a build that several tests of a module share."""
    from nasa_assets_tests.nasa_double import NasaDouble

    doubles: list[NasaDouble] = []

    def start() -> NasaDouble:
        doubles.append(NasaDouble(total_hits=250).start())
        return doubles[-1]

    try:
        yield start
    finally:
        for double in doubles:
            double.stop()


@pytest.fixture(scope="session")
def s3_server(isolated_aws_env: None) -> Iterator[str]:
    """Endpoint URL of an in-process moto server (S3 and friends) on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_server: str):
    """A boto3 S3 client on the moto endpoint, shared by the session (each test gets its own
    bucket); a test must not change the client's configuration or event hooks."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client) -> str:
    """Name of a fresh, empty bucket on the moto endpoint."""
    from nasa_assets_tests.helpers import new_bucket

    return new_bucket(s3_client)



@pytest.fixture(params=["local", "s3"])
def target(request, tmp_path, nasa_double):
    """(settings, reader) for one storage backend; both must produce the same layout."""
    from nasa_assets_tests.helpers import LocalReader, S3Reader, local_env, s3_env

    if request.param == "local":
        root = tmp_path / "dataset"
        return local_env(nasa_double, root), LocalReader(root)
    server = request.getfixturevalue("s3_server")
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")
    return s3_env(nasa_double, server, bucket, prefix="moon_dataset"), S3Reader(client, bucket, "moon_dataset")


@pytest.fixture
def trap():
    """An HTTP server no request may reach: tests assert its request list stays empty."""
    from nasa_assets_tests.helpers import Trap

    server = Trap()
    try:
        yield server
    finally:
        server.close()
