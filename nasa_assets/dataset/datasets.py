"""Datasets declared once: a name, a search query and optional sampling, rendition and splits.

`moon` always exists and keeps the project's names; every other dataset lives under its own
name (asset key prefix, folder, job and sensor names). The datasets file (YAML) is read and
checked here; errors name the file and the entry, as the environment settings' errors do."""

import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from nasa_assets.nasa.renditions import RENDITIONS

MOON = "moon"
# Safe as a Dagster key prefix, a group, part of a job or sensor name, a folder and an S3 key.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
# Names that are already files or folders at moon's root, or moon's group: a dataset named so
# would land inside moon's own layout. "nasa" would name its sensor nasa_search_refresh.
RESERVED = frozenset({
    "search_results", "sampled_manifest", "moon_images", "moon_dataset", "moon_dataset_card",
    "moon_webdataset", "rejected", "images", "webdataset", "nasa",
})
FIELDS = ("name", "query", "sampling_factor", "rendition", "split_fractions")
SPLITS_EXAMPLE = "train=0.8,validation=0.1,test=0.1"


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
            raise ValueError(f"expects name=fraction pairs such as {SPLITS_EXAMPLE!r}, "
                             f"each name once and each fraction in [0, 1]; got {part!r}")
        splits[name] = fraction
    if abs(sum(splits.values()) - 1) > 1e-6:
        raise ValueError(f"fractions must add up to 1, got {sum(splits.values()):g} in {spec!r}")
    return splits


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset. A field left None takes the environment setting's value (NASA_SEARCH_QUERY,
    SEARCH_RESULT_SAMPLING_FACTOR, NASA_IMAGE_RENDITION, DATASET_SPLIT_FRACTIONS)."""

    name: str = MOON
    query: str | None = None
    sampling_factor: int | None = None
    rendition: str | None = None
    split_fractions: str | None = None  # "name=fraction,..." as DATASET_SPLIT_FRACTIONS

    @property
    def is_moon(self) -> bool:
        return self.name == MOON

    @property
    def key_prefix(self) -> list[str]:
        """The asset key prefix: none for moon."""
        return [] if self.is_moon else [self.name]

    @property
    def folder(self) -> str:
        """The dataset's root inside the storage root: the root itself for moon."""
        return "/".join(self.key_prefix)

    @property
    def group(self) -> str:
        return "moon_dataset" if self.is_moon else self.name

    @property
    def images_job(self) -> str:
        return f"{self.name}_images_job"

    @property
    def dataset_job(self) -> str:
        return f"{self.name}_dataset_job"

    @property
    def sensor(self) -> str:
        return "nasa_search_refresh" if self.is_moon else f"{self.name}_search_refresh"

    def with_defaults(self, query: str, sampling_factor: int, rendition: str,
                      split_fractions: str) -> "DatasetSpec":
        """Every field set: this dataset's own values, the given defaults for the rest."""
        defaults = dict(query=query, sampling_factor=sampling_factor, rendition=rendition,
                        split_fractions=split_fractions)
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})


class DatasetsFileError(ValueError):
    """A datasets file that cannot be used; the message names the file and the entry."""


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error (not: last one wins)."""


def _mapping_without_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _mapping_without_duplicates)


def _fractions(value) -> str:
    """A mapping {split: fraction} or the DATASET_SPLIT_FRACTIONS string, as that string."""
    if isinstance(value, dict):
        if not all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                   for k, v in value.items()):
            raise ValueError(f"split_fractions maps split names to numbers, got {value!r}")
        value = ",".join(f"{k}={v}" for k, v in value.items())
    if not isinstance(value, str):
        raise ValueError(f"split_fractions is a mapping such as {{train: 0.8, validation: 0.1, "
                         f"test: 0.1}} or a string such as {SPLITS_EXAMPLE!r}, got {value!r}")
    try:
        parse_split_fractions(value)
    except ValueError as error:
        raise ValueError(f"split_fractions {error}") from None
    return value


def _entry(raw) -> DatasetSpec:
    """One entry of the file, checked; ValueError says what is wrong with it."""
    if not isinstance(raw, dict):
        raise ValueError(f"is a {type(raw).__name__}, not a mapping with keys {', '.join(FIELDS)}")
    unknown = sorted(str(k) for k in set(raw) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown key {', '.join(map(repr, unknown))} "
                         f"(allowed: {', '.join(FIELDS)})")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name must be lower-case letters, digits and _, starting with a letter, "
                         f"at most 40 characters; got {name!r}")
    if name in RESERVED:
        raise ValueError(f"name {name!r} is reserved (a name in moon's own layout or its sensor's)")
    query = raw.get("query")
    if query is None and name != MOON:
        raise ValueError("query is required (only moon defaults to NASA_SEARCH_QUERY)")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise ValueError(f"query must be a non-empty string, got {query!r}")
    factor = raw.get("sampling_factor")
    if factor is not None and (type(factor) is not int or factor < 1):
        raise ValueError(f"sampling_factor must be a whole number of at least 1, got {factor!r}")
    rendition = raw.get("rendition")
    if rendition is not None and rendition not in RENDITIONS:
        raise ValueError(f"rendition must be one of {', '.join(RENDITIONS)}, got {rendition!r}")
    fractions = raw.get("split_fractions")
    return DatasetSpec(name, query, factor, rendition,
                       None if fractions is None else _fractions(fractions))


def parse_datasets(text: str, source: str) -> tuple[DatasetSpec, ...]:
    """The datasets of a datasets file's text, moon first (moon is there even when the file does
    not list it). DatasetsFileError names `source` and the entry."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise DatasetsFileError(f"{source}: not valid YAML: {error}") from None
    if not (isinstance(data, dict) and set(data) == {"datasets"}
            and isinstance(data["datasets"], list)):
        raise DatasetsFileError(f"{source}: expects one key, `datasets`, holding a list of entries "
                                "(see datasets.example.yaml)")
    specs: dict[str, DatasetSpec] = {}
    for number, raw in enumerate(data["datasets"], start=1):
        label = raw.get("name") if isinstance(raw, dict) else None
        where = f"{source}: entry {number}" + (f" ({label})" if isinstance(label, str) else "")
        try:
            spec = _entry(raw)
        except ValueError as error:
            raise DatasetsFileError(f"{where}: {error}") from None
        if spec.name in specs:
            raise DatasetsFileError(f"{where}: the name {spec.name!r} is used by an earlier entry")
        specs[spec.name] = spec
    moon = specs.pop(MOON, DatasetSpec())
    return (moon, *specs.values())


def load_datasets(path: str | None) -> tuple[DatasetSpec, ...]:
    """The datasets of the file at `path`; just moon when `path` is None or empty."""
    if not path:
        return (DatasetSpec(),)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetsFileError(f"NASA_DATASETS_FILE {path}: cannot be read ({error})") from None
    return parse_datasets(text, f"NASA_DATASETS_FILE {path}")
