"""glibc malloc settings that keep freed CPU tensors' memory for the next allocation.

By default glibc returns large freed blocks to the system (`munmap`, heap trimming), so every
training step faults fresh pages in and zeroes them: on a CPU this can cost a third of a
memory-bound step and makes timings jump from run to run. PyTorch's CPU performance guide
recommends jemalloc or tcmalloc for the same reason; these two `mallopt` calls get most of the
effect with glibc itself, and `GLIBC_TUNABLES` can set the same values at process start.
"""

import ctypes
import ctypes.util
import logging

_logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: keep up to 2 GiB of free heap
MMAP_THRESHOLD = 32 * 1024**2  # the largest glibc allows: blocks below it come from the heap


def keep_freed_memory() -> str:
    """Apply the settings; return a description for reports ("default" when not glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt.restype = ctypes.c_int
    except (OSError, AttributeError, TypeError):
        _logger.info("not glibc: malloc settings left as they are")
        return "default"
    ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    if not ok:
        return "default"
    return f"glibc mallopt: trim_threshold={TRIM_THRESHOLD}, mmap_threshold={MMAP_THRESHOLD}"
