"""Allocator defaults for the processes that build the dataset (docs/performance.md, memory).

Applied by the code location and the CLI, not on `import nasa_assets`: someone who only reads the
dataset (`nasa_assets.dataset.load_manifest` in a training job) keeps their process as it was."""

import ctypes
import os
import sys


def use_lean_allocators() -> None:
    """Default ARROW_DEFAULT_MEMORY_POOL=system and 2 glibc malloc arenas; a value set explicitly
    stays. Call before pyarrow first allocates and before the download threads start."""
    # Arrow's default allocator (mimalloc) keeps what its tables freed, in every thread that touched
    # it: a 10-page run peaked about 60 MB higher with it than with the system allocator. pyarrow
    # reads the variable once, at its first allocation.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    # glibc gives each thread that allocates its own arena, up to 8 per core, and keeps their free
    # memory: with 32 download threads a 30-page run peaked 20 MB higher than with 2 arenas. Like
    # MALLOC_ARENA_MAX=2, for the threads started from here on.
    if sys.platform.startswith("linux") and "MALLOC_ARENA_MAX" not in os.environ:
        try:
            ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
        except (OSError, AttributeError):  # not glibc
            pass
