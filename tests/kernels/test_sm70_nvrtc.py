"""The CUDA kernel source compiles for Volta (sm_70), which CUDA 13's nvcc no longer targets.

V100 users build the extension with a CUDA 12 toolkit (README). Here NVRTC from CUDA 12, which
pip installs as `nvidia-cuda-nvrtc-cu12` (in the dev extra), compiles csrc/cuda/weighted_sum.cu
for compute_70 (PTX) and sm_70 (machine code), every kernel instantiation included; no GPU is
needed. NVRTC has no host compiler, so the .cu file keeps its host launchers under
`#if !defined(__CUDACC_RTC__)` and uses no CUDA headers in device code.
"""

import ctypes
import importlib.util
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(REPO, "csrc", "cuda", "weighted_sum.cu")

_KERNELS = "ifnas::cuda::kernels::"
_TYPES = ("float", "double", f"{_KERNELS}Half", f"{_KERNELS}BFloat16")
NAME_EXPRESSIONS = (
    [f"&{_KERNELS}forward_kernel<{t}>" for t in _TYPES]
    + [
        f"&{_KERNELS}backward_kernel<{t}, {a}, {b}>"
        for t in _TYPES
        for a, b in (("true", "true"), ("true", "false"), ("false", "true"))
    ]
    + [f"&{_KERNELS}reduce_partials_kernel<{t}>" for t in ("float", "double")]
)


def _load_nvrtc12():
    spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "lib", "libnvrtc.so.12")
        if os.path.exists(path):
            return ctypes.CDLL(path)
    return None


class _Nvrtc:
    """The few NVRTC calls this test needs, through ctypes."""

    def __init__(self, lib):
        self.lib = lib
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def check(self, status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what}: {self.lib.nvrtcGetErrorString(status).decode()}")

    def version(self) -> tuple[int, int]:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "version")
        return major.value, minor.value

    def compile(self, source: str, arch: str) -> tuple[int, str, bytes, dict[str, str]]:
        """Compile for `arch`; returns (status, log, PTX or CUBIN, lowered kernel names)."""
        program = ctypes.c_void_p()
        self.check(
            self.lib.nvrtcCreateProgram(
                ctypes.byref(program), source.encode(), b"weighted_sum.cu", 0, None, None
            ),
            "create program",
        )
        try:
            for expression in NAME_EXPRESSIONS:
                self.check(
                    self.lib.nvrtcAddNameExpression(program, expression.encode()), expression
                )
            options = [f"--gpu-architecture={arch}", "-std=c++17", f"-I{REPO}/csrc"]
            array = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
            status = self.lib.nvrtcCompileProgram(program, len(options), array)

            size = ctypes.c_size_t()
            self.lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            self.lib.nvrtcGetProgramLog(program, log)
            if status != 0:
                return status, log.value.decode(), b"", {}

            kind = "CUBIN" if arch.startswith("sm_") else "PTX"
            get_size = getattr(self.lib, f"nvrtcGet{kind}Size")
            get = getattr(self.lib, f"nvrtcGet{kind}")
            self.check(get_size(program, ctypes.byref(size)), f"{kind} size")
            code = ctypes.create_string_buffer(size.value)
            self.check(get(program, code), kind)

            lowered = {}
            for expression in NAME_EXPRESSIONS:
                name = ctypes.c_char_p()
                self.check(
                    self.lib.nvrtcGetLoweredName(program, expression.encode(), ctypes.byref(name)),
                    f"lowered name of {expression}",
                )
                lowered[expression] = name.value.decode()
            return status, log.value.decode(), code.raw, lowered
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(program))


@pytest.fixture(scope="module")
def nvrtc():
    lib = _load_nvrtc12()
    if lib is None:
        pytest.skip(
            "NVRTC 12 is not installed: pip install nvidia-cuda-nvrtc-cu12 (in the dev extra)"
        )
    return _Nvrtc(lib)


def test_kernels_compile_for_volta_ptx(nvrtc):
    assert nvrtc.version()[0] == 12
    with open(SOURCE) as f:
        source = f.read()
    status, log, ptx, lowered = nvrtc.compile(source, "compute_70")
    assert status == 0, log

    ptx = ptx.decode(errors="replace")
    assert re.search(r"^\.target sm_70\b", ptx, re.MULTILINE), ptx[:500]
    for expression, name in lowered.items():
        assert f".entry {name}(" in ptx, f"{expression} ({name}) is missing from the PTX"
    # Only the deprecation notice for pre-Turing targets is allowed in the log.
    other_lines = [line for line in log.splitlines() if line and "deprecated" not in line]
    assert not other_lines, log


def test_kernels_compile_for_volta_machine_code(nvrtc):
    with open(SOURCE) as f:
        source = f.read()
    status, log, cubin, lowered = nvrtc.compile(source, "sm_70")
    assert status == 0, log
    assert cubin[:4] == b"\x7fELF", "NVRTC did not return an ELF cubin"
    for name in lowered.values():
        assert name.encode() in cubin, f"{name} is missing from the sm_70 cubin"
