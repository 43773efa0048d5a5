"""The code location: `dagster dev -m nasa_assets.definitions` and workspace.yaml load `defs`."""

from nasa_assets.defs.allocators import use_lean_allocators

use_lean_allocators()  # before the definitions import pandas and pyarrow

from nasa_assets.defs.definitions import defs, definitions_from_env  # noqa: E402

__all__ = ["defs", "definitions_from_env"]
