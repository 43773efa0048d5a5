"""Resources from environment variables (the PySpark job's interface), read once at load time."""

import math
from collections.abc import Mapping

import dagster as dg
from dagster_aws.s3 import S3Resource

from nasa_assets.dataset.pages import parse_page_range
from nasa_assets.dataset.refresh import DEFAULT_DROP_SHARE
from nasa_assets.dataset.repair import RepairPolicy
from nasa_assets.defs.io_manager import ParquetIOManager
from nasa_assets.defs.resources import (
    DEFAULT_SPLIT_FRACTIONS,
    CurationSettings,
    DatasetSettings,
    LocalDatasetStorage,
    NasaApiResource,
    S3DatasetStorage,
    parse_split_fractions,
)
from nasa_assets.nasa.renditions import RENDITIONS
from nasa_assets.nasa.urls import parse_allowed_hosts


def _secret(env: Mapping[str, str], name: str):
    # EnvVar keeps the value out of the run config the UI shows; unset means "not used", and
    # an EnvVar on an unset variable would fail at run time.
    return dg.EnvVar(name) if env.get(name) else None


def _int(env: Mapping[str, str], name: str, default: int, low: int = 1, high: int | None = None) -> int:
    value = env.get(name, "").strip()
    try:
        number = int(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    return _within(name, number, low, high)


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float | None = None) -> float:
    value = env.get(name, "").strip()
    try:
        number = float(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):  # float() takes "inf" and "nan"; no limit means either
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return _within(name, number, low, high)


def _within(name: str, number, low, high):
    # Checked here, so the message names the variable rather than a resource field.
    if not number >= low or (high is not None and not number <= high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bounds}, got {number}")
    return number


def _rendition(env: Mapping[str, str]) -> str:
    value = (env.get("NASA_IMAGE_RENDITION") or "large").strip().lower()
    if value not in RENDITIONS:
        raise ValueError(f"NASA_IMAGE_RENDITION must be one of {', '.join(RENDITIONS)}, got {value!r}")
    return value


def _allowed_hosts(env: Mapping[str, str]) -> str:
    value = env.get("NASA_ALLOWED_HOSTS") or "images-assets.nasa.gov"
    parse_allowed_hosts(value)  # its errors name NASA_ALLOWED_HOSTS
    return value


def _split_fractions(env: Mapping[str, str]) -> str:
    value = (env.get("DATASET_SPLIT_FRACTIONS") or "").strip() or DEFAULT_SPLIT_FRACTIONS
    try:
        parse_split_fractions(value)
    except ValueError as error:
        raise ValueError(f"DATASET_SPLIT_FRACTIONS {error}") from None
    return value


def storage_from_env(env: Mapping[str, str]):
    bucket = env.get("S3_BUCKET_NAME", "").strip()
    if bucket:
        # Credentials are left to boto3's own chain (env, profile, instance role): none is in config.
        return S3DatasetStorage(
            s3=S3Resource(
                region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
                endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            ),
            bucket=bucket,
            prefix=env.get("S3_KEY_PREFIX", "moon_dataset").strip("/"),
        )
    return LocalDatasetStorage(root=env.get("NASA_ASSETS_LOCAL_DIR") or "data/moon_dataset")


def resources_from_env(env: Mapping[str, str]) -> dict:
    concurrency = _int(env, "DOWNLOAD_CONCURRENCY", 16, high=256)
    # Seconds to wait for the next bytes of a response; retries of 429/5xx/resets/timeouts.
    read_timeout = _float(env, "NASA_READ_TIMEOUT", 30.0, low=0.1)
    max_retries = _int(env, "NASA_MAX_RETRIES", 4, low=0)
    # Seconds one request may take, whole body: a trickling body never trips the read timeout.
    download_timeout = _float(env, "NASA_DOWNLOAD_TIMEOUT", 600.0, low=0.1)
    # Seconds a step's file-host requests wait once the host failed many times in a row, before
    # one probe decides between resuming and failing the rest as "file host unavailable".
    file_host_pause = _float(env, "NASA_FILE_HOST_PAUSE_SECONDS", 30.0, low=0, high=3600)
    storage = storage_from_env(env)
    return {
        "nasa": NasaApiResource(
            base_url=env.get("NASA_API_BASE_URL") or "https://images-api.nasa.gov",
            api_key=_secret(env, "NASA_API_KEY"),
            query=env.get("NASA_SEARCH_QUERY") or "moon",
            allowed_hosts=_allowed_hosts(env),
            rate_limit_per_hour=_int(env, "NASA_API_RATE_LIMIT_PER_HOUR", 1000),
            read_timeout=read_timeout,
            download_timeout=download_timeout,
            file_host_pause=file_host_pause,
            max_retries=max_retries,
            pool_size=concurrency,
        ),
        "settings": DatasetSettings(
            sampling_factor=_int(env, "SEARCH_RESULT_SAMPLING_FACTOR", 1),
            rendition=_rendition(env),
            download_concurrency=concurrency,
            max_image_bytes=_int(env, "MAX_IMAGE_BYTES", 268_435_456),
            max_rejected_fraction=_float(env, "MAX_REJECTED_FRACTION", 0.2, low=0, high=1),
            max_failed_fraction=_float(env, "MAX_FAILED_FRACTION", 0.05, low=0, high=1),
            max_dataset_shrink=_float(env, "MAX_DATASET_SHRINK", 0.1, low=0, high=1),
            split_fractions=_split_fractions(env),
        ),
        "storage": storage,
        "io_manager": ParquetIOManager(storage=storage),
        "curation": curation_from_env(env),
    }


# Longest wait between two repairs of a page that can be configured: 30 days.
MAX_BACKOFF_SECONDS = 30 * 86400


def total_hits_drop_share(env: Mapping[str, str]) -> float:
    """A drop of total_hits by more than this share (or to 0) waits for a second tick."""
    return _float(env, "NASA_TOTAL_HITS_DROP_SHARE", DEFAULT_DROP_SHARE, low=0, high=1)


def repair_policy_from_env(env: Mapping[str, str]) -> RepairPolicy:
    """How the refresh sensor repairs pages (nasa_assets/repair.py)."""
    first = _float(env, "NASA_REPAIR_BACKOFF_SECONDS", 300.0, low=0, high=MAX_BACKOFF_SECONDS)
    cap = _float(env, "NASA_REPAIR_BACKOFF_MAX_SECONDS", 21600.0, low=0, high=MAX_BACKOFF_SECONDS)
    if cap < first:
        raise ValueError(
            f"NASA_REPAIR_BACKOFF_MAX_SECONDS ({cap}) must be at least "
            f"NASA_REPAIR_BACKOFF_SECONDS ({first})"
        )
    skipped = (env.get("NASA_REPAIR_SKIP_PAGES") or "").strip()
    try:
        excluded = frozenset(parse_page_range(skipped)) if skipped else frozenset()
    except ValueError as error:
        raise ValueError(f"NASA_REPAIR_SKIP_PAGES: {error}") from None
    return RepairPolicy(
        backoff_seconds=first,
        backoff_max_seconds=cap,
        max_runs_per_tick=_int(env, "NASA_REPAIR_MAX_RUNS_PER_TICK", 5, low=0, high=100),
        excluded=excluded,
    )


def curation_from_env(env: Mapping[str, str]) -> CurationSettings:
    """Duplicate groups of moon_dataset and the WebDataset export's shard bounds."""
    return CurationSettings(
        duplicate_max_distance=_int(env, "DUPLICATE_MAX_DISTANCE", 6, low=0, high=63),
        webdataset_max_shard_bytes=_int(env, "WEBDATASET_MAX_SHARD_BYTES", 1 << 30, low=1 << 16),
        webdataset_max_shard_samples=_int(env, "WEBDATASET_MAX_SHARD_SAMPLES", 10_000),
    )
