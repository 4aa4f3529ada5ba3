"""Every usable backend of `ifnas_kernels.weighted_sum` against the reference.

Forward and both gradients, in float64 and per-dtype tolerances (kernel_testing.assert_close),
over K inputs and element counts around each backend's block size; memory layouts of the inputs;
incoming gradients with odd strides; gradcheck, opcheck, torch.compile, autocast, determinism.
CPU targets always run; CUDA targets run when a GPU is visible and skip with the reason otherwise.
"""

import os
import subprocess
import sys

import pytest
import torch
from kernel_testing import (
    DTYPES,
    INTERPRETING,
    NUM_INPUTS,
    assert_close,
    dtype_name,
    target_params,
)

import ifnas_kernels
from ifnas_kernels import weighted_sum, weighted_sum_backward_ref, weighted_sum_ref

PRIME = 10_007 if INTERPRETING else 99_991  # the interpreter costs ~1 ms per Triton program


def _matrix_cases() -> list:
    """(dtype, K, numel) cases; fewer under the Triton interpreter, which is slow."""
    # Elements per block of every backend: C++ kBlock, CUDA kTile, Triton BLOCK (4096 when
    # interpreted, where each program costs about a millisecond).
    block = 4096 if INTERPRETING else 1024
    sizes = (1, block - 1, block + 1, PRIME)
    if INTERPRETING:
        cases = [(torch.float32, k, n) for k in NUM_INPUTS for n in sizes]
        cases += [(d, 3, n) for d in DTYPES if d != torch.float32 for n in (1, block + 1, PRIME)]
        return cases
    return [(d, k, n) for d in DTYPES for k in NUM_INPUTS for n in sizes]


def _case_id(dtype, num_inputs, numel) -> str:
    return f"{dtype_name(dtype)}-K{num_inputs}-n{numel}"


def _inputs(shape, dtype, num_inputs, device, seed=0, weights_dtype=None):
    """K inputs, gate-like weights in (0, 1) (float32, float64 for float64) and a gradient."""
    gen = torch.Generator().manual_seed(seed)
    weights_dtype = weights_dtype or (torch.float64 if dtype == torch.float64 else torch.float32)
    tensors = [
        torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)
        for _ in range(num_inputs)
    ]
    weights = torch.rand(num_inputs, generator=gen, dtype=torch.float64).to(weights_dtype)
    grad = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)
    return tensors, weights.to(device), grad


def _check_forward_backward(tensors, weights, grad, name: str) -> None:
    """Run the op with autograd and compare output and all gradients with the float64 truth."""
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    w = weights.detach().clone().requires_grad_()
    out = weighted_sum(leaves, w)
    out.backward(grad)

    x64 = [t.detach().double() for t in tensors]
    w64 = weights.detach().double()
    g64 = grad.detach().double()
    reference_out = weighted_sum_ref([t.detach() for t in tensors], weights.detach())
    reference_grads, reference_weights_grad = weighted_sum_backward_ref(
        grad, [t.detach() for t in tensors], weights.detach(), True
    )

    truth = sum(w64[k] * x for k, x in enumerate(x64))
    magnitude = sum((w64[k] * x).abs() for k, x in enumerate(x64))
    assert out.dtype == tensors[0].dtype
    assert_close(out, truth, reference_out, magnitude, name=f"{name}: output")

    for k, leaf in enumerate(leaves):
        assert_close(
            leaf.grad,
            w64[k] * g64,
            reference_grads[k],
            (w64[k] * g64).abs(),
            name=f"{name}: grad of tensors[{k}]",
        )

    assert w.grad.dtype == weights.dtype
    weights_truth = torch.stack([(g64 * x).sum() for x in x64])
    weights_magnitude = torch.stack([(g64 * x).abs().sum() for x in x64])
    assert_close(
        w.grad,
        weights_truth,
        reference_weights_grad,
        weights_magnitude,
        name=f"{name}: grad of weights",
    )


@pytest.mark.parametrize("target,dtype,num_inputs,numel", target_params(_matrix_cases(), _case_id))
def test_matches_reference(target, dtype, num_inputs, numel):
    tensors, weights, grad = _inputs((numel,), dtype, num_inputs, target.device, seed=numel)
    with ifnas_kernels.use_backend(target.backend):
        _check_forward_backward(tensors, weights, grad, name=target.id)


SHAPE = (2, 3, 5, 7)


def _layout(kind: str, gen: torch.Generator, device: str) -> torch.Tensor:
    """A float32 tensor of SHAPE stored in the named layout."""
    n, c, h, w = SHAPE
    if kind == "contiguous":
        return torch.randn(SHAPE, generator=gen).to(device)
    if kind == "channels_last":
        return torch.randn(SHAPE, generator=gen).to(device).to(memory_format=torch.channels_last)
    if kind == "sliced":  # every other channel of a larger tensor: not dense
        return torch.randn(n, 2 * c, h, w, generator=gen).to(device)[:, ::2]
    if kind == "storage_offset":  # dense, but not at the start of its storage
        return torch.randn(n * c * h * w + 13, generator=gen).to(device)[13:].view(SHAPE)
    if kind == "permuted":  # dense in an unusual dimension order
        return torch.randn(h, n, w, c, generator=gen).to(device).permute(1, 3, 0, 2)
    raise ValueError(kind)


LAYOUTS = {
    "contiguous": ["contiguous"] * 3,
    "channels_last": ["channels_last"] * 3,
    "sliced": ["sliced"] * 3,
    "storage_offset": ["storage_offset"] * 3,
    "permuted": ["permuted"] * 3,
    "mixed": ["channels_last", "contiguous", "sliced", "storage_offset", "permuted"],
}


@pytest.mark.parametrize(
    "target,layout", target_params([(name,) for name in LAYOUTS], lambda name: name)
)
def test_layouts(target, layout):
    gen = torch.Generator().manual_seed(1)
    tensors = [_layout(kind, gen, target.device) for kind in LAYOUTS[layout]]
    weights = torch.rand(len(tensors), generator=gen).to(target.device)
    grad = torch.randn(SHAPE, generator=gen).to(target.device)

    with ifnas_kernels.use_backend(target.backend):
        _check_forward_backward(tensors, weights, grad, name=f"{target.id} {layout}")
        out = weighted_sum(tensors, weights)
    # The output takes the first input's memory format (its exact strides when it is dense).
    assert out.stride() == torch.empty_like(tensors[0]).stride()


def _grad_kinds():
    """Ways a gradient with odd strides reaches the op's backward."""

    def expanded_scalar(out, other):  # from .sum(): strides all zero
        out.sum().backward()
        return torch.ones_like(out)

    def batch_slice(out, other):  # from torch.cat along dim 0: a slice at a storage offset
        upstream = torch.randn(other.shape[0] + out.shape[0], *out.shape[1:], device=out.device)
        torch.cat([other, out], dim=0).backward(upstream)
        return upstream[other.shape[0] :]

    def channel_slice(out, other):  # from torch.cat along channels: not dense
        upstream = torch.randn(out.shape[0], other.shape[1] + out.shape[1], *out.shape[2:])
        upstream = upstream.to(out.device)
        torch.cat([other, out], dim=1).backward(upstream)
        return upstream[:, other.shape[1] :]

    return {f.__name__: f for f in (expanded_scalar, batch_slice, channel_slice)}


GRAD_KINDS = _grad_kinds()


@pytest.mark.parametrize(
    "target,kind", target_params([(name,) for name in GRAD_KINDS], lambda name: name)
)
def test_incoming_gradient_strides(target, kind):
    gen = torch.Generator().manual_seed(2)
    tensors = [torch.randn(SHAPE, generator=gen).to(target.device).requires_grad_() for _ in "abc"]
    weights = torch.rand(3, generator=gen).to(target.device).requires_grad_()
    other = torch.randn(SHAPE, generator=gen).to(target.device)

    with ifnas_kernels.use_backend(target.backend):
        grad = GRAD_KINDS[kind](weighted_sum(tensors, weights), other)

    g64 = grad.double()
    for k, t in enumerate(tensors):
        torch.testing.assert_close(t.grad.double(), weights[k].double() * g64, rtol=1e-6, atol=0)
    expected = torch.stack([(g64 * t.detach().double()).sum() for t in tensors])
    torch.testing.assert_close(weights.grad.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("target", target_params())
def test_gradcheck(target):
    gen = torch.Generator().manual_seed(3)
    tensors = [torch.randn(3, 5, generator=gen, dtype=torch.float64) for _ in range(3)]
    tensors = [t.to(target.device).requires_grad_() for t in tensors]
    weights = torch.rand(3, generator=gen, dtype=torch.float64).to(target.device)
    weights.requires_grad_()

    with ifnas_kernels.use_backend(target.backend):
        assert torch.autograd.gradcheck(lambda w, *xs: weighted_sum(xs, w), (weights, *tensors))


@pytest.mark.parametrize("target", target_params())
def test_opcheck(target):
    gen = torch.Generator().manual_seed(4)
    tensors = [torch.randn(2, 3, 4, generator=gen).to(target.device) for _ in range(3)]
    tensors[1] = tensors[1].transpose(0, 2).contiguous().transpose(0, 2)  # another layout
    weights = torch.rand(3, generator=gen).to(target.device)
    grad = torch.randn(2, 3, 4, generator=gen).to(target.device)

    with ifnas_kernels.use_backend(target.backend):
        leaves = [t.clone().requires_grad_() for t in tensors]
        torch.library.opcheck(torch.ops.ifnas.weighted_sum.default, (leaves, weights))
        for inputs, input_grads in (([*tensors], True), ([*tensors], False), ([], True)):
            torch.library.opcheck(
                torch.ops.ifnas.weighted_sum_backward.default,
                (grad, inputs, weights, input_grads),
            )


@pytest.mark.parametrize("target", target_params())
def test_torch_compile(target):
    gen = torch.Generator().manual_seed(5)
    tensors = [torch.randn(2, 3, 5, generator=gen).to(target.device) for _ in range(3)]
    weights = torch.rand(3, generator=gen).to(target.device)

    def mixed(xs, w):
        return torch.relu(weighted_sum(xs, w.sigmoid())) * 2

    with ifnas_kernels.use_backend(target.backend):
        torch._dynamo.reset()
        compiled = torch.compile(mixed, fullgraph=True)
        eager = [t.clone().requires_grad_() for t in tensors], weights.clone().requires_grad_()
        traced = [t.clone().requires_grad_() for t in tensors], weights.clone().requires_grad_()
        mixed(*eager).sum().backward()
        compiled(*traced).sum().backward()

    torch.testing.assert_close(compiled(*traced), mixed(*eager))
    for a, b in zip(traced[0], eager[0], strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(traced[1].grad, eager[1].grad)


@pytest.mark.parametrize("target", target_params())
def test_autocast(target):
    """bf16 (CPU) / fp16 (CUDA) autocast: conv outputs mixed with float32 gates."""
    low = torch.bfloat16 if target.device == "cpu" else torch.float16
    gen = torch.Generator().manual_seed(6)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1).to(target.device)
    x = torch.randn(2, 3, 5, 7, generator=gen).to(target.device)
    skip = torch.randn(2, 3, 5, 7, generator=gen).to(target.device)
    weights = torch.rand(3, generator=gen).to(target.device).requires_grad_()

    with ifnas_kernels.use_backend(target.backend), torch.autocast(target.device, dtype=low):
        a, b = conv(x), conv(skip)
        assert a.dtype == low
        out = weighted_sum([a, b, a], weights)
        # A float32 skip input beside low-precision conv outputs is promoted, not an error.
        promoted = weighted_sum([a, skip, b], weights)
    assert out.dtype == low
    assert promoted.dtype == torch.float32

    (out.float().sum() + promoted.sum()).backward()
    assert weights.grad.dtype == torch.float32
    sum_a, sum_b, sum_skip = a.detach().float().sum(), b.detach().float().sum(), skip.sum()
    expected = torch.stack([2 * sum_a, sum_b + sum_skip, sum_a + sum_b])
    torch.testing.assert_close(weights.grad, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("target", target_params())
def test_repeated_backward_is_bitwise_equal(target):
    numel = 3 * 32 * 1024 + 17 if not INTERPRETING else 3 * 4096 + 17  # several chunks, threads
    tensors, weights, grad = _inputs((numel,), torch.float32, 5, target.device, seed=7)
    tensors = [t.requires_grad_() for t in tensors]
    weights.requires_grad_()

    results = []
    with ifnas_kernels.use_backend(target.backend):
        for _ in range(3):
            out = weighted_sum(tensors, weights)
            input_grads = torch.autograd.grad(out, [*tensors, weights], grad)
            results.append((out, *input_grads))
    for repeat in results[1:]:
        for a, b in zip(results[0], repeat, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize(
    "target,wanted", target_params([("weights",), ("tensors",)], lambda wanted: wanted)
)
def test_saves_only_what_backward_needs(target, wanted):
    tensors, weights, grad = _inputs(SHAPE, torch.float32, 3, target.device, seed=8)
    leaves = tensors if wanted == "tensors" else [weights]
    for leaf in leaves:
        leaf.requires_grad_()
    saved = []

    with ifnas_kernels.use_backend(target.backend):
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            out = weighted_sum(tensors, weights)
        grads = torch.autograd.grad(out, leaves, grad)

    # The inputs are kept only for the weight gradient.
    assert len(saved) == (1 if wanted == "tensors" else 1 + len(tensors))
    if wanted == "tensors":
        for k, g in enumerate(grads):
            torch.testing.assert_close(g, weights[k] * grad)
    else:
        expected = torch.stack([(grad.double() * t.double()).sum() for t in tensors]).float()
        torch.testing.assert_close(grads[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("target", target_params())
def test_many_inputs_and_empty_tensors(target):
    # More inputs than one CUDA launch takes (64), and tensors without elements.
    tensors, weights, grad = _inputs((257,), torch.float32, 70, target.device, seed=9)
    with ifnas_kernels.use_backend(target.backend):
        _check_forward_backward(tensors, weights, grad, name=f"{target.id} K=70")

        empty = [t.new_empty(0, 3).requires_grad_() for t in tensors[:3]]
        w = weights[:3].clone().requires_grad_()
        out = weighted_sum(empty, w)
        out.sum().backward()
    assert out.shape == (0, 3)
    assert torch.equal(w.grad, torch.zeros_like(w))
    assert empty[0].grad.shape == (0, 3)


def test_cpu_results_do_not_depend_on_thread_count():
    if not ifnas_kernels.backends()["cpp"].usable:
        pytest.skip(f"cpp backend: {ifnas_kernels.backends()['cpp'].reason}")
    tensors, weights, grad = _inputs((5 * 32 * 1024 + 3,), torch.float32, 4, "cpu", seed=10)
    tensors = [t.requires_grad_() for t in tensors]
    weights.requires_grad_()
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, max(2, threads)):
            torch.set_num_threads(count)
            with ifnas_kernels.use_backend("cpp"):
                out = weighted_sum(tensors, weights)
                results.append((out, *torch.autograd.grad(out, [*tensors, weights], grad)))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_cpu_streaming_stores_give_the_same_bits(tmp_path):
    """Large outputs go out with non-temporal stores; force them for small ones and compare."""
    if INTERPRETING or not ifnas_kernels.backends()["cpp"].usable:
        pytest.skip("needs the cpp backend")
    cases = [(dtype, numel) for dtype in DTYPES for numel in (1, 17, 1023, 1025, 40_009)]
    expected = {}
    for dtype, numel in cases:
        tensors, weights, grad = _inputs((numel,), dtype, 5, "cpu", seed=numel)
        torch.save((tensors, weights, grad), tmp_path / f"{dtype_name(dtype)}-{numel}.pt")
        with ifnas_kernels.use_backend("cpp"):
            out = weighted_sum(tensors, weights)
            expected[(dtype, numel)] = (
                out,
                *torch.ops.ifnas.weighted_sum_backward(grad, tensors, weights, True),
            )

    code = f"""
import sys, torch, ifnas_kernels
results = {{}}
for path in sorted(__import__("pathlib").Path({str(tmp_path)!r}).glob("*.pt")):
    tensors, weights, grad = torch.load(path)
    with ifnas_kernels.use_backend("cpp"):
        out = ifnas_kernels.weighted_sum(tensors, weights)
        results[path.stem] = (out, *torch.ops.ifnas.weighted_sum_backward(
            grad, tensors, weights, True))
torch.save(results, {str(tmp_path / "streamed.pt")!r})
"""
    env = {**os.environ, "IFNAS_CPU_STREAMING_BYTES": "0"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    streamed = torch.load(tmp_path / "streamed.pt")
    for (dtype, numel), (out, grads, weights_grad) in expected.items():
        s_out, s_grads, s_weights_grad = streamed[f"{dtype_name(dtype)}-{numel}"]
        assert torch.equal(out, s_out), (dtype, numel)
        assert all(torch.equal(a, b) for a, b in zip(grads, s_grads, strict=True)), (dtype, numel)
        assert torch.equal(weights_grad, s_weights_grad), (dtype, numel)
