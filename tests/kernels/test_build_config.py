"""The build description in setup.py: which extensions build where, and CMake's copy of it.

Compiling takes minutes, so these tests check the decisions, not the compilers; CI's
`pip install --no-build-isolation -e .` compiles both extensions.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAS_NVCC = os.path.exists("/usr/local/cuda/bin/nvcc")

# Loads setup.py as a module (its setup() call only runs as __main__) in a process whose
# environment has no CUDA_HOME, no TORCH_CUDA_ARCH_LIST and no visible GPU, then reports what it
# would build with IFNAS_NO_CUDA unset and set, and the CMake description in the latter case.
_DESCRIBE = textwrap.dedent(
    """
    import json, os, runpy
    ns = runpy.run_path("setup.py", run_name="describe")
    facts = {"extensions": [ext.name for ext in ns["native_extensions"]()],
             "cuda_home": os.environ.get("CUDA_HOME"),
             "arch_list": os.environ.get("TORCH_CUDA_ARCH_LIST")}
    os.environ["IFNAS_NO_CUDA"] = "1"
    facts["no_cuda_extensions"] = [ext.name for ext in ns["native_extensions"]()]
    facts["no_cuda_cmake"] = ns["cmake_config"]()
    print(json.dumps(facts))
    """
)


@pytest.fixture(scope="module")
def described() -> dict:
    drop = ("CUDA_HOME", "CUDA_PATH", "TORCH_CUDA_ARCH_LIST", "IFNAS_NO_CUDA")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["CUDA_VISIBLE_DEVICES"] = ""
    result = subprocess.run(
        [sys.executable, "-c", _DESCRIBE], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not HAS_NVCC, reason="needs nvcc at /usr/local/cuda/bin (the default)")
def test_cuda_builds_with_defaults_and_no_gpu(described):
    assert described["extensions"] == ["ifnas_kernels._C", "ifnas_kernels._cuda"]
    assert described["cuda_home"] == "/usr/local/cuda"
    assert described["arch_list"] == "8.0;9.0+PTX"


def test_no_cuda_builds_the_cpu_kernels_only(described):
    assert described["no_cuda_extensions"] == ["ifnas_kernels._C"]


def test_cmake_reads_the_same_description(described):
    cmake = described["no_cuda_cmake"]
    assert 'set(IFNAS_EXTENSIONS "C")' in cmake
    sources = next(line for line in cmake.splitlines() if "IFNAS_C_SOURCES" in line)
    for source in (
        "csrc/bindings.cpp",
        "csrc/cpu/weighted_sum_cpu.cpp",
        "csrc/cpu/kernel_avx2.cpp",
    ):
        assert source in sources
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        assert "setup.py --cmake-config" in f.read()


def test_native_sources_stay_within_100_columns():
    too_long = []
    for folder, _, files in os.walk(os.path.join(REPO, "csrc")):
        for name in files:
            path = os.path.join(folder, name)
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    if len(line.rstrip("\n")) > 100:
                        too_long.append(f"{os.path.relpath(path, REPO)}:{number}")
    assert not too_long, f"lines over 100 columns (run clang-format -i): {too_long}"
