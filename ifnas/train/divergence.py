"""Stopping a run whose training loss is no longer a finite number.

A nan or inf loss poisons the weights through the next update and never recovers; a run that
went on would train nothing and still write a genotype and a summary. The loops check the loss
they already read as a Python number for logging, so the check costs no device sync.
"""

import math
from collections.abc import Callable


class DivergenceError(RuntimeError):
    """The training loss became nan or inf: the run diverged."""


def check_finite_loss(value: float, where: Callable[[], tuple[str, str]]) -> None:
    """Raise `DivergenceError` when `value` is nan or inf.

    Args:
        value: the iteration's loss.
        where: called only when the loss is not finite (the check runs every iteration): the
            phase and position (`search epoch 3, iteration 1200`) and the config keys of the
            learning rates worth lowering (`retrain.lr`).
    """
    if not math.isfinite(value):
        where, lr_keys = where()
        raise DivergenceError(
            f"{where}: the training loss is {value}; the run diverged and was stopped "
            f"(nothing after the last checkpoint is kept); lower {lr_keys} and start again"
        )
