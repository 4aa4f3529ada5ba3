"""Every instruction-set variant of the C++ loops against the reference.

The extension compiles its CPU loops for the baseline (SSE2), AVX2 and AVX-512 and picks the widest
the processor has, so the main session tests only that one. Here the C++ cases of
test_weighted_sum_backends.py run again in a subprocess per variant, chosen with
`IFNAS_CPU_ISA`; a variant the processor lacks skips with that reason.
"""

import os
import re
import subprocess
import sys

import pytest

import ifnas_kernels
from ifnas_kernels._backends import CPU_ISA_ENV_VAR, CPU_ISAS

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# The C++ target's reference matrix, layouts and incoming-gradient strides, and the
# streaming-store comparison (whose test id names no target).
CASES = "(cpp and (matches_reference or layouts or incoming_gradient)) or streaming_stores"


def _chosen_isa(env: dict) -> str:
    code = "import ifnas_kernels._C as C; print(C.isa())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("isa", CPU_ISAS)
def test_variant_matches_reference(isa):
    if not ifnas_kernels.backends()["cpp"].usable:
        pytest.skip("needs the cpp backend")
    env = {**os.environ, CPU_ISA_ENV_VAR: isa, "IFNAS_BACKEND": "auto"}
    env.pop("TRITON_INTERPRET", None)
    chosen = _chosen_isa(env)
    if chosen != isa:
        pytest.skip(f"this processor lacks {isa} (the widest variant it runs is {chosen})")

    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    command += [os.path.join(HERE, "test_weighted_sum_backends.py"), "-k", CASES]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"{isa} run: {summary}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 80, summary
    assert "skipped" not in summary, summary


def test_unknown_variant_warns_and_keeps_the_processors_choice():
    if not ifnas_kernels.backends()["cpp"].usable:
        pytest.skip("needs the cpp backend")
    env = {**os.environ, CPU_ISA_ENV_VAR: "sse9"}
    code = (
        "import warnings, torch, ifnas_kernels\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    ifnas_kernels.weighted_sum([torch.ones(3)], torch.ones(1))\n"
        "print([str(w.message) for w in caught])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "IFNAS_CPU_ISA='sse9' is not used (expected one of baseline, avx2, avx512)" in (
        result.stdout
    )
    widest = _chosen_isa({k: v for k, v in os.environ.items() if k != CPU_ISA_ENV_VAR})
    assert _chosen_isa(env) == widest
