"""Mixed precision and memory layout of training steps: autocast, loss scaling, channels-last.

`amp="bf16"` runs the forward pass under `torch.autocast` in bfloat16; `amp="fp16"` in float16,
with a `torch.amp.GradScaler` that scales the loss against underflow and skips any step whose
gradients overflowed. Parameters stay float32 either way: autocast casts per op, so the
architecture gates (and whatever the caller computes outside `autocast()`) stay float32.
"""

import contextlib
import logging

import torch
from torch import nn

_logger = logging.getLogger(__name__)

DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """How one training loop runs its steps.

    Args:
        amp: `none`, `bf16` or `fp16`.
        channels_last: put the model and each batch in the channels-last memory format.
        device: where the model and the batches live.

    A step reads: `x = p.inputs(x)`; `with p.autocast(): out = model(x)`; the loss;
    `p.backward(loss)`; `p.step(optimizer)` for each optimizer; `p.update()`.
    """

    def __init__(self, amp: str, channels_last: bool, device: torch.device):
        if amp not in DTYPES:
            raise ValueError(f"amp must be one of {list(DTYPES)}, got {amp!r}")
        self.amp = amp
        self.dtype = DTYPES[amp]
        self.channels_last = channels_last
        self.device = device
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    def model(self, module: nn.Module) -> nn.Module:
        """`module` in the memory format of this precision (in place; returned for chaining)."""
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        return module

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """`optimizer.step()`, unless fp16 gradients overflowed in this iteration."""
        self.scaler.step(optimizer)

    def update(self) -> None:
        """End the iteration: the scaler adapts its scale (fp16 only)."""
        self.scaler.update()

    def state_dict(self) -> dict:
        return {"amp": self.amp, "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state["amp"] != self.amp:
            raise ValueError(
                f"checkpoint trained with amp={state['amp']}, this run with {self.amp}"
            )
        if self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
