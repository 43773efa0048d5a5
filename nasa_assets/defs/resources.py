"""Dagster resources: the NASA API, the dataset's settings, and where the dataset is stored."""

import threading
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from nasa_assets.dataset.datasets import DatasetSpec, parse_split_fractions
from nasa_assets.defs.settings_spec import field_for
from nasa_assets.nasa.client import NasaClient
from nasa_assets.nasa.ratelimit import shared_limiter
from nasa_assets.nasa.renditions import RENDITIONS
from nasa_assets.nasa.urls import parse_allowed_hosts
from nasa_assets.storage import LocalStore, ObjectStore, S3Store
from nasa_assets.storage.s3 import s3_root_uri


class NasaApiResource(dg.ConfigurableResource):
    """The NASA Image and Video Library: its search API and the file host images come from."""

    base_url: str = field_for("NASA_API_BASE_URL", "Search API root.")
    api_key: str | None = Field(None, description="Sent as api_key when set; never logged.")
    query: str = field_for("NASA_SEARCH_QUERY", "The q of every search; media_type is always image.")
    allowed_hosts: str = field_for("NASA_ALLOWED_HOSTS", "Comma-separated hosts images may come from.")
    rate_limit_per_hour: int = field_for("NASA_API_RATE_LIMIT_PER_HOUR", "Client-side budget of API requests.")
    connect_timeout: float = 5.0
    read_timeout: float = field_for("NASA_READ_TIMEOUT")
    download_timeout: float = field_for("NASA_DOWNLOAD_TIMEOUT", "Seconds one request may take, whole body.")
    file_host_pause: float = field_for(
        "NASA_FILE_HOST_PAUSE_SECONDS", "Seconds a step pauses its file-host requests after repeated failures."
    )
    max_retries: int = field_for("NASA_MAX_RETRIES", "Retries of 429/5xx/connection errors, with backoff.")
    retry_backoff: float = field_for("NASA_RETRY_BACKOFF_SECONDS", "Ceiling of the first jittered retry wait.")
    pool_size: int = field_for("DOWNLOAD_CONCURRENCY", "Pooled connections; match DOWNLOAD_CONCURRENCY.")

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
            backoff=self.retry_backoff,
            max_backoff=max_backoff,
            breaker_pause=self.file_host_pause,
            pool_size=self.pool_size,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()


class DatasetSettings(dg.ConfigurableResource):
    """How the dataset is sampled, which rendition is kept, and the limits applied per page."""

    sampling_factor: int = field_for("SEARCH_RESULT_SAMPLING_FACTOR", "Keep about 1 item in N, by nasa_id hash.")
    rendition: str = field_for("NASA_IMAGE_RENDITION", f"One of {', '.join(RENDITIONS)}.")
    download_concurrency: int = field_for("DOWNLOAD_CONCURRENCY")
    max_image_bytes: int = field_for("MAX_IMAGE_BYTES")
    max_rejected_fraction: float = field_for("MAX_REJECTED_FRACTION")
    max_failed_fraction: float = field_for(
        "MAX_FAILED_FRACTION", "moon_images completeness check: allowed share of failures."
    )
    max_dataset_shrink: float = field_for(
        "MAX_DATASET_SHRINK", "moon_dataset: largest share of rows a rebuild may lose unaccepted."
    )
    split_fractions: str = field_for("DATASET_SPLIT_FRACTIONS", "moon_dataset split column: name=fraction pairs.")

    def splits(self) -> dict[str, float]:
        return parse_split_fractions(self.split_fractions)


def resolved(spec: DatasetSpec, nasa: NasaApiResource, settings: DatasetSettings) -> DatasetSpec:
    """The dataset's query, sampling factor, rendition and splits: its own (from the datasets
    file), else the environment's, which the resources hold."""
    return spec.with_defaults(nasa.query, settings.sampling_factor, settings.rendition,
                              settings.split_fractions)


class DatasetStorage(dg.ConfigurableResource):
    """Where the dataset lives; subclasses choose a local folder or S3."""

    def store(self, folder: str = "") -> ObjectStore:
        """The store of the storage root, or of `folder` inside it (another dataset's root)."""
        raise TypeError("configure LocalDatasetStorage or S3DatasetStorage, not the base class")

    def root_uri(self, folder: str = "") -> str:
        """Where the dataset is, without connecting to it."""
        return self.store(folder).root_uri


class LocalDatasetStorage(DatasetStorage):
    """A local folder, the embedded default when S3_BUCKET_NAME is not set."""

    root: str = field_for("NASA_ASSETS_LOCAL_DIR")

    _stores: dict[str, LocalStore] = PrivateAttr(default_factory=dict)

    def store(self, folder: str = "") -> ObjectStore:
        if folder not in self._stores:
            self._stores[folder] = LocalStore(Path(self.root) / folder)
        return self._stores[folder]


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
    prefix: str = field_for("S3_KEY_PREFIX")

    _stores: dict[str, S3Store] = PrivateAttr(default_factory=dict)

    def _prefix(self, folder: str) -> str:
        return "/".join(p for p in (self.prefix.strip("/"), folder) if p)

    def store(self, folder: str = "") -> ObjectStore:
        if folder not in self._stores:
            self._stores[folder] = S3Store(shared_s3_client(self.s3), self.bucket, self._prefix(folder))
        return self._stores[folder]

    def root_uri(self, folder: str = "") -> str:
        # No client: creating one costs a few hundred ms of botocore set-up.
        return s3_root_uri(self.bucket, self._prefix(folder))

class CurationSettings(dg.ConfigurableResource):
    """Duplicate grouping of moon_dataset and the size of its WebDataset shards."""

    duplicate_max_distance: int = field_for(
        "DUPLICATE_MAX_DISTANCE", "Perceptual hashes at most this many bits apart are one group."
    )
    webdataset_max_shard_bytes: int = field_for("WEBDATASET_MAX_SHARD_BYTES", "A shard closes below this.")
    webdataset_max_shard_samples: int = field_for("WEBDATASET_MAX_SHARD_SAMPLES", "Samples per shard, at most.")
