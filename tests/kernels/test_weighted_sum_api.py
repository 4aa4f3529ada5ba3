"""The public face of the op: argument errors, backend report and choice, fallback warning."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import ifnas_kernels
from ifnas_kernels import WeightedSum, weighted_sum

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _x(*shape, dtype=torch.float32, device="cpu"):
    return torch.ones(shape, dtype=dtype, device=device)


# Each bad call, the exception it raises and a fragment of the message (which names the argument).
ERROR_CASES = {
    "no_tensors": (lambda: weighted_sum([], _x(0)), ValueError, "tensors must hold at least one"),
    "tensor_not_list": (lambda: weighted_sum(_x(2, 3), _x(2)), TypeError, "tensors must be a seq"),
    "not_a_tensor": (lambda: weighted_sum([_x(3), 3.0], _x(2)), TypeError, "tensors[1] must be"),
    "mismatched_shapes": (
        lambda: weighted_sum([_x(2, 3), _x(2, 4)], _x(2)),
        ValueError,
        "tensors[1] has shape",
    ),
    "broadcastable_shapes": (
        lambda: weighted_sum([_x(2, 3), _x(1, 3)], _x(2)),
        ValueError,
        "does not broadcast",
    ),
    "mixed_devices": (
        lambda: weighted_sum([_x(3), _x(3, device="meta")], _x(2)),
        ValueError,
        "tensors[1] is on",
    ),
    "mixed_dtypes": (
        lambda: weighted_sum([_x(3), _x(3, dtype=torch.float64)], _x(2)),
        TypeError,
        "tensors[1] is",
    ),
    "integer_tensors": (
        lambda: weighted_sum([_x(3, dtype=torch.int32)], _x(1)),
        TypeError,
        "tensors must be",
    ),
    "integer_weights": (
        lambda: weighted_sum([_x(3)], _x(1, dtype=torch.int64)),
        TypeError,
        "weights must be",
    ),
    "short_weights": (lambda: weighted_sum([_x(3), _x(3)], _x(1)), ValueError, "weights must be"),
    "long_weights": (lambda: weighted_sum([_x(3)], _x(2)), ValueError, "weights must be a 1-D"),
    "2d_weights": (lambda: weighted_sum([_x(3), _x(3)], _x(2, 1)), ValueError, "weights must be"),
    "0d_weights": (lambda: weighted_sum([_x(3)], torch.tensor(1.0)), ValueError, "weights must"),
    "weights_elsewhere": (
        lambda: weighted_sum([_x(3)], _x(1, device="meta")),
        ValueError,
        "weights is on",
    ),
    "weights_not_tensor": (lambda: weighted_sum([_x(3)], [1.0]), TypeError, "weights must be a"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_arguments_raise_naming_the_argument(case):
    call, error, fragment = ERROR_CASES[case]
    with pytest.raises(error, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        call()


NATIVE_ERROR_CASES = {
    "no_tensors": (([], _x(0)), ValueError, "tensors must hold at least one"),
    "mismatched_shapes": (([_x(2, 3), _x(1, 3)], _x(2)), ValueError, "has shape"),
    "mixed_dtypes": (([_x(3), _x(3, dtype=torch.float64)], _x(2)), TypeError, "tensors\\[1\\] is"),
    "integer_tensors": (([_x(3, dtype=torch.int32)], _x(1)), TypeError, "tensors must be"),
    "wrong_weights": (([_x(3), _x(3)], _x(3)), ValueError, "weights must be a 1-D tensor of 2"),
}


@pytest.mark.parametrize("case", list(NATIVE_ERROR_CASES))
def test_compiled_kernels_check_their_arguments(case):
    if not ifnas_kernels.backends()["cpp"].built:
        pytest.skip(f"cpp backend: {ifnas_kernels.backends()['cpp'].reason}")
    from ifnas_kernels import _C

    args, error, fragment = NATIVE_ERROR_CASES[case]
    with pytest.raises(error, match=fragment):
        _C.weighted_sum(*args)
    with pytest.raises(error, match=fragment):
        torch.ops.ifnas_cpp.weighted_sum(*args)


def test_mixed_dtypes_are_promoted_only_under_autocast():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = weighted_sum([_x(3, dtype=torch.bfloat16), _x(3)], _x(2))
    assert out.dtype == torch.float32


def test_backends_report():
    report = ifnas_kernels.backends()
    assert set(report) == {"cuda", "triton", "cpp", "reference"}
    assert report["reference"] == ifnas_kernels.BackendInfo(True, True, report["reference"].reason)
    # The C++ kernels always build; pip install must have built them here.
    assert report["cpp"].built and report["cpp"].usable, report["cpp"].reason
    for name, info in report.items():
        assert info.usable <= info.built, name
        if not info.usable:
            assert info.reason, f"{name} is not usable but says no reason"


def test_cuda_kernels_are_built_where_nvcc_is():
    report = ifnas_kernels.backends()
    nvcc = os.path.exists(os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin/nvcc"))
    if not nvcc or os.environ.get("IFNAS_NO_CUDA", "0") not in ("", "0"):
        pytest.skip("no nvcc here (or IFNAS_NO_CUDA is set): the CUDA kernels are not built")
    assert report["cuda"].built, report["cuda"].reason
    if not torch.cuda.is_available():
        assert not report["cuda"].usable and "no CUDA device" in report["cuda"].reason


def test_set_backend_and_use_backend():
    before = ifnas_kernels.get_backend("cpu")
    with ifnas_kernels.use_backend("reference"):
        assert ifnas_kernels.get_backend("cpu") == "reference"
        # The reference runs on any device type.
        assert ifnas_kernels.get_backend("meta") == "reference"
    assert ifnas_kernels.get_backend("cpu") == before

    with pytest.raises(ValueError, match="name must be one of"):
        ifnas_kernels.set_backend("fast")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not usable here"):
            ifnas_kernels.set_backend("cuda")


def test_module_and_double_backward():
    x = [torch.randn(4, requires_grad=True) for _ in range(2)]
    w = torch.rand(2, requires_grad=True)
    out = WeightedSum()(x, w)
    torch.testing.assert_close(out, w[0] * x[0] + w[1] * x[1])
    (grad_w,) = torch.autograd.grad(out.sum(), w, create_graph=False)
    assert grad_w.shape == (2,)
    with pytest.raises(NotImplementedError, match="no double backward"):
        torch.autograd.grad(WeightedSum()(x, w).sum(), w, create_graph=True)


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=120,
    )


def test_backend_from_environment_variable():
    code = """
        import torch, ifnas_kernels
        print(ifnas_kernels.get_backend("cpu"))
        ifnas_kernels.weighted_sum([torch.ones(3)], torch.ones(1))
    """
    result = _run_python(code, IFNAS_BACKEND="reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["reference"]
    assert "Warning" not in result.stderr

    result = _run_python(code, IFNAS_BACKEND="fastest")
    assert result.returncode == 0, result.stderr
    assert "IFNAS_BACKEND='fastest' is ignored" in result.stderr


def test_one_warning_when_nothing_is_built():
    # Hide the compiled extensions, as on a machine where they were never built.
    code = """
        import sys, warnings
        sys.modules["ifnas_kernels._C"] = None
        sys.modules["ifnas_kernels._cuda"] = None
        import torch, ifnas_kernels
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                out = ifnas_kernels.weighted_sum([torch.ones(3), torch.ones(3)], torch.ones(2))
        assert out.tolist() == [2.0, 2.0, 2.0]
        messages = [str(w.message) for w in caught]
        print(len(messages))
        print(messages[0])
        print(ifnas_kernels.backends()["cpp"])
    """
    result = _run_python(code, IFNAS_BACKEND="auto")
    assert result.returncode == 0, result.stderr
    count, message, cpp = result.stdout.splitlines()
    assert count == "1"
    assert "using the pure-torch reference" in message
    assert "pip install --no-build-isolation -e ." in message
    assert "built=False" in cpp and "pip install" in cpp
