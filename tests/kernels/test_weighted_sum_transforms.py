"""weighted_sum under forward-mode AD and the torch.func transforms, against hand-written sums.

The fused op has a reverse-mode formula only; the public function computes through the reference
under these transforms (the raw op would drop forward-mode tangents). The expected values come
from the definition, sum_k w[k] * x[k], written out with plain torch ops.
"""

import pytest
import torch
from torch.autograd import forward_ad

import ifnas_kernels
from ifnas_kernels import weighted_sum

# torch.func's first transform scripts a helper of torch's own, which warns about jit.script.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

K = 5
SHAPE = (3, 7)


def _case(seed=0):
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(SHAPE, generator=gen, dtype=torch.float64) for _ in range(K)]
    w = torch.rand(K, generator=gen, dtype=torch.float64)
    return xs, w


def _naive(xs, w):
    return sum(w[k] * xs[k] for k in range(len(xs)))


def test_jvp_in_the_weights_and_in_the_inputs():
    xs, w = _case()
    w_dot = torch.linspace(-1.0, 1.0, K, dtype=torch.float64)
    xs_dot = [torch.full(SHAPE, float(k + 1), dtype=torch.float64) for k in range(K)]

    out, tangent = torch.func.jvp(lambda w: weighted_sum(xs, w), (w,), (w_dot,))
    torch.testing.assert_close(out, _naive(xs, w))
    torch.testing.assert_close(tangent, _naive(xs, w_dot))

    _, tangent = torch.func.jvp(lambda *xs: weighted_sum(list(xs), w), tuple(xs), tuple(xs_dot))
    torch.testing.assert_close(tangent, _naive(xs_dot, w))


def test_dual_level_carries_the_tangent():
    xs, w = _case(1)
    w_dot = torch.arange(K, dtype=torch.float64)
    with forward_ad.dual_level():
        out = weighted_sum(xs, forward_ad.make_dual(w, w_dot))
        tangent = forward_ad.unpack_dual(out).tangent
    assert tangent is not None, "the forward-mode tangent was dropped"
    torch.testing.assert_close(tangent, _naive(xs, w_dot))


def test_vmap_over_a_batch_of_inputs_and_of_weights():
    xs, w = _case(2)
    batch = torch.stack(xs, dim=1)  # (3, K, 7): vmap over dim 0 gives K tensors of (7,) each
    out = torch.vmap(lambda b: weighted_sum(list(b.unbind(0)), w))(batch)
    torch.testing.assert_close(out, _naive([x for x in xs], w))

    ws = torch.rand(4, K, dtype=torch.float64)
    out = torch.vmap(lambda w: weighted_sum(xs, w))(ws)
    torch.testing.assert_close(out, torch.stack([_naive(xs, wi) for wi in ws]))


def test_func_grad_and_jacrev_of_the_weights():
    xs, w = _case(3)
    grad = torch.func.grad(lambda w: weighted_sum(xs, w).square().sum())(w)
    y = _naive(xs, w)
    torch.testing.assert_close(grad, torch.stack([(2 * y * x).sum() for x in xs]))

    jac = torch.func.jacrev(lambda w: weighted_sum(xs, w))(w)
    torch.testing.assert_close(jac, torch.stack(xs, dim=-1))


def test_compile_still_calls_the_fused_op():
    xs, w = _case(4)
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(lambda xs, w: weighted_sum(xs, w), backend=backend, fullgraph=True)
    torch.testing.assert_close(compiled(xs, w), _naive(xs, w))
    targets = [node.target for gm in graphs for node in gm.graph.nodes]
    assert torch.ops.ifnas.weighted_sum.default in targets, targets


def test_the_raw_op_refuses_an_empty_list():
    with pytest.raises(ValueError, match="at least one tensor"):
        torch.ops.ifnas.weighted_sum([], torch.ones(0))


def test_outside_transforms_the_fused_backend_runs(monkeypatch):
    # The reference must not be taken when no transform is active: count calls into it.
    calls = []
    real = ifnas_kernels._api.weighted_sum_ref
    monkeypatch.setattr(
        ifnas_kernels._api, "weighted_sum_ref", lambda *a: calls.append(1) or real(*a)
    )
    xs, w = _case(5)
    torch.testing.assert_close(weighted_sum(xs, w), _naive(xs, w))
    assert calls == []
    torch.func.jvp(lambda w: weighted_sum(xs, w), (w,), (w,))
    assert calls == [1]
