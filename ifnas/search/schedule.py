"""The search schedule: epochs of weight warm-up, then interleaving-free cycles (section 3.4).

The paper trains the weights alone on the full supernet for 20 epochs, then lets `beta` learn,
and `alpha` 10 epochs later (section 4.1). Once `beta` learns, iterations run in cycles of
`L + 1` steps of `step_iters` iterations each: a warm-up step on every live edge in which only
the weights learn, then one step on each sub-supernet `S_lam`, `lam = 0..L-1`, in order.

The schedule is a pure function of the global iteration, so a resumed run sits at exactly the
same place in the cycle as an uninterrupted one.
"""

from dataclasses import dataclass

from ifnas.nn.supernet import Activation


@dataclass(frozen=True)
class SearchSchedule:
    """Which edges run and which gates learn at each iteration of the search.

    Args:
        L: number of groups (the space's `L`).
        iters_per_epoch: iterations in one epoch of the search data.
        weight_warmup_epochs: epochs in which only the weights learn, on the full supernet.
        alpha_delay_epochs: epochs after `beta` starts before `alpha` starts too.
        step_iters: iterations per step of the cycle (100 in the paper).
        interleaving_free: `False` replaces the cycles by steps on every live edge in which
            every gate learns (the paper's "w/o IF" ablation).
    """

    L: int
    iters_per_epoch: int
    weight_warmup_epochs: int
    alpha_delay_epochs: int
    step_iters: int
    interleaving_free: bool = True

    def __post_init__(self):
        if self.iters_per_epoch < 1:
            raise ValueError(f"iters_per_epoch must be >= 1, got {self.iters_per_epoch}")
        if self.step_iters < 1:
            raise ValueError(f"step_iters must be >= 1, got {self.step_iters}")
        if self.weight_warmup_epochs < 0 or self.alpha_delay_epochs < 0:
            raise ValueError("weight_warmup_epochs and alpha_delay_epochs must be >= 0")

    @property
    def arch_start(self) -> int:
        """Global iteration at which `beta` starts learning."""
        return self.weight_warmup_epochs * self.iters_per_epoch

    @property
    def cycle_iters(self) -> int:
        """Iterations of one interleaving-free cycle: a warm-up step plus `L` group steps."""
        return (self.L + 1) * self.step_iters

    def ends_cycle(self, global_iter: int) -> bool:
        """True for the last iteration of a cycle (without IF: of each `(L + 1) * step_iters`
        iterations) once the gates learn."""
        t = global_iter - self.arch_start
        return t >= 0 and (t + 1) % self.cycle_iters == 0

    def position(self, global_iter: int) -> dict:
        """Where iteration `global_iter` sits: its epoch and iteration inside it and, once the
        gates learn, its interleaving-free cycle, the step in it (`warm-up` or `S{lam}`) and
        the iteration inside the step (for checkpoints and logs)."""
        epoch, epoch_iter = divmod(global_iter, self.iters_per_epoch)
        where = {"epoch": epoch, "epoch_iter": epoch_iter}
        t = global_iter - self.arch_start
        if t < 0:
            return {**where, "phase": "weight warm-up"}
        k = (t % self.cycle_iters) // self.step_iters
        step = "all" if not self.interleaving_free else "warm-up" if k == 0 else f"S{k - 1}"
        return {
            **where,
            "phase": "cycles",
            "cycle": t // self.cycle_iters,
            "step": step,
            "step_iter": t % self.step_iters,
        }

    def activation(self, global_iter: int) -> Activation:
        """The `Activation` of iteration `global_iter` (counted from 0 over all epochs)."""
        t = global_iter - self.arch_start
        if t < 0:
            return Activation(group=None)
        learn_alpha = t >= self.alpha_delay_epochs * self.iters_per_epoch
        if not self.interleaving_free:
            return Activation(group=None, learn_beta=True, learn_alpha=learn_alpha)

        k = (t % self.cycle_iters) // self.step_iters
        if k == 0:
            return Activation(group=None)
        return Activation(group=k - 1, learn_beta=True, learn_alpha=learn_alpha)
