"""Data sets: embedded digits, CIFAR through torchvision, and ImageFolder trees.

Nothing is downloaded: CIFAR and ImageFolder read a local folder, and a missing or malformed
folder is a `FileNotFoundError` naming the path and what was expected in it.
"""

import functools
import gzip
import logging
import os
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ifnas.config import ConfigError, DataConfig
from ifnas.sampling import EpochSampler, SeededItems, ShardSampler

_logger = logging.getLogger(__name__)

DIGITS_SPLIT_SEED = 0  # the digits train/validation split never changes with the run's seed

CIFAR_MEAN = {10: (0.4914, 0.4822, 0.4465), 100: (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {10: (0.2470, 0.2435, 0.2616), 100: (0.2673, 0.2564, 0.2762)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DataSplits:
    """Training and validation sets and the shape of their images."""

    train: Dataset
    val: Dataset
    num_classes: int
    in_channels: int
    input_size: int
    classes: list[str] | None = None  # class folders of an ImageFolder subset, if one is used


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 embedded 8x8 digit images (float32, 0..16) and their labels (int64)."""
    blob = resources.files("ifnas").joinpath("assets/digits.csv.gz").read_bytes()
    table = np.loadtxt(gzip.decompress(blob).decode().splitlines(), delimiter=",")
    images = table[:, :64].astype(np.float32).reshape(-1, 1, 8, 8)
    labels = table[:, 64].astype(np.int64)
    return images, labels


def _digits(cfg: DataConfig) -> DataSplits:
    images, labels = load_digits_arrays()
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    n_val = int(round(cfg.val_fraction * len(labels)))
    if not 0 < n_val < len(labels):
        raise ConfigError(
            f"data.val_fraction={cfg.val_fraction} leaves an empty split of the {len(labels)} "
            f"digit images ({n_val} for validation); choose a fraction that keeps both"
        )
    val_idx, train_idx = order[:n_val], order[n_val:]

    # Standardize with the training split's statistics only.
    mean, std = images[train_idx].mean(), images[train_idx].std()
    x = torch.from_numpy((images - mean) / std)
    y = torch.from_numpy(labels)
    size = cfg.input_size or 8
    if size != 8:
        x = torch.nn.functional.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False
        )
    return DataSplits(
        train=TensorDataset(x[train_idx], y[train_idx]),
        val=TensorDataset(x[val_idx], y[val_idx]),
        num_classes=10,
        in_channels=1,
        input_size=size,
    )


def _cifar(cfg: DataConfig, classes: int) -> DataSplits:
    from torchvision import datasets, transforms

    root = Path(cfg.root)
    folder = root / ("cifar-10-batches-py" if classes == 10 else "cifar-100-python")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"CIFAR-{classes} not found: expected the folder {folder} (the extracted "
            f"torchvision archive) under data.root={root}"
        )
    size = cfg.input_size or 32
    normalize = transforms.Normalize(CIFAR_MEAN[classes], CIFAR_STD[classes])
    resize = [transforms.Resize(size)] if size != 32 else []
    train_tf = transforms.Compose(
        resize
        + [
            transforms.RandomCrop(size, padding=size // 8),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    val_tf = transforms.Compose(resize + [transforms.ToTensor(), normalize])
    cls = datasets.CIFAR10 if classes == 10 else datasets.CIFAR100
    try:
        train = cls(str(root), train=True, transform=train_tf, download=False)
        val = cls(str(root), train=False, transform=val_tf, download=False)
    except RuntimeError as error:
        raise FileNotFoundError(
            f"CIFAR-{classes} under {folder} is incomplete or corrupted: {error}"
        ) from error
    return DataSplits(train, val, num_classes=classes, in_channels=3, input_size=size)


def chosen_classes(cfg: DataConfig) -> list[str] | None:
    """The class folders an ImageFolder run keeps, sorted; `None` keeps all of them.

    `data.classes_file` lists them, one per line (`#` starts a comment); or
    `data.num_classes_sample` of the folders under `train/` are drawn with `data.class_seed`
    (the paper's ImageNet-100: 100 classes sampled from ImageNet-1k).
    """
    if cfg.classes_file is not None:
        path = Path(cfg.classes_file)
        if not path.is_file():
            raise FileNotFoundError(f"data.classes_file {path} does not exist")
        names = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        names = [n for n in names if n]
        if not names or len(set(names)) != len(names):
            raise ConfigError(
                f"data.classes_file {path}: expected distinct class folder names, one per "
                f"line; got {len(names)} names, {len(set(names))} distinct"
            )
        return sorted(names)
    if cfg.num_classes_sample is not None:
        train = Path(cfg.root) / "train"
        available = sorted(entry.name for entry in os.scandir(train) if entry.is_dir())
        if cfg.num_classes_sample > len(available):
            raise ConfigError(
                f"data.num_classes_sample: {cfg.num_classes_sample} classes asked for, but "
                f"{train} holds {len(available)} class folders"
            )
        return sorted(random.Random(cfg.class_seed).sample(available, cfg.num_classes_sample))
    return None


def _imagefolder(cfg: DataConfig) -> DataSplits:
    from torchvision import datasets, transforms

    root = Path(cfg.root)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise FileNotFoundError(
                f"ImageFolder tree not found: expected {root / split}/ with one folder per "
                f"class (data.root={root})"
            )
    classes = chosen_classes(cfg)
    size = cfg.input_size
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose(
        [
            transforms.RandomResizedCrop(size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    val_tf = transforms.Compose(
        [
            transforms.Resize(int(round(size / 0.875))),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            normalize,
        ]
    )
    if classes is None:
        folder = datasets.ImageFolder
    else:
        from ifnas._class_subset import ClassSubsetFolder

        folder = functools.partial(ClassSubsetFolder, classes=classes)
    try:
        train = folder(str(root / "train"), transform=train_tf)
        val = folder(str(root / "val"), transform=val_tf)
    except (FileNotFoundError, RuntimeError) as error:
        raise FileNotFoundError(f"ImageFolder tree under {root} is malformed: {error}") from error
    if train.classes != val.classes:
        raise FileNotFoundError(
            f"ImageFolder tree under {root}: train/ and val/ hold different "
            f"classes ({len(train.classes)} and {len(val.classes)})"
        )
    return DataSplits(
        train, val, num_classes=len(train.classes), in_channels=3, input_size=size, classes=classes
    )


def load_data(cfg: DataConfig) -> DataSplits:
    """The training and validation sets that `cfg` names."""
    if cfg.name == "digits":
        return _digits(cfg)
    if cfg.name in ("cifar10", "cifar100"):
        return _cifar(cfg, 10 if cfg.name == "cifar10" else 100)
    if cfg.name == "imagefolder":
        return _imagefolder(cfg)
    raise ValueError(f"data.name: unknown data set {cfg.name!r}")


def make_loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    seed: int,
    workers: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    key: str = "data.batch_size",
) -> DataLoader:
    """A loader whose order and augmentation depend only on `seed`, the epoch and the sample.

    Training loaders shuffle with an `EpochSampler` (a `DistributedSampler`: set the epoch
    with `loader.sampler.set_epoch`, resume inside one with `ifnas.sampling.start_epoch`) and
    drop the last incomplete batch. Other loaders read this process's shard (`ShardSampler`,
    no padding) in order. Random transforms draw from a generator seeded per sample
    (`ifnas.sampling.SeededItems`), so they come out the same however the run is split into
    processes, workers and restarts. `key` names the config value of `batch_size` in the
    `ConfigError` raised when the training set holds less than one batch per process.
    """
    if train and len(dataset) < batch_size * num_replicas:
        raise ConfigError(
            f"{key}={batch_size}: larger than the {len(dataset)} training images "
            f"(over {num_replicas} process(es)); expected at most "
            f"{len(dataset) // num_replicas}"
        )
    if train:
        sampler = EpochSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
    else:
        sampler = ShardSampler(dataset, num_replicas=num_replicas, rank=rank)
    return DataLoader(
        SeededItems(dataset, seed),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=train,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        # The loader draws its workers' base seed from here, not from the global generator.
        generator=torch.Generator().manual_seed(seed),
    )
