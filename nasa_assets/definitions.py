"""The code location: `dagster dev -m nasa_assets.definitions` and workspace.yaml load `defs`."""

from nasa_assets.defs.definitions import defs, definitions_from_env

__all__ = ["defs", "definitions_from_env"]
