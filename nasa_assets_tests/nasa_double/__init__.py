"""HTTP test double of images-api.nasa.gov (search) and images-assets.nasa.gov (files).

One ``ThreadingHTTPServer`` on 127.0.0.1 serves both hosts. The corpus starts with the real
recorded image items from ``data/`` and is padded with deterministic synthetic items. Faults can be
scripted per request kind (``NasaDouble``'s docstring lists them), and a small control surface
under ``/__double__/`` lets other processes drive a double they did not start.

Run standalone with ``python -m nasa_assets_tests.nasa_double --port 0``.
"""

from nasa_assets_tests.nasa_double.corpus import (
    CAP_REASON,
    DATA_DIR,
    REAL_API_ORIGIN,
    RENDITION_DIMS,
    RENDITIONS,
    RESULT_CAP,
)
from nasa_assets_tests.nasa_double.double import NasaDouble
from nasa_assets_tests.nasa_double.images import BOMB_DIMS, CHUNK_SIZE, HUGE_BYTES, bomb_png

__all__ = [
    "BOMB_DIMS", "CAP_REASON", "CHUNK_SIZE", "DATA_DIR", "HUGE_BYTES", "REAL_API_ORIGIN",
    "RENDITIONS", "RENDITION_DIMS", "RESULT_CAP", "NasaDouble", "bomb_png",
]
