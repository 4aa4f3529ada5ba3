"""The drop-in example: the fused MixedOp computes what DARTS' MixedOp computes."""

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("C,size", [(3, 5), (8, 16)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_mixed_op_matches_darts(C, size, dtype):
    example = load_example("darts_mixed_op")
    torch.manual_seed(C + size)
    original = example.MixedOp(C).to(dtype)
    fused = example.FusedMixedOp(C).to(dtype)
    fused.load_state_dict(original.state_dict())
    x = torch.randn(2, C, size, size, dtype=dtype, requires_grad=True)
    alpha = torch.randn(len(example.PRIMITIVES), dtype=dtype, requires_grad=True)
    upstream = torch.randn(2, C, size, size, dtype=dtype)

    results = []
    for edge in (original, fused):
        y = edge(x, F.softmax(alpha, dim=-1))
        results.append((y, *torch.autograd.grad(y, [x, alpha, *edge.parameters()], upstream)))
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {}
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, **tol)
