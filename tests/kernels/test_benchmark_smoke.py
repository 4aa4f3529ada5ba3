"""The kernel benchmark runs: every provider once, on tiny sizes, so its code cannot rot.

No timing is checked here; speed is the benchmark's business (benchmarks/kernels/).
"""

import importlib.util
import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "benchmarks", "kernels", "bench_weighted_sum.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_weighted_sum", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_provider_runs_once(bench, tmp_path):
    case = bench.Case(num_inputs=3, numel=1_001, dtype="float32", device="cpu")
    report = bench.run(case, reps=1, copy_numel=1 << 20)

    names = {(r.provider, r.mode) for r in report.results}
    assert names == {(p, m) for p in bench.providers("cpu") for m in bench.MODES}
    assert {"naive", "stack", "compile", "ours-cpp"} <= {p for p, _ in names}
    for r in report.results:
        assert r.ms > 0 and r.gbps > 0 and r.peak_mb >= 0, r

    json_path, md_path = bench.save(report, tmp_path)
    stored = json.loads(json_path.read_text())
    assert stored["case"]["num_inputs"] == 3 and len(stored["results"]) == len(names)
    assert "| ours-cpp | fwd+bwd |" in md_path.read_text()
