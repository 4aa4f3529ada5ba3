"""Build of the compiled ops; the package metadata lives in pyproject.toml.

This file is the one description of the native sources and their flags:

- `ifnas_kernels._C`: the CPU kernels (C++, OpenMP). Always built.
- `ifnas_kernels._cuda`: the CUDA kernels. Built whenever `nvcc` is found, also on a machine
  without a GPU; `IFNAS_NO_CUDA=1` skips it.

Defaults set here when unset: `CUDA_HOME=/usr/local/cuda` (if that folder exists) and, when no GPU
is visible, `TORCH_CUDA_ARCH_LIST="8.0;9.0+PTX"` (torch's build fails without a list then).

`python setup.py --cmake-config` prints the same description as CMake `set()` commands, which
CMakeLists.txt reads, so the two builds cannot drift apart.

Build with the torch already installed: `pip install --no-build-isolation -e .`
"""

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_CUDA_HOME = "/usr/local/cuda"
DEFAULT_ARCH_LIST = "8.0;9.0+PTX"

# torch.utils.cpp_extension reads CUDA_HOME when it is imported, so the default goes in first.
if "CUDA_HOME" not in os.environ and "CUDA_PATH" not in os.environ:
    if Path(DEFAULT_CUDA_HOME, "bin", "nvcc").exists():
        os.environ["CUDA_HOME"] = DEFAULT_CUDA_HOME

import torch  # noqa: E402
from setuptools import setup  # noqa: E402
from torch.utils import cpp_extension  # noqa: E402

# torch's headers need C++20 (BuildExtension adds -std=c++20 to host files itself); the .cu file
# includes no torch header and stays C++17, which NVRTC 12 (the Volta check) also takes.
CXX_STANDARD = 20
CUDA_STANDARD = 17
CXX_FLAGS = ["-O3", "-fopenmp", "-Wall", "-Wno-unknown-pragmas"]
NVCC_FLAGS = ["-O3", f"-std=c++{CUDA_STANDARD}"]
LINK_FLAGS = ["-fopenmp"]

CPU_SOURCES = [
    "csrc/bindings.cpp",
    "csrc/cpu/weighted_sum_cpu.cpp",
    "csrc/cpu/dispatch.cpp",
    "csrc/cpu/kernel_base.cpp",
    "csrc/cpu/kernel_avx2.cpp",
    "csrc/cpu/kernel_avx512.cpp",
]
CUDA_SOURCES = [
    "csrc/bindings.cpp",
    "csrc/cuda/weighted_sum_cuda.cpp",
    "csrc/cuda/weighted_sum.cu",
]


@dataclass
class NativeExtension:
    """One extension module: what to compile and how, independent of the build tool."""

    name: str
    sources: list[str]
    cuda: bool = False
    defines: dict[str, str] = field(default_factory=dict)
    cxx_flags: list[str] = field(default_factory=lambda: list(CXX_FLAGS))
    nvcc_flags: list[str] = field(default_factory=lambda: list(NVCC_FLAGS))
    link_flags: list[str] = field(default_factory=lambda: list(LINK_FLAGS))


def cuda_build_skip_reason() -> str | None:
    """Why the CUDA extension is not built here, or None when it is."""
    if os.environ.get("IFNAS_NO_CUDA", "0") not in ("", "0"):
        return "IFNAS_NO_CUDA is set"
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    cuda_home = cpp_extension.CUDA_HOME
    if cuda_home is None or not Path(cuda_home, "bin", "nvcc").exists():
        return "nvcc not found (set CUDA_HOME to the CUDA toolkit)"
    return None


def cuda_arch_list() -> str:
    """TORCH_CUDA_ARCH_LIST, defaulted: the visible GPUs' architectures, else 8.0;9.0+PTX."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    if not torch.cuda.is_available():
        return DEFAULT_ARCH_LIST
    capabilities = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    arches = [f"{major}.{minor}" for major, minor in sorted(capabilities)]
    return ";".join(arches[:-1] + [arches[-1] + "+PTX"])


def native_extensions() -> list[NativeExtension]:
    """The extension modules this machine builds, with every source and flag."""
    extensions = [NativeExtension("ifnas_kernels._C", CPU_SOURCES)]

    skip_reason = cuda_build_skip_reason()
    if skip_reason is not None:
        print(f"ifnas: not building the CUDA kernels: {skip_reason}", file=sys.stderr)
        return extensions

    arch_list = cuda_arch_list()
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
    # A macro without ';' or spaces survives every shell; bindings.cpp turns it into a string.
    defines = {"IFNAS_WITH_CUDA": "1", "IFNAS_CUDA_ARCHS": arch_list.replace(";", ",")}
    extensions.append(NativeExtension("ifnas_kernels._cuda", CUDA_SOURCES, True, defines))
    return extensions


def _macro_flags(defines: dict[str, str]) -> list[str]:
    return [f"-D{name}={value}" for name, value in defines.items()]


def setuptools_extensions() -> list:
    modules = []
    for ext in native_extensions():
        kind = cpp_extension.CUDAExtension if ext.cuda else cpp_extension.CppExtension
        flags = {"cxx": ext.cxx_flags + _macro_flags(ext.defines)}
        if ext.cuda:
            # The macros are for the host files only (nvcc would split IFNAS_CUDA_ARCHS at ',').
            flags["nvcc"] = list(ext.nvcc_flags)
        modules.append(
            kind(
                ext.name,
                ext.sources,
                include_dirs=[str(ROOT / "csrc")],
                extra_compile_args=flags,
                extra_link_args=ext.link_flags,
            )
        )
    return modules


def cmake_config() -> str:
    """The description above as CMake `set()` commands (read by CMakeLists.txt)."""

    def cmake_list(values) -> str:
        return '"' + ";".join(str(v).replace(";", r"\;") for v in values) + '"'

    lines = [
        "# Generated by `python setup.py --cmake-config`; edit setup.py instead.",
        f"set(IFNAS_PYTHON_INCLUDE {cmake_list([_python_include()])})",
        f"set(IFNAS_EXTENSION_SUFFIX {cmake_list([_extension_suffix()])})",
        f"set(IFNAS_TORCH_ABI_DEFINE {cmake_list([_abi_define()])})",
        f"set(IFNAS_CXX_STANDARD {CXX_STANDARD})",
        f"set(IFNAS_CUDA_STANDARD {CUDA_STANDARD})",
    ]
    names = []
    for ext in native_extensions():
        var = ext.name.rsplit(".", 1)[-1].strip("_").upper()
        names.append(var)
        device = "cuda" if ext.cuda else "cpu"
        defines = {**ext.defines, "TORCH_EXTENSION_NAME": ext.name.rsplit(".", 1)[-1]}
        defines["TORCH_API_INCLUDE_EXTENSION_H"] = "1"
        lines += [
            f"set(IFNAS_{var}_MODULE {cmake_list([ext.name])})",
            f"set(IFNAS_{var}_LIBRARY_DIRS {cmake_list(cpp_extension.library_paths(device))})",
            f"set(IFNAS_{var}_SOURCES {cmake_list(ext.sources)})",
            f"set(IFNAS_{var}_DEFINES {cmake_list(f'{k}={v}' for k, v in defines.items())})",
            f"set(IFNAS_{var}_CXX_FLAGS {cmake_list(ext.cxx_flags)})",
            f"set(IFNAS_{var}_LINK_FLAGS {cmake_list(ext.link_flags)})",
            f"set(IFNAS_{var}_INCLUDE_DIRS {cmake_list(cpp_extension.include_paths(device))})",
            f"set(IFNAS_{var}_LIBRARIES {cmake_list(_libraries(ext.cuda))})",
        ]
        if ext.cuda:
            lines += [
                f"set(IFNAS_{var}_NVCC_FLAGS {cmake_list(ext.nvcc_flags)})",
                f"set(IFNAS_{var}_CUDA_ARCHITECTURES {cmake_list(_cmake_architectures())})",
                f"set(IFNAS_CUDA_HOME {cmake_list([cpp_extension.CUDA_HOME])})",
            ]
    lines.append(f"set(IFNAS_EXTENSIONS {cmake_list(names)})")
    return "\n".join(lines) + "\n"


def _python_include() -> str:
    import sysconfig

    return sysconfig.get_paths()["include"]


def _extension_suffix() -> str:
    import sysconfig

    return sysconfig.get_config_var("EXT_SUFFIX")


def _abi_define() -> str:
    return f"_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"


def _libraries(cuda: bool) -> list[str]:
    libraries = ["c10", "torch", "torch_cpu", "torch_python"]
    if cuda:
        libraries += ["cudart", "c10_cuda", "torch_cuda"]
    return libraries


def _cmake_architectures() -> list[str]:
    """TORCH_CUDA_ARCH_LIST in CMake's spelling: "8.0;9.0+PTX" -> ["80-real", "90"]."""
    architectures = []
    for arch in os.environ["TORCH_CUDA_ARCH_LIST"].replace(" ", ";").split(";"):
        number = arch.split("+")[0].replace(".", "")
        architectures.append(number if arch.endswith("+PTX") else f"{number}-real")
    return architectures


class BuildExtension(cpp_extension.BuildExtension):
    """torch's builder, with one temporary folder per extension.

    bindings.cpp is compiled into both extensions with different macros; separate folders keep
    the two object files apart.
    """

    def build_extension(self, ext):
        base = self.build_temp
        self.build_temp = os.path.join(base, ext.name)
        try:
            super().build_extension(ext)
        finally:
            self.build_temp = base


if __name__ == "__main__":
    if sys.argv[1:] == ["--cmake-config"]:
        sys.stdout.write(cmake_config())
        sys.exit(0)

    setup(
        ext_modules=setuptools_extensions(),
        cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)},
    )
