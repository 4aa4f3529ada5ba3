"""Shared helpers of the kernel tests: where each backend runs, and one comparison helper.

Targets are (backend, device) pairs. Usable ones run every case; a target that cannot run here
(a CUDA backend without a GPU) appears once per test as a skip that says why, instead of once
per case. The Triton backend runs on CPU tensors only under `TRITON_INTERPRET=1`, which
test_triton_interpreter.py sets in a subprocess.
"""

import os
from dataclasses import dataclass

import pytest
import torch

import ifnas_kernels

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
NUM_INPUTS = (1, 2, 3, 5, 16)

# How far a kernel may be from the float64 truth: FACTOR times the error of the reference run in
# the same dtype, plus FLOOR_ULPS units of the dtype's epsilon times the size of the terms summed
# (which covers a reference that happens to be exact, as in float64).
FACTOR = 4.0
FLOOR_ULPS = 4.0


@dataclass(frozen=True)
class Target:
    backend: str
    device: str
    usable: bool
    reason: str

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.device}"


def _targets() -> list[Target]:
    info = ifnas_kernels.backends()
    targets = []
    if INTERPRETING:
        # Only the Triton kernels: the rest run in the main test session.
        return [Target("triton", "cpu", info["triton"].usable, info["triton"].reason)]

    for backend in ("cpp", "reference"):
        targets.append(Target(backend, "cpu", info[backend].usable, info[backend].reason))

    gpu = torch.cuda.is_available()
    for backend in ("cuda", "triton", "reference"):
        usable = gpu and info[backend].usable
        reason = info[backend].reason if gpu else "needs a CUDA GPU; none is visible"
        targets.append(Target(backend, "cuda", usable, reason))
    return targets


TARGETS = _targets()


def target_params(cases=((),), case_id=lambda *case: "-".join(map(str, case))) -> list:
    """pytest params `(target, *case)`: every case for usable targets, one skip for the rest."""
    params = []
    for target in TARGETS:
        if not target.usable:
            placeholder = (None,) * len(cases[0]) if cases else ()
            params.append(
                pytest.param(
                    target,
                    *placeholder,
                    id=f"{target.id}-all",
                    marks=pytest.mark.skip(reason=f"{target.id}: {target.reason}"),
                )
            )
            continue
        for case in cases:
            suffix = case_id(*case) if case else ""
            params.append(pytest.param(target, *case, id=f"{target.id}-{suffix}".rstrip("-")))
    return params


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def assert_close(
    actual: torch.Tensor,
    truth: torch.Tensor,
    reference: torch.Tensor,
    magnitude: torch.Tensor,
    *,
    name: str,
) -> None:
    """Assert `actual` is within tolerance of the float64 `truth`, else report the worst element.

    Args:
        actual: the kernel's result.
        truth: the same quantity computed in float64.
        reference: the reference implementation's result in `actual`'s dtype; its error sets the
            tolerance (see FACTOR).
        magnitude: float64 sum of the absolute values of the terms behind each element (the
            scale of the rounding a correct kernel makes), broadcastable to `truth`.
        name: what is compared, for the message.
    """
    assert actual.shape == truth.shape, f"{name}: shape {actual.shape} != {truth.shape}"
    assert actual.dtype == reference.dtype, f"{name}: dtype {actual.dtype} != {reference.dtype}"
    eps = torch.finfo(actual.dtype).eps
    actual64 = actual.detach().double().cpu()
    truth = truth.double().cpu()
    reference_error = (reference.detach().double().cpu() - truth).abs().max().item()
    tolerance = FACTOR * reference_error + FLOOR_ULPS * eps * magnitude.double().cpu()
    tolerance = tolerance.expand_as(truth)
    error = (actual64 - truth).abs()
    failed = ~(error <= tolerance)  # NaN counts as a failure
    if failed.any():
        worst = int(torch.where(failed, error.nan_to_num(float("inf")), -1.0).argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), truth.shape))
        raise AssertionError(
            f"{name}: {int(failed.sum())} of {truth.numel()} elements outside tolerance; worst "
            f"at {index}: got {actual64.flatten()[worst].item():.9g}, expected "
            f"{truth.flatten()[worst].item():.9g} (error {error.flatten()[worst].item():.3g} > "
            f"tolerance {tolerance.flatten()[worst].item():.3g}; the {dtype_name(actual.dtype)} "
            f"reference is off by up to {reference_error:.3g})"
        )
