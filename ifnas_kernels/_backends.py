"""Backends of the fused aggregation op, what is built and usable, and the choice among them.

| name        | runs on                                   | what it is                          |
| ----------- | ----------------------------------------- | ----------------------------------- |
| `cuda`      | CUDA tensors                              | the compiled extension `_cuda`      |
| `triton`    | CUDA tensors (CPU under TRITON_INTERPRET) | the kernels in `_triton.py`         |
| `cpp`       | CPU tensors                               | the compiled extension `_C`         |
| `reference` | any device                                | pure torch (`_ref.py`)              |

The choice comes from `IFNAS_BACKEND=auto|cuda|triton|cpp|reference`, read once at import, or
from `set_backend` / `use_backend`. `auto` takes, per device type: on CUDA, Triton on GPUs it
supports (compute capability 8.0 or newer), else the CUDA extension; on CPU, the C++ extension;
and the reference when nothing compiled is there, with one warning that says how to build. A
named backend serves the devices it runs on; other devices get the `auto` choice.

The choice is made once per device type, on the first call with such tensors (so that importing
this package never initializes CUDA), and cached: a call costs one dictionary lookup.
"""

import contextlib
import importlib
import importlib.util
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ifnas_kernels import _ref

_logger = logging.getLogger(__name__)

ENV_VAR = "IFNAS_BACKEND"
NAMES = ("cuda", "triton", "cpp", "reference")
CHOICES = ("auto", *NAMES)

BUILD_HINT = (
    "build them with `pip install --no-build-isolation -e .` in the ifnas repository "
    "(a C++ compiler, and nvcc for the CUDA kernels; see its README)"
)


@dataclass(frozen=True)
class BackendInfo:
    """What `backends()` reports for one backend."""

    built: bool
    usable: bool
    reason: str


@dataclass(frozen=True)
class Backend:
    """One implementation of the op's forward and backward (see `_op.py` for the signatures)."""

    name: str
    forward: Callable
    backward: Callable


def _triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _serves(name: str, device_type: str) -> bool:
    if name == "reference":
        return True
    if name == "cpp":
        return device_type == "cpu"
    if name == "cuda":
        return device_type == "cuda"
    return device_type == "cuda" or (device_type == "cpu" and _triton_interpreting())


# ------------------------------------------------------------------------------------------
# Loading: each backend is imported on first need and remembered, with the reason it failed.

_loaded: dict[str, Backend | None] = {}
_load_errors: dict[str, str] = {}


def _load(name: str) -> Backend | None:
    if name in _loaded:
        return _loaded[name]
    backend = None
    try:
        backend = _import_backend(name)
    except ImportError as error:
        _load_errors[name] = str(error)
        _logger.debug("backend %s is not available: %s", name, error)
    _loaded[name] = backend
    return backend


def _import_backend(name: str) -> Backend:
    if name == "reference":
        return Backend(name, _ref.forward, _ref.backward)
    if name == "cpp":
        module = importlib.import_module("ifnas_kernels._C")
        _check_cpu_isa(module.isa())
        return Backend(name, module.weighted_sum, module.weighted_sum_backward)
    if name == "cuda":
        module = importlib.import_module("ifnas_kernels._cuda")
        return Backend(name, module.weighted_sum, module.weighted_sum_backward)
    module = importlib.import_module("ifnas_kernels._triton")
    return Backend(name, module.forward, module.backward)


CPU_ISA_ENV_VAR = "IFNAS_CPU_ISA"
CPU_ISAS = ("baseline", "avx2", "avx512")


def _check_cpu_isa(chosen: str) -> None:
    """Warn when `IFNAS_CPU_ISA` asked for a variant of the C++ loops that was not chosen.

    The variable caps the instruction set of the CPU loops (tests run the narrower variants on a
    wide processor); the C++ side never picks one the processor lacks.
    """
    asked = os.environ.get(CPU_ISA_ENV_VAR, "").strip()
    if not asked or asked == chosen:
        return
    if asked not in CPU_ISAS:
        why = f"expected one of {', '.join(CPU_ISAS)}"
    else:
        why = "this processor lacks it"
    warnings.warn(
        f"ifnas_kernels: {CPU_ISA_ENV_VAR}={asked!r} is not used ({why}); the CPU loops use "
        f"{chosen}.",
        RuntimeWarning,
        stacklevel=2,
    )


def _triton_gpu_reason() -> str | None:
    """Why Triton cannot run on the visible GPU, or None when it can."""
    if not torch.cuda.is_available():
        return "no CUDA device is visible"
    if torch.version.hip is not None:
        return None
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return f"Triton needs compute capability 8.0 or newer; this GPU has {major}.{minor}"
    return None


def backends() -> dict[str, BackendInfo]:
    """Report every backend: whether it is built (importable) and usable here, and why not.

    `usable` means it can run on some device of this process: the CUDA backends need a visible
    GPU (Triton also runs on CPU tensors under `TRITON_INTERPRET=1`).
    """
    return {name: _info(name) for name in NAMES}


def _info(name: str) -> BackendInfo:
    if name == "reference":
        return BackendInfo(built=True, usable=True, reason="pure torch, runs on any device")
    if name == "triton":
        if importlib.util.find_spec("triton") is None:
            return BackendInfo(built=False, usable=False, reason="triton is not installed")
        if _triton_interpreting():
            return BackendInfo(True, True, "TRITON_INTERPRET=1: runs CPU tensors interpreted")
        reason = _triton_gpu_reason()
        return BackendInfo(built=True, usable=reason is None, reason=reason or "")

    if _load(name) is None:
        return BackendInfo(built=False, usable=False, reason=f"{_load_errors[name]}; {BUILD_HINT}")
    if name == "cuda" and not torch.cuda.is_available():
        return BackendInfo(built=True, usable=False, reason="no CUDA device is visible")
    return BackendInfo(built=True, usable=True, reason="")


# ------------------------------------------------------------------------------------------
# The choice.

_requested = "auto"
_chosen: dict[str, Backend] = {}
_warned_fallback: set[str] = set()


def _auto(device_type: str) -> Backend:
    if device_type == "cuda":
        candidates = ["triton", "cuda"] if _triton_gpu_reason() is None else ["cuda"]
    elif device_type == "cpu":
        candidates = ["cpp"]
    else:
        candidates = []
    for name in candidates:
        backend = _load(name)
        if backend is not None:
            return backend

    if device_type not in _warned_fallback:
        _warned_fallback.add(device_type)
        missing = "; ".join(f"{n}: {_load_errors.get(n, 'not loaded')}" for n in candidates)
        warnings.warn(
            f"ifnas_kernels: no compiled kernels for {device_type} tensors"
            f"{f' ({missing})' if missing else ''}; using the pure-torch reference, which is "
            f"slower and keeps more memory. To get them, {BUILD_HINT}.",
            RuntimeWarning,
            stacklevel=4,
        )
    return _load("reference")


def _choose(device_type: str) -> Backend:
    name = _requested
    if name != "auto" and _serves(name, device_type):
        backend = _load(name)
        if backend is not None:
            return backend
        warnings.warn(
            f"ifnas_kernels: {ENV_VAR}={name} is ignored, that backend is not available "
            f"({_load_errors.get(name, '')}); using the automatic choice.",
            RuntimeWarning,
            stacklevel=4,
        )
    return _auto(device_type)


def backend_for(device_type: str) -> Backend:
    """The backend that runs the op on tensors of this device type (chosen once, then cached)."""
    backend = _chosen.get(device_type)
    if backend is None:
        backend = _chosen[device_type] = _choose(device_type)
        _logger.info("weighted_sum on %s tensors uses the %s backend", device_type, backend.name)
    return backend


def get_backend(device: str | torch.device = "cpu") -> str:
    """Name of the backend that runs the op on tensors of `device`."""
    return backend_for(torch.device(device).type).name


def set_backend(name: str) -> None:
    """Choose the backend for every later call, as `IFNAS_BACKEND` would.

    Raises:
        ValueError: `name` is not one of auto, cuda, triton, cpp, reference, or the named
            backend is not usable here (see `backends()` for the reason).
    """
    if name not in CHOICES:
        raise ValueError(f"name must be one of {', '.join(CHOICES)}; got {name!r}")
    if name != "auto":
        info = _info(name)
        if not info.usable:
            raise ValueError(f"name: backend {name!r} is not usable here: {info.reason}")
    _request(name)


def _request(name: str) -> None:
    global _requested
    _requested = name
    _chosen.clear()


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the body with backend `name` (see `set_backend`), then restore the previous choice."""
    previous = _requested
    set_backend(name)
    try:
        yield
    finally:
        _request(previous)


def _init_from_env() -> None:
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        warnings.warn(
            f"ifnas_kernels: {ENV_VAR}={value!r} is ignored; expected one of "
            f"{', '.join(CHOICES)}. Using auto.",
            RuntimeWarning,
            stacklevel=2,
        )
        value = "auto"
    _request(value)


_init_from_env()
