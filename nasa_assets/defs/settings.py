"""Resources from environment variables (the PySpark job's interface), read once at load time."""

from collections.abc import Mapping

import dagster as dg
from dagster_aws.s3 import S3Resource

from nasa_assets.dataset.datasets import DatasetSpec, load_datasets
from nasa_assets.dataset.pages import parse_page_range
from nasa_assets.dataset.repair import RepairPolicy
from nasa_assets.defs.io_manager import ParquetIOManager
from nasa_assets.defs.resources import (
    CurationSettings,
    DatasetSettings,
    LocalDatasetStorage,
    NasaApiResource,
    S3DatasetStorage,
    parse_split_fractions,
)
from nasa_assets.defs.settings_spec import DEFAULT_SPLIT_FRACTIONS, SETTINGS
from nasa_assets.nasa.renditions import RENDITIONS
from nasa_assets.nasa.urls import parse_allowed_hosts


def _secret(env: Mapping[str, str], name: str):
    # EnvVar keeps the value out of the run config the UI shows; unset means "not used", and
    # an EnvVar on an unset variable would fail at run time.
    return dg.EnvVar(name) if env.get(name) else None


def _value(env: Mapping[str, str], name: str):
    return SETTINGS[name].read(env)


def _rendition(env: Mapping[str, str]) -> str:
    value = _value(env, "NASA_IMAGE_RENDITION").strip().lower()
    if value not in RENDITIONS:
        raise ValueError(f"NASA_IMAGE_RENDITION must be one of {', '.join(RENDITIONS)}, got {value!r}")
    return value


def _allowed_hosts(env: Mapping[str, str]) -> str:
    value = _value(env, "NASA_ALLOWED_HOSTS")
    parse_allowed_hosts(value)  # its errors name NASA_ALLOWED_HOSTS
    return value


def _split_fractions(env: Mapping[str, str]) -> str:
    # Blank (spaces only) is the default too.
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
            # Set but empty is the bucket's root, not the default prefix.
            prefix=env.get("S3_KEY_PREFIX", SETTINGS["S3_KEY_PREFIX"].default).strip("/"),
        )
    return LocalDatasetStorage(root=_value(env, "NASA_ASSETS_LOCAL_DIR"))


def resources_from_env(env: Mapping[str, str]) -> dict:
    concurrency = _value(env, "DOWNLOAD_CONCURRENCY")
    storage = storage_from_env(env)
    return {
        "nasa": NasaApiResource(
            base_url=_value(env, "NASA_API_BASE_URL"),
            api_key=_secret(env, "NASA_API_KEY"),
            query=_value(env, "NASA_SEARCH_QUERY"),
            allowed_hosts=_allowed_hosts(env),
            rate_limit_per_hour=_value(env, "NASA_API_RATE_LIMIT_PER_HOUR"),
            read_timeout=_value(env, "NASA_READ_TIMEOUT"),
            download_timeout=_value(env, "NASA_DOWNLOAD_TIMEOUT"),
            file_host_pause=_value(env, "NASA_FILE_HOST_PAUSE_SECONDS"),
            max_retries=_value(env, "NASA_MAX_RETRIES"),
            retry_backoff=_value(env, "NASA_RETRY_BACKOFF_SECONDS"),
            pool_size=concurrency,
        ),
        "settings": DatasetSettings(
            sampling_factor=_value(env, "SEARCH_RESULT_SAMPLING_FACTOR"),
            rendition=_rendition(env),
            download_concurrency=concurrency,
            max_image_bytes=_value(env, "MAX_IMAGE_BYTES"),
            max_rejected_fraction=_value(env, "MAX_REJECTED_FRACTION"),
            max_failed_fraction=_value(env, "MAX_FAILED_FRACTION"),
            max_dataset_shrink=_value(env, "MAX_DATASET_SHRINK"),
            split_fractions=_split_fractions(env),
        ),
        "storage": storage,
        "io_manager": ParquetIOManager(storage=storage),
        "curation": curation_from_env(env),
    }


def total_hits_drop_share(env: Mapping[str, str]) -> float:
    """A drop of total_hits by more than this share (or to 0) waits for a second tick."""
    return _value(env, "NASA_TOTAL_HITS_DROP_SHARE")


def repair_policy_from_env(env: Mapping[str, str]) -> RepairPolicy:
    """How the refresh sensor repairs pages (nasa_assets/repair.py)."""
    first = _value(env, "NASA_REPAIR_BACKOFF_SECONDS")
    cap = _value(env, "NASA_REPAIR_BACKOFF_MAX_SECONDS")
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
        max_runs_per_tick=_value(env, "NASA_REPAIR_MAX_RUNS_PER_TICK"),
        excluded=excluded,
    )


def curation_from_env(env: Mapping[str, str]) -> CurationSettings:
    """Duplicate groups of moon_dataset and the WebDataset export's shard bounds."""
    return CurationSettings(
        duplicate_max_distance=_value(env, "DUPLICATE_MAX_DISTANCE"),
        webdataset_max_shard_bytes=_value(env, "WEBDATASET_MAX_SHARD_BYTES"),
        webdataset_max_shard_samples=_value(env, "WEBDATASET_MAX_SHARD_SAMPLES"),
    )


def datasets_from_env(env: Mapping[str, str]) -> tuple[DatasetSpec, ...]:
    """moon, and the datasets NASA_DATASETS_FILE declares (nasa_assets/dataset/datasets.py)."""
    return load_datasets((env.get("NASA_DATASETS_FILE") or "").strip() or None)
