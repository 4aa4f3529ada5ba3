"""Data order and augmentation that depend only on the seed, the epoch and the sample."""

import torch
from torch.utils.data import Dataset, DistributedSampler, TensorDataset

from ifnas.data import make_loader
from ifnas.sampling import EpochSampler, SeededItems, ShardSampler, start_epoch


class NoisyImages(Dataset):
    """Sample `i` is `i` plus noise drawn from the global generator, like a random crop."""

    def __len__(self) -> int:
        return 40

    def __getitem__(self, index: int):
        return torch.full((2,), float(index)) + torch.rand(2), index % 3


def test_epoch_sampler_is_a_distributed_sampler_that_can_start_inside_an_epoch():
    data = TensorDataset(torch.arange(50))
    for rank in range(3):
        ours = EpochSampler(data, num_replicas=3, rank=rank, seed=7, drop_last=True)
        theirs = DistributedSampler(data, num_replicas=3, rank=rank, seed=7, drop_last=True)
        ours.set_epoch(2)
        theirs.set_epoch(2)
        full = list(ours)
        assert full == [(2, i) for i in theirs]
        ours.skip(5)
        assert len(ours) == len(full) - 5
        assert list(ours) == full[5:]
        assert list(ours) == full  # the skip holds for one pass only


def test_shards_hold_every_sample_once():
    data = TensorDataset(torch.arange(11))
    shards = [list(ShardSampler(data, num_replicas=4, rank=r)) for r in range(4)]
    assert sorted(i for shard in shards for _, i in shard) == list(range(11))
    assert [len(ShardSampler(data, 4, r)) for r in range(4)] == [3, 3, 3, 2]


def test_augmentation_depends_on_seed_epoch_and_sample_only():
    items = SeededItems(NoisyImages(), seed=3)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = items[(1, 5)][0]
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    torch.manual_seed(123)
    items[(1, 6)]
    assert torch.equal(items[(1, 5)][0], first)
    assert not torch.equal(items[(2, 5)][0], first)
    assert not torch.equal(SeededItems(NoisyImages(), seed=4)[(1, 5)][0], first)


def _epoch(loader, epoch, skip=0):
    start_epoch(loader, epoch, skip)
    return [x for x, _ in loader]


def test_batches_are_the_same_with_or_without_workers_and_after_a_skip():
    single = make_loader(NoisyImages(), 4, True, seed=1)
    workers = make_loader(NoisyImages(), 4, True, seed=1, workers=2)
    torch.manual_seed(0)
    reference = _epoch(single, 3)
    torch.manual_seed(99)  # the global generator does not matter
    assert all(torch.equal(a, b) for a, b in zip(_epoch(workers, 3), reference, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(_epoch(single, 3, 4), reference[4:], strict=True))
    assert not torch.equal(_epoch(single, 4)[0], reference[0])
