"""Every environment variable the project reads, declared once: its default, bounds and meaning.

The readers in settings.py, the resource field defaults, the table in docs/settings.md
(`make settings-docs`) and the checks of .env.example and the Helm env file all come from here.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field

from nasa_assets.dataset.markdown import table
from nasa_assets.dataset.refresh import DEFAULT_DROP_SHARE
from nasa_assets.nasa.transport import MAX_BACKOFF

# Longest wait between two repairs of a page that can be configured: 30 days.
MAX_BACKOFF_SECONDS = 30 * 86400


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | int | float | None  # None: unset
    meaning: str  # Markdown, for docs/settings.md
    kind: type = str  # int and float are parsed and bounded by `read`
    low: float | None = None
    high: float | None = None
    secret: bool = False  # never in the Helm env file (a Kubernetes Secret holds it)

    def read(self, env: Mapping[str, str]):
        """The value `env` gives this setting (its default when unset or empty), checked; errors
        name the variable."""
        if self.kind is str:
            return env.get(self.name) or self.default
        value = env.get(self.name, "").strip()
        if not value:
            return self.default
        try:
            number = self.kind(value)
        except ValueError:
            what = "a whole number" if self.kind is int else "a number"
            raise ValueError(f"{self.name} must be {what}, got {value!r}") from None
        if not math.isfinite(number):  # float() takes "inf" and "nan"; no limit means either
            raise ValueError(f"{self.name} must be a finite number, got {value!r}")
        if not number >= self.low or (self.high is not None and not number <= self.high):
            bounds = f"from {self.low} to {self.high}" if self.high is not None else f"at least {self.low}"
            raise ValueError(f"{self.name} must be {bounds}, got {number}")
        return number

    def shown(self) -> str:
        """The default as written in an env file ("" when unset)."""
        if self.default is None:
            return ""
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return str(self.default)


def _count(name, default, meaning, low=1, high=None) -> Setting:
    return Setting(name, default, meaning, int, low, high)


def _number(name, default, meaning, low, high=None) -> Setting:
    return Setting(name, float(default), meaning, float, low, high)


_DOCS = "failure-behaviour.md"
SETTINGS_LIST = (
    Setting("NASA_API_BASE_URL", "https://images-api.nasa.gov", "search API root"),
    Setting("NASA_API_KEY", None, "sent as the `api_key` query parameter when set (api.nasa.gov's "
            "convention; images-api.nasa.gov documents no key); never logged or stored", secret=True),
    Setting("NASA_SEARCH_QUERY", "moon", "the `q` of every search; `media_type` is always `image`"),
    _count("SEARCH_RESULT_SAMPLING_FACTOR", 1, "keep about 1 item in N, chosen by a hash of `nasa_id` "
           "(see [sampling](data-model.md#sampling-and-splits))"),
    Setting("NASA_IMAGE_RENDITION", "large", "`orig`, `large`, `medium`, `small` or `thumb`; falls back "
            "to the nearest available, the smaller one first at equal distance (the next size up from "
            "`large` is `orig`, which can be a huge TIFF)"),
    Setting("NASA_ALLOWED_HOSTS", "images-assets.nasa.gov", "comma-separated hosts images may be "
            "fetched from, redirects included; a bare host allows its scheme's default port only, "
            "`host:port` that port only"),
    _count("NASA_API_RATE_LIMIT_PER_HOUR", 1000, "client-side budget of search API requests per rolling "
           "hour (per process; across runs see the `nasa_api` pool in "
           "[production](production.md#how-much-concurrency-nasas-rate-limit-allows))"),
    _count("DOWNLOAD_CONCURRENCY", 32, "parallel image downloads (and collection.json look-ups) within "
           "a step; also the HTTP connection pool size; at most 256", high=256),
    _count("MAX_IMAGE_BYTES", 268_435_456, "larger files are rejected with a reason, while streaming"),
    _number("MAX_REJECTED_FRACTION", 0.2, "the blocking check `manifest_valid` fails a page when a "
            "larger share of its items is rejected", 0, 1),
    _number("MAX_FAILED_FRACTION", 0.05, "the `moon_images` check `images_complete` fails when a "
            "larger share of a step's images failed", 0, 1),
    _number("MAX_DATASET_SHRINK", 0.1, "the `moon_dataset` check `shrink_within_limit` refuses (and "
            "keeps the published dataset) when a rebuild would lose a larger share of its rows; `1` "
            "turns it off, `0` refuses any shrink; see [failure behaviour]"
            f"({_DOCS}#bad-answers-from-the-search-api) for accepting a real shrink", 0, 1),
    _number("NASA_READ_TIMEOUT", 30, "seconds to wait for the next bytes of a response before it "
            "counts as failed (and is retried)", 0.1),
    _count("NASA_MAX_RETRIES", 4, "retries of a request after 429/5xx, a reset, a timeout or a "
           "truncated body", low=0),
    _number("NASA_RETRY_BACKOFF_SECONDS", 0.5, "the ceiling of the wait before the first such retry, "
            "doubled per further attempt up to 30 s; each wait is random below it, unless the answer's "
            "`Retry-After` says how long; raise it for a tightly rate-limited key or a flaky proxy, `0` "
            "retries at once (see [retries](failure-behaviour.md#flaky-network-retries-and-their-bounds))",
            0, MAX_BACKOFF),
    _number("NASA_DOWNLOAD_TIMEOUT", 600, "seconds one request attempt (search page, collection.json, "
            "image) may take, whole body included; a trickling body is cut off there and retried (see "
            f"[failure behaviour]({_DOCS}#file-host-outages-slow-downloads-and-limits-per-request))", 0.1),
    _number("NASA_FILE_HOST_PAUSE_SECONDS", 30, "seconds a step's file-host requests pause after 10 "
            "failures in a row, before one probe decides whether the rest fail fast as `file host "
            "unavailable`", 0, 3600),
    _count("NASA_SENSOR_INTERVAL_SECONDS", 3600, "minimum time between two ticks of the "
           "[refresh sensor](refresh-sensor.md)"),
    _number("NASA_TOTAL_HITS_DROP_SHARE", DEFAULT_DROP_SHARE, "the refresh sensor acts on a drop of "
            "total_hits by more than this share (or to 0) only when a later tick sees it again", 0, 1),
    _number("NASA_REPAIR_BACKOFF_SECONDS", 300, "the refresh sensor's first wait before repairing a "
            "page after a failure; doubles per consecutive failure (see "
            f"[self-repair]({_DOCS}#self-repair-by-the-refresh-sensor))", 0, MAX_BACKOFF_SECONDS),
    _number("NASA_REPAIR_BACKOFF_MAX_SECONDS", 21600, "the longest wait between two repairs of a page; "
            "at least `NASA_REPAIR_BACKOFF_SECONDS`", 0, MAX_BACKOFF_SECONDS),
    _count("NASA_REPAIR_MAX_RUNS_PER_TICK", 5, "repair runs the sensor requests per tick at most; `0` "
           "turns repairs off and keeps the change refresh", low=0, high=100),
    Setting("NASA_REPAIR_SKIP_PAGES", None, "pages never repaired, e.g. `3-5,9`"),
    Setting("DATASET_SPLIT_FRACTIONS", "train=0.8,validation=0.1,test=0.1", "split names and fractions "
            "of `moon_dataset` (add up to 1)"),
    _count("DUPLICATE_MAX_DISTANCE", 6, "`moon_dataset` puts images whose perceptual hashes are at most "
           "this many bits apart (of 64) in one `duplicate_group`, and so in one split; 0 groups only "
           "identical hashes, at most 63 (see [duplicate groups]"
           "(datasets-and-exports.md#perceptual-hashes-and-duplicate-groups))", low=0, high=63),
    _count("WEBDATASET_MAX_SHARD_BYTES", 1 << 30, "the `moon_webdataset` export closes a shard before it "
           "would exceed this size (at least 65536); a single larger image gets a shard of its own",
           low=1 << 16),
    _count("WEBDATASET_MAX_SHARD_SAMPLES", 10_000, "the `moon_webdataset` export puts at most this many "
           "samples in one shard"),
    Setting("S3_BUCKET_NAME", None, "the bucket; unset or empty: local storage in "
            "`NASA_ASSETS_LOCAL_DIR`"),
    Setting("S3_KEY_PREFIX", "moon_dataset", "prefix inside the bucket"),
    Setting("AWS_ENDPOINT_URL", None, "for S3-compatible stores (MinIO, moto, R2, ...)"),
    Setting("AWS_ACCESS_KEY_ID", None, "read by boto3 itself, like the rest of its credential chain "
            "(profiles, instance roles)", secret=True),
    Setting("AWS_SECRET_ACCESS_KEY", None, "read by boto3 itself, with `AWS_ACCESS_KEY_ID`", secret=True),
    Setting("AWS_REGION", None, "the bucket's region"),
    Setting("AWS_DEFAULT_REGION", None, "the bucket's region, when `AWS_REGION` is unset"),
    Setting("NASA_ASSETS_LOCAL_DIR", "data/moon_dataset", "local root when no bucket is set (relative "
            "to the working directory)"),
    Setting("NASA_DATASETS_FILE", None, "a YAML file declaring datasets besides `moon`, each with its "
            "own query, asset key prefix, jobs, sensor and folder `<root>/<name>/` (see [several "
            "datasets](datasets-and-exports.md#several-datasets-one-definition-each)); relative to the "
            "working directory; unset: `moon` alone"),
)
SETTINGS = {setting.name: setting for setting in SETTINGS_LIST}


def markdown_table() -> list[str]:
    """The settings table of docs/settings.md."""
    return table(["variable", "default", "meaning"],
                 [(f"`{s.name}`", f"`{s.shown()}`" if s.default is not None else "unset", s.meaning)
                  for s in SETTINGS_LIST])


DEFAULT_SPLIT_FRACTIONS: str = SETTINGS["DATASET_SPLIT_FRACTIONS"].default


def field_for(name: str, description: str | None = None):
    """A resource field whose default and bounds are the setting's."""
    setting = SETTINGS[name]
    return Field(setting.default, ge=setting.low, le=setting.high, description=description or name)


BEGIN = "<!-- settings table: generated from nasa_assets/defs/settings_spec.py by `make settings-docs` -->"
END = "<!-- end of the generated settings table -->"


def with_table(page: str) -> str:
    """`page` (docs/settings.md) with the table between its markers regenerated."""
    head, _, rest = page.partition(BEGIN + "\n")
    _, _, tail = rest.partition(END)
    if not tail:
        raise ValueError(f"docs/settings.md lacks the markers {BEGIN!r} and {END!r}")
    return head + BEGIN + "\n" + "\n".join(markdown_table()) + "\n" + END + tail


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m nasa_assets.defs.settings_spec --markdown  (rewrites docs/settings.md)")
    docs = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
    docs.write_text(with_table(docs.read_text()))
    print(f"wrote the settings table of {docs}")
