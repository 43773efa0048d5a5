"""nasa_assets: an ML-ready image dataset from the NASA Image and Video Library, built with Dagster."""

import ctypes
import os
import sys

# Memory of a run (docs/performance.md). Arrow's default allocator (mimalloc) keeps what its tables
# freed, in every thread that touched it: a 10-page run peaked about 60 MB higher with it than
# with the system allocator. Set before pandas or pyarrow first allocate (they read it once); a
# pool chosen explicitly stays.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
# glibc gives each thread that allocates its own arena, up to 8 per core, and keeps their free
# memory: with 32 download threads a 30-page run peaked 20 MB higher than with 2 arenas. Like
# MALLOC_ARENA_MAX=2, for the threads started from here on; an explicit MALLOC_ARENA_MAX stays.
if sys.platform.startswith("linux") and "MALLOC_ARENA_MAX" not in os.environ:
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc
        pass
