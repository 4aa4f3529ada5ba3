"""The Triton kernels on CPU tensors, in Triton's interpreter (no GPU needed).

`TRITON_INTERPRET=1` must be set before any Triton kernel is defined, and it would change what
every other test sees, so the backend tests (test_weighted_sum_backends.py) run again in a
subprocess with it set; kernel_testing.py then targets only the Triton backend, on small sizes.
"""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_kernels_match_reference_in_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "IFNAS_BACKEND": "auto"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    # Only the Triton target's cases; the C++-only tests stay in the main session.
    command += [os.path.join(HERE, "test_weighted_sum_backends.py"), "-k", "triton"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"interpreted Triton run: {summary}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 30, summary
    assert "skipped" not in summary, summary
