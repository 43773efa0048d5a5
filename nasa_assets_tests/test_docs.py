"""The README and docs/ say what the code does: settings, schemas, links, and no stray references."""

import ast
import re
from pathlib import Path

import dagster as dg
import pytest

from nasa_assets.dataset.columns import schema_table, type_name
from nasa_assets.dataset.tables import SCHEMAS
from nasa_assets.defs.sensors import interval_seconds
from nasa_assets.defs.settings_spec import SETTINGS, SETTINGS_LIST, with_table
from nasa_assets.defs.settings import (
    datasets_from_env,
    repair_policy_from_env,
    resources_from_env,
    total_hits_drop_share,
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "nasa_assets"
SPEC = PACKAGE / "defs" / "settings_spec.py"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "deploy" / "README.md", *DOCS]

# Documented because users set them, but read by boto3 rather than by the package.
READ_BY_BOTO3 = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
# Read by a library; nasa_assets/defs/allocators.py only sets a default (docs/performance.md says why).
DEFAULTED_FOR_LIBRARIES = {"ARROW_DEFAULT_MEMORY_POOL", "MALLOC_ARENA_MAX"}
# Every function that turns environment variables into settings; a setting read elsewhere makes
# test_every_documented_setting_is_read_by_a_known_reader fail until its reader is added here.
READERS = {
    "resources_from_env": resources_from_env,
    "interval_seconds": interval_seconds,
    "total_hits_drop_share": total_hits_drop_share,
    "repair_policy_from_env": repair_policy_from_env,
    "datasets_from_env": datasets_from_env,
}
# An environment with a bucket, so that the S3 settings are read too.
BASES = ({}, {"S3_BUCKET_NAME": "doc-check-bucket"})
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def _rows(text: str, header: str) -> list[list[str]]:
    """Cells of the Markdown table that starts with `header`, without its header and rule."""
    lines = text.split("\n")
    start = lines.index(header)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"expected one `code` span, got {cell!r}"
    return match.group(1)


def documented_settings() -> dict[str, str | None]:
    """name -> default as docs/settings.md states it (None for "unset")."""
    text = (ROOT / "docs" / "settings.md").read_text()
    table = {}
    for name, default, _meaning in _rows(text, "| variable | default | meaning |"):
        assert _code(name) not in table, f"{name} listed twice"
        table[_code(name)] = None if default == "unset" else _code(default)
    return table


def variables_read_by_the_package() -> set[str]:
    """Names passed to a call (env.get, os.getenv, EnvVar, the settings helpers), used as an index
    (os.environ[...]) or bound to a module constant, anywhere in nasa_assets/."""
    event_types = {member.value for member in dg.DagsterEventType}
    names = set()
    for path in PACKAGE.rglob("*.py"):
        if path == SPEC:  # the declarations name every setting; the scan looks for the readers
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                candidates = [*node.args, *(k.value for k in node.keywords)]
            elif isinstance(node, ast.Subscript):
                candidates = [node.slice]
            elif isinstance(node, ast.Assign):
                candidates = [node.value]
            else:
                continue
            names.update(
                c.value for c in candidates
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
                and _ENV_NAME.fullmatch(c.value) and c.value not in event_types
            )
    # Dagster's own variables (DAGSTER_HOME) are documented by Dagster and in docs/running.md;
    # those the package only gives a default for a library are documented where they matter.
    return {name for name in names if not name.startswith("DAGSTER_")} - DEFAULTED_FOR_LIBRARIES


def _snapshot(env: dict) -> dict:
    """What every reader makes of `env`: its result, or the error it raises."""
    seen = {}
    for name, reader in READERS.items():
        try:
            seen[name] = repr(reader(env))
        except ValueError as error:
            seen[name] = f"ValueError: {error}"
    return seen


def test_the_settings_table_is_the_generated_one():
    page = (ROOT / "docs" / "settings.md").read_text()
    assert page == with_table(page), "docs/settings.md is stale: run `make settings-docs`"
    assert set(documented_settings()) == set(SETTINGS)


def test_every_variable_the_package_reads_is_declared():
    read = variables_read_by_the_package()
    assert {"NASA_API_KEY", "S3_BUCKET_NAME", "NASA_SENSOR_INTERVAL_SECONDS"} <= read  # the scan works
    assert read == set(SETTINGS) - READ_BY_BOTO3, (
        f"read but not declared in settings_spec.py: {sorted(read - set(SETTINGS))}; "
        f"declared but never read: {sorted(set(SETTINGS) - READ_BY_BOTO3 - read)}"
    )


def _env_file(path: Path) -> dict[str, str]:
    """NAME=value lines, commented-out ones (`# NAME=value   # note`) included."""
    lines = re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=(\S*)", path.read_text(), flags=re.M)
    return dict(lines)


# Deliberate deployment values in the Helm env file, different from the code's default.
HELM_VALUES = {"AWS_DEFAULT_REGION": "us-east-1",
               "NASA_DATASETS_FILE": "/opt/dagster/datasets/datasets.yaml"}


@pytest.mark.parametrize("path", [".env.example", "deploy/helm/nasa-assets.env"])
def test_env_files_list_every_setting_with_its_default(path):
    helm = "helm" in path
    listed = _env_file(ROOT / path)
    expected = {s.name: HELM_VALUES.get(s.name, s.shown()) if helm else s.shown()
                for s in SETTINGS_LIST if not (helm and s.secret)}
    assert {name: listed.get(name) for name in expected} == expected
    if helm:
        assert not {s.name for s in SETTINGS_LIST if s.secret} & set(listed)


@pytest.mark.parametrize("name", sorted(set(documented_settings()) - READ_BY_BOTO3))
def test_every_documented_setting_is_read_by_a_known_reader(name):
    # Without this, a setting read by a function missing from READERS would pass the default test
    # below whatever its documented default is.
    changed = [base for base in BASES
               if _snapshot({**base, name: "doc-check-value"}) != _snapshot(base)]
    assert changed, f"no function in READERS reacts to {name}; add the one that reads it"


@pytest.mark.parametrize("name,default", sorted(
    (name, default) for name, default in documented_settings().items() if default is not None
))
def test_documented_defaults_are_the_code_defaults(name, default):
    # Setting a variable to its documented default must change nothing at all.
    for base in BASES:
        assert _snapshot({**base, name: default}) == _snapshot(base), f"{name}={default!r}"


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ")[0]
    rest = text[start + len(heading) + 2:]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


def _columns(section: str, table: str) -> list[tuple[str, str]]:
    columns = []
    for name, kind, _meaning in _rows(section, "| column | type | meaning |"):
        expand = re.fullmatch(r"all columns of `(\w+)`", name)
        if expand:
            columns += [(f.name, type_name(f.type)) for f in SCHEMAS[expand.group(1)]]
        else:
            columns.append((_code(name), kind))
    return columns


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_data_model_columns_match_the_table_schemas(table):
    text = (ROOT / "docs" / "data-model.md").read_text()
    section = _section(text, f"### `{table}`")
    assert _columns(section, table) == [(f.name, type_name(f.type)) for f in SCHEMAS[table]]


def test_every_table_has_a_data_model_section():
    text = _section((ROOT / "docs" / "data-model.md").read_text(), "## Tables")
    assert set(re.findall(r"^### `(\w+)`$", text, flags=re.M)) == set(SCHEMAS)


def test_the_moon_dataset_schema_is_the_one_the_card_prints():
    text = (ROOT / "docs" / "data-model.md").read_text()
    assert "\n".join(schema_table()) in _section(text, "### `moon_dataset`")


FORBIDDEN = [
    (re.compile(r"(?<![\w.])/(?:work|home|root|Users)/"), "an absolute machine path"),
    (re.compile(r"\.\./shared"), "a reference outside the repository"),
    (re.compile(r"\bissues?\s+#?\d+", re.I), "an issue number"),
    (re.compile(r"(?<![\w/])#\d+\b"), "an issue number"),
    (re.compile(r"\bcommit\s+[0-9a-f]{7,40}\b", re.I), "a commit id"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"), "a commit id or run id"),
]


@pytest.mark.parametrize("path", PAGES + [ROOT / "pyproject.toml"], ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_carry_no_machine_paths_or_work_tracking_references(path):
    text = path.read_text()
    found = [f"{what}: {m.group(0)!r}" for pattern, what in FORBIDDEN for m in pattern.finditer(text)]
    assert not found


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists() or ROOT not in resolved.parents:
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert not broken


def test_the_anchor_slugs_follow_github():
    assert _slug("`dagster job launch`: one page") == "dagster-job-launch-one-page"
    assert _slug("How much concurrency NASA's rate limit allows") == "how-much-concurrency-nasas-rate-limit-allows"
    assert _slug("Rejected items and MAX_REJECTED_FRACTION") == "rejected-items-and-max_rejected_fraction"
