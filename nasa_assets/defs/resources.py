"""Dagster resources: the NASA API, the dataset's settings, and where the dataset is stored."""

import threading

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from nasa_assets.nasa.client import NasaClient
from nasa_assets.nasa.ratelimit import shared_limiter
from nasa_assets.nasa.renditions import RENDITIONS
from nasa_assets.nasa.urls import parse_allowed_hosts
from nasa_assets.storage import LocalStore, ObjectStore, S3Store
from nasa_assets.storage.s3 import s3_root_uri


class NasaApiResource(dg.ConfigurableResource):
    """The NASA Image and Video Library: its search API and the file host images come from."""

    base_url: str = Field("https://images-api.nasa.gov", description="Search API root.")
    api_key: str | None = Field(None, description="Sent as api_key when set; never logged.")
    query: str = Field("moon", description="The q of every search; media_type is always image.")
    allowed_hosts: str = Field(
        "images-assets.nasa.gov", description="Comma-separated hosts images may come from."
    )
    rate_limit_per_hour: int = Field(1000, description="Client-side budget of API requests.")
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    download_timeout: float = Field(600.0, description="Seconds one request may take, whole body.")
    file_host_pause: float = Field(
        30.0, description="Seconds a step pauses its file-host requests after repeated failures."
    )
    max_retries: int = Field(4, description="Retries of 429/5xx/connection errors, with backoff.")
    pool_size: int = Field(16, description="Pooled connections; match DOWNLOAD_CONCURRENCY.")

    _client: NasaClient | None = PrivateAttr(default=None)
    _hosts: tuple | None = PrivateAttr(default=None)

    def hosts(self) -> tuple[tuple[str, int | None], ...]:
        """allowed_hosts as (host, port) pairs, parsed once."""
        if self._hosts is None:
            self._hosts = parse_allowed_hosts(self.allowed_hosts)
        return self._hosts

    def client(self) -> NasaClient:
        if self._client is None:
            self._client = self._new_client(self.read_timeout, self.max_retries)
        return self._client

    def probe_client(self) -> NasaClient:
        """A client for sensor ticks: one retry and short timeouts, so a struggling API makes
        the tick skip well within the daemon's sensor timeout instead of timing it out."""
        return self._new_client(min(self.read_timeout, 10.0), min(self.max_retries, 1), max_backoff=5.0,
                                download_timeout=min(self.download_timeout, 20.0))

    def _new_client(self, read_timeout: float, max_retries: int, max_backoff: float = 30.0,
                    download_timeout: float | None = None) -> NasaClient:
        return NasaClient(
            base_url=self.base_url,
            api_key=self.api_key,
            allowed_hosts=self.hosts(),
            rate_limiter=shared_limiter(self.base_url, self.rate_limit_per_hour),
            connect_timeout=self.connect_timeout,
            read_timeout=read_timeout,
            download_timeout=download_timeout or self.download_timeout,
            max_retries=max_retries,
            max_backoff=max_backoff,
            breaker_pause=self.file_host_pause,
            pool_size=self.pool_size,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()


DEFAULT_SPLIT_FRACTIONS = "train=0.8,validation=0.1,test=0.1"


def parse_split_fractions(spec: str) -> dict[str, float]:
    """"train=0.8,validation=0.1,test=0.1" -> {"train": 0.8, ...}; fractions add up to 1."""
    splits: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, sep, value = (x.strip() for x in part.partition("="))
        try:
            fraction = float(value) if sep and name else -1.0
        except ValueError:
            fraction = -1.0
        if not 0 <= fraction <= 1 or name in splits:
            raise ValueError(f"expects name=fraction pairs such as {DEFAULT_SPLIT_FRACTIONS!r}, "
                             f"each name once and each fraction in [0, 1]; got {part!r}")
        splits[name] = fraction
    if abs(sum(splits.values()) - 1) > 1e-6:
        raise ValueError(f"fractions must add up to 1, got {sum(splits.values()):g} in {spec!r}")
    return splits


class DatasetSettings(dg.ConfigurableResource):
    """How the dataset is sampled, which rendition is kept, and the limits applied per page."""

    sampling_factor: int = Field(1, ge=1, description="Keep about 1 item in N, by nasa_id hash.")
    rendition: str = Field("large", description=f"One of {', '.join(RENDITIONS)}.")
    download_concurrency: int = Field(16, ge=1, le=256)
    max_image_bytes: int = Field(268_435_456, ge=1)
    max_rejected_fraction: float = Field(0.2, ge=0, le=1)
    max_failed_fraction: float = Field(
        0.05, ge=0, le=1, description="moon_images completeness check: allowed share of failures."
    )
    max_dataset_shrink: float = Field(
        0.1, ge=0, le=1, description="moon_dataset: largest share of rows a rebuild may lose unaccepted."
    )
    split_fractions: str = Field(
        DEFAULT_SPLIT_FRACTIONS, description="moon_dataset split column: name=fraction pairs."
    )

    def splits(self) -> dict[str, float]:
        return parse_split_fractions(self.split_fractions)


class DatasetStorage(dg.ConfigurableResource):
    """Where the dataset lives; subclasses choose a local folder or S3."""

    def store(self) -> ObjectStore:
        raise TypeError("configure LocalDatasetStorage or S3DatasetStorage, not the base class")

    def root_uri(self) -> str:
        """Where the dataset is, without connecting to it."""
        return self.store().root_uri


class LocalDatasetStorage(DatasetStorage):
    """A local folder, the embedded default when S3_BUCKET_NAME is not set."""

    root: str = Field("data/moon_dataset", description="NASA_ASSETS_LOCAL_DIR")

    _store: LocalStore | None = PrivateAttr(default=None)

    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = LocalStore(self.root)
        return self._store


# Each S3Resource.get_client() starts a new boto3 session that parses the S3 service model again
# (0.15-0.4 s here), and a run builds the storage resource and the IO manager's copy of it; the
# CLI runs two jobs. boto3 clients are thread-safe, so a process keeps one per configuration.
_S3_CLIENTS: dict[str, object] = {}
_S3_CLIENTS_LOCK = threading.Lock()


def shared_s3_client(s3: S3Resource):
    key = s3.model_dump_json()
    with _S3_CLIENTS_LOCK:
        if key not in _S3_CLIENTS:
            _S3_CLIENTS[key] = s3.get_client()
        return _S3_CLIENTS[key]


class S3DatasetStorage(DatasetStorage):
    """An S3 bucket (or any S3-compatible store via AWS_ENDPOINT_URL)."""

    s3: dg.ResourceDependency[S3Resource]
    bucket: str = Field(description="S3_BUCKET_NAME")
    prefix: str = Field("moon_dataset", description="S3_KEY_PREFIX")

    _store: S3Store | None = PrivateAttr(default=None)

    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = S3Store(shared_s3_client(self.s3), self.bucket, self.prefix)
        return self._store

    def root_uri(self) -> str:
        # No client: creating one costs a few hundred ms of botocore set-up.
        return s3_root_uri(self.bucket, self.prefix)

class CurationSettings(dg.ConfigurableResource):
    """Duplicate grouping of moon_dataset and the size of its WebDataset shards."""

    duplicate_max_distance: int = Field(
        6, ge=0, le=63, description="Perceptual hashes at most this many bits apart are one group."
    )
    webdataset_max_shard_bytes: int = Field(1 << 30, ge=1 << 16, description="A shard closes below this.")
    webdataset_max_shard_samples: int = Field(10_000, ge=1, description="Samples per shard, at most.")
