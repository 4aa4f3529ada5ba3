"""Data order and augmentation that depend only on the seed, the epoch and the sample.

Exact resume inside an epoch needs two things of the data:

- the order: `EpochSampler` is a `DistributedSampler` (the permutation depends only on the
  seed and the epoch) that can start an epoch at any sample (`skip`), so a resumed run reads
  the batches the interrupted one had not reached, and loads nothing for the ones it had;
- the augmentation: `SeededItems` draws the random crops and flips of sample `index` in epoch
  `epoch` from a generator seeded with `(seed, epoch, index)`, not from a process-wide stream
  that depends on how many batches, workers or processes came before. The same image gets the
  same augmentation in a run of 1 or 8 processes, with or without DataLoader workers, resumed
  or not; different samples (and so different processes) get independent ones.

The sampler yields `(epoch, index)` keys, which `SeededItems` takes as indices; keys travel to
DataLoader workers with the indices, so persistent workers see the right epoch too.
"""

import itertools
import logging
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

_logger = logging.getLogger(__name__)

_MASK64 = (1 << 64) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for sample `index` of `epoch` (SplitMix64 over the three numbers)."""
    x = 0
    for value in (seed, epoch, index):
        x = (x + 0x9E3779B97F4A7C15 + (value & _MASK64)) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return x >> 1


class SeededItems(Dataset):
    """`dataset` indexed by `(epoch, index)` keys; item `index` is drawn with the global CPU
    generator seeded by `sample_seed(seed, epoch, index)`, which is restored afterwards."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        state = torch.get_rng_state()
        torch.default_generator.manual_seed(sample_seed(self.seed, epoch, index))
        try:
            return self.dataset[index]
        finally:
            torch.set_rng_state(state)


class EpochSampler(DistributedSampler):
    """A `DistributedSampler` that yields `(epoch, index)` keys and can start inside an epoch.

    `skip(n)` makes the next pass over the sampler start at this process's `n`-th sample of
    the epoch; `len()` counts the samples that pass will yield.
    """

    def __init__(self, dataset: Dataset, **kwargs):
        super().__init__(dataset, **kwargs)
        self._start = 0

    def skip(self, samples: int) -> None:
        if not 0 <= samples <= self.num_samples:
            raise ValueError(
                f"cannot skip {samples} samples of an epoch of {self.num_samples} (per process)"
            )
        self._start = samples

    def __len__(self) -> int:
        return self.num_samples - self._start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start, self._start = self._start, 0
        epoch = self.epoch
        for index in itertools.islice(super().__iter__(), start, None):
            yield (epoch, index)


class ShardSampler(Sampler):
    """Every `num_replicas`-th sample from `rank` on, in order, as `(0, index)` keys.

    Unlike `DistributedSampler` it pads nothing, so the shards of all processes together hold
    each sample exactly once and counts summed over them are exact (evaluation).
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.size = len(dataset)
        self.num_replicas = num_replicas
        self.rank = rank

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.num_replicas))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((0, index) for index in range(self.rank, self.size, self.num_replicas))

    def set_epoch(self, epoch: int) -> None:
        """Evaluation order does not change with the epoch."""


def start_epoch(loader, epoch: int, batches_done: int = 0) -> None:
    """Set the epoch of `loader`'s sampler and, when resuming inside it, skip the batches done.

    The permutation of an epoch depends only on the seed and `epoch`, so skipping the first
    `batches_done` batches puts a resumed run on the very batches the interrupted one would
    have read next.
    """
    loader.sampler.set_epoch(epoch)
    if batches_done:
        if not hasattr(loader.sampler, "skip"):
            raise TypeError(
                f"resuming inside an epoch needs a sampler with skip() (an EpochSampler from "
                f"ifnas.data.make_loader), got {type(loader.sampler).__name__}"
            )
        loader.sampler.skip(batches_done * loader.batch_size)
