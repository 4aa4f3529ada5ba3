"""Speed and memory of one search iteration: naive DARTS against IF-NAS with the fused op.

One iteration is what the search does per batch: forward, cross entropy, backward, the weights'
SGD step and the gates' SGD step (ours adds the regularizer of eq. 3 and the pruning check,
exactly as `SearchLoop.step` runs them). Compared, at CIFAR size (3x32x32 inputs), in one run:

- `naive-full`: the naive DARTS supernet (`naive_darts.py`): every edge, `sum(w * op(x))`, a
  ReLU per `sep_conv_3x3`;
- `ours-full`: our supernet on every live edge, i.e. the warm-up step of an IF cycle;
- `ours-S<lam>`: our supernet on the sub-supernet `S_lam`, gates of `G_lam` learning;
- `ours-cycle`: the average over one interleaving-free cycle (the warm-up step and the `L` group
  steps have the same number of iterations): mean time, and both the mean and the largest of
  the steps' peak memories.

Time is the median over rounds (each round runs every variant once, so that other load on the
machine touches all of them alike); peak memory is what one iteration allocates beyond the
model and its optimizer state, from the profiler on CPU or `max_memory_allocated` on GPU.
"""

import importlib.util
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ifnas.config import SearchConfig
from ifnas.nn.macro import MacroConfig
from ifnas.nn.supernet import Activation, Supernet
from ifnas.search.loop import SearchLoop
from ifnas.space.lchain import LChainSpace

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


naive_darts = _load("naive_darts", HERE / "naive_darts.py")
bench_op = _load("bench_weighted_sum", HERE / "kernels" / "bench_weighted_sum.py")


@dataclass
class StepCase:
    """A search-step problem: the space, the network's width and the batch."""

    L: int
    stages: tuple[int, ...] = (18, 20, 18)
    width: int = 16
    batch: int = 32
    input_size: int = 32
    stem_strides: tuple[int, ...] = (1,)
    num_classes: int = 10
    device: str = "cpu"

    def macro(self) -> MacroConfig:
        return MacroConfig(
            in_channels=3,
            num_classes=self.num_classes,
            input_size=self.input_size,
            width=self.width,
            stem_strides=self.stem_strides,
        )


@dataclass
class StepResult:
    variant: str
    ms: float
    images_per_s: float
    peak_mb: float
    peak_max_mb: float | None = None  # ours-cycle only: the largest step peak of the cycle


@dataclass
class StepReport:
    case: StepCase
    results: list[StepResult] = field(default_factory=list)

    def get(self, variant: str) -> StepResult:
        return next(r for r in self.results if r.variant == variant)


class _Batches:
    """Just enough of a DataLoader for `SearchLoop`: a length and a sampler with epochs."""

    class _Sampler:
        def set_epoch(self, epoch):
            pass

    def __init__(self, n: int):
        self.n = n
        self.sampler = self._Sampler()

    def __len__(self):
        return self.n


def _ours(case: StepCase) -> SearchLoop:
    torch.manual_seed(0)
    cfg = SearchConfig(
        epochs=1,
        weight_warmup_epochs=0,
        alpha_delay_epochs=0,
        step_iters=1,
        budget_madds=1,
        mu_growth=1.0,
        prune_threshold=1e-30,  # the check runs (and costs what it costs) but never prunes
    )
    net = Supernet(
        LChainSpace(case.L, case.stages), case.macro(), recompute_full=cfg.recompute_full
    ).to(case.device)
    return SearchLoop(net, cfg, _Batches(100), torch.device(case.device))


def _naive(case: StepCase):
    torch.manual_seed(0)
    net = naive_darts.NaiveDartsSupernet(LChainSpace(case.L, case.stages), case.macro())
    net = net.to(case.device)
    cfg = SearchConfig()
    weight_opt = torch.optim.SGD(
        net.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    arch_opt = torch.optim.SGD(net.arch_parameters(), lr=cfg.arch_lr, momentum=cfg.arch_momentum)

    def step(x, y):
        loss = F.cross_entropy(net(x), y)
        weight_opt.zero_grad(set_to_none=True)
        arch_opt.zero_grad(set_to_none=True)
        loss.backward()
        weight_opt.step()
        arch_opt.step()

    return step


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run(case: StepCase, reps: int = 5, warmup: int = 1, measure_memory: bool = True) -> StepReport:
    """Time and measure every variant of `case` in one run."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(case.batch, 3, case.input_size, case.input_size, generator=g).to(case.device)
    y = torch.randint(0, case.num_classes, (case.batch,), generator=g).to(case.device)

    loop = _ours(case)
    variants = {"naive-full": _naive(case)}
    variants["ours-full"] = lambda x, y: loop.step(x, y, Activation(group=None))
    for lam in range(case.L):
        variants[f"ours-S{lam}"] = lambda x, y, lam=lam: loop.step(
            x, y, Activation(group=lam, learn_beta=True, learn_alpha=True)
        )

    for _ in range(warmup):
        for fn in variants.values():
            fn(x, y)
    times = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            _synchronize(case.device)
            start = time.perf_counter()
            fn(x, y)
            _synchronize(case.device)
            times[name].append(time.perf_counter() - start)

    report = StepReport(case)
    for name, fn in variants.items():
        ms = 1e3 * statistics.median(times[name])
        peak = (
            bench_op.peak_memory_mb(lambda fn=fn: fn(x, y), case.device)
            if measure_memory
            else float("nan")
        )
        report.results.append(StepResult(name, ms, 1e3 * case.batch / ms, peak))

    steps = [report.get("ours-full")] + [report.get(f"ours-S{lam}") for lam in range(case.L)]
    cycle_ms = statistics.fmean(r.ms for r in steps)
    report.results.append(
        StepResult(
            "ours-cycle",
            cycle_ms,
            1e3 * case.batch / cycle_ms,
            statistics.fmean(r.peak_mb for r in steps),
            max(r.peak_mb for r in steps),
        )
    )
    return report


def as_dict(report: StepReport) -> dict:
    return asdict(report)
