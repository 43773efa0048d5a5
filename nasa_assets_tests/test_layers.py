"""The package's import layers (pyproject.toml, [tool.importlinter]): defs -> dataset -> storage |
nasa, with no Dagster below defs. A violation fails with import-linter's report of the chain."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # lint-imports runs as a child process

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_layer_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("storage/base.py", "from nasa_assets.dataset import tables", "Layers"),
    ("nasa/renditions.py", "from nasa_assets.dataset.keys import image_key", "Layers"),
    ("nasa/urls.py", "from nasa_assets.storage import ObjectStore", "Layers"),
    ("dataset/keys.py", "from nasa_assets.defs.partitions import search_pages", "Layers"),
    ("dataset/sampling.py", "import dagster as dg", "do not import Dagster"),
])
def test_an_import_up_the_layers_breaks_a_contract(tmp_path, module, line, contract):
    """A copy of the package with one upward import: the contracts must name it."""
    shutil.copytree(ROOT / "nasa_assets", tmp_path / "nasa_assets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / "nasa_assets" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith(" BROKEN")]
    assert any(contract in name for name in broken), result.stdout
    assert "nasa_assets." + module.removesuffix(".py").replace("/", ".") in result.stdout
