"""The registered op: `ifnas::weighted_sum` and `ifnas::weighted_sum_backward`.

    weighted_sum(Tensor[] tensors, Tensor weights) -> Tensor
    weighted_sum_backward(Tensor grad, Tensor[] tensors, Tensor weights, bool input_grads)
        -> (Tensor[], Tensor)

Both are `torch.library` ops with fake kernels, so `torch.compile` traces each as one node. Their
kernel, for every device, runs the backend chosen for that device type (`_backends.py`). The
forward has an autograd kernel that calls the backward op. Arguments are checked by the public
function (`_api.py`) and again by the compiled kernels.

The ops are defined with the plain `torch.library.Library` API rather than the `custom_op`
decorator: its generic autograd wrapper flattens list arguments with pytrees on every call, which
tripled the cost of a forward and backward on small tensors (about 200 us against 70 us for
K = 3 on CPU). The autograd kernel here is written for this one schema.

Backward and memory: the inputs are saved for backward only when `weights` requires a gradient
(they serve sum(grad * tensors[k]) and nothing else); `weights` is always saved. The backward op
then gets an empty `tensors` list, or `input_grads=False` when no input requires a gradient.

Layouts (what the fake kernels promise and every backend returns): the output has the layout of
`empty_like(tensors[0])`, the input gradients that of `empty_like(grad)`; the weight gradient is
a 1-D tensor in the weights' dtype (an empty one when `tensors` is empty).
"""

import torch

from ifnas_kernels._backends import backend_for

FORWARD_SCHEMA = "weighted_sum(Tensor[] tensors, Tensor weights) -> Tensor"
BACKWARD_SCHEMA = (
    "weighted_sum_backward(Tensor grad, Tensor[] tensors, Tensor weights, bool input_grads) "
    "-> (Tensor[], Tensor)"
)

_lib = torch.library.Library("ifnas", "DEF")
_lib.define(FORWARD_SCHEMA)
_lib.define(BACKWARD_SCHEMA)


def _forward_kernel(tensors: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    if not tensors:
        raise ValueError("ifnas::weighted_sum: tensors must hold at least one tensor, got none")
    return backend_for(tensors[0].device.type).forward(tensors, weights)


def _backward_kernel(
    grad: torch.Tensor, tensors: list[torch.Tensor], weights: torch.Tensor, input_grads: bool
) -> tuple[list[torch.Tensor], torch.Tensor]:
    return backend_for(grad.device.type).backward(grad, tensors, weights, input_grads)


def _forward_fake(tensors: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(tensors[0])


def _backward_fake(
    grad: torch.Tensor, tensors: list[torch.Tensor], weights: torch.Tensor, input_grads: bool
) -> tuple[list[torch.Tensor], torch.Tensor]:
    num_inputs = len(tensors) if tensors else int(weights.shape[0])
    grads = [torch.empty_like(grad) for _ in range(num_inputs)] if input_grads else []
    weights_grad = torch.empty_like(weights) if tensors else weights.new_empty(0)
    return grads, weights_grad


# Every device type (CompositeExplicitAutograd) runs the chosen backend.
_lib.impl("weighted_sum", _forward_kernel, "CompositeExplicitAutograd")
_lib.impl("weighted_sum_backward", _backward_kernel, "CompositeExplicitAutograd")
torch.library.register_fake("ifnas::weighted_sum", _forward_fake, lib=_lib)
torch.library.register_fake("ifnas::weighted_sum_backward", _backward_fake, lib=_lib)

weighted_sum_op = torch.ops.ifnas.weighted_sum.default
weighted_sum_backward_op = torch.ops.ifnas.weighted_sum_backward.default


class _WeightedSumFunction(torch.autograd.Function):
    """Autograd of the forward op; arguments are (weights, *tensors), flat for autograd."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        with torch._C._AutoDispatchBelowAutograd():
            out = weighted_sum_op(list(tensors), weights)
        ctx.num_inputs = len(tensors)
        ctx.weight_grad = ctx.needs_input_grad[0]
        ctx.input_grads = any(ctx.needs_input_grad[1:])
        ctx.save_for_backward(weights, *(tensors if ctx.weight_grad else ()))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if torch.is_grad_enabled():
            raise NotImplementedError(
                "ifnas::weighted_sum has no double backward (create_graph=True); its backward "
                "op ifnas::weighted_sum_backward has no autograd formula"
            )
        weights, *tensors = ctx.saved_tensors
        grads, weights_grad = weighted_sum_backward_op(grad, tensors, weights, ctx.input_grads)
        if not ctx.input_grads:
            grads = [None] * ctx.num_inputs
        return (weights_grad if ctx.weight_grad else None), *grads


def _autograd_kernel(tensors: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and (weights.requires_grad or any(t.requires_grad for t in tensors)):
        return _WeightedSumFunction.apply(weights, *tensors)
    with torch._C._AutoDispatchBelowAutograd():
        return weighted_sum_op(tensors, weights)


_lib.impl("weighted_sum", _autograd_kernel, "Autograd")
