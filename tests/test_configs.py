"""The shipped configs: the ImageNet ones against a tiny generated ImageFolder tree."""

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifnas.config import ConfigError, load_config
from ifnas.data import load_data
from ifnas.metrics import MaddsTable
from ifnas.run import check_budget, macro_of, run_search
from ifnas.space.lchain import LChainSpace

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CLASSES = 101  # one more than ImageNet-100 draws

# Small enough to train for an iteration or two on a CPU; everything else as configured
# (input pipeline, bf16, channels-last, auxiliary head, warm-up, label smoothing, lr scaling).
REDUCED = [
    "data.input_size=32",
    "data.workers=0",
    "data.batch_size=16",
    "model.width=4",
    "model.stages=[3, 3, 3]",
    "search.epochs=1",
    "search.weight_warmup_epochs=0",
    "search.alpha_delay_epochs=0",
    "search.step_iters=2",
    "search.bn_calibration_batches=1",
    "retrain.epochs=1",
    "retrain.batch_size=16",
]


@pytest.fixture(scope="module")
def imagefolder(tmp_path_factory) -> Path:
    """`train/` with 2 and `val/` with 1 JPEG of 20x24 pixels in each of 101 class folders."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 1)):
        for c in range(CLASSES):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for k in range(count):
                pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{c}_{k}.JPEG")
    return root


@pytest.mark.parametrize("name,classes", [("imagenet-mobile", CLASSES), ("imagenet100", 100)])
def test_imagenet_configs_hold_the_paper_settings_and_fit_the_budget(imagefolder, name, classes):
    cfg = load_config(CONFIGS / f"{name}.yaml", [f"data.root={imagefolder}"])
    r, s = cfg.retrain, cfg.search
    assert (cfg.data.input_size, s.budget_madds, s.prune_threshold) == (224, "600M", 0.01)
    assert (s.weight_warmup_epochs, s.alpha_delay_epochs, s.step_iters) == (20, 10, 100)
    assert (r.lr, r.lr_batch, r.momentum, r.weight_decay) == (0.5, 1024, 0.9, 3e-5)
    assert (r.warmup_epochs, r.epochs, r.label_smoothing, r.auxiliary_weight) == (5, 250, 0.1, 0.4)
    assert r.batch_size * 8 == 1024  # the paper's batch on 8 GPUs

    data = load_data(cfg.data)
    assert data.num_classes == classes and data.input_size == 224
    space = LChainSpace(cfg.model.L, tuple(cfg.model.stages))
    macro = macro_of(cfg, data)
    check_budget(600_000_000, space, macro)
    table = MaddsTable(macro, len(space.stages))
    every_sep = [sum(min(j, space.L) for j in range(1, n)) for n in space.stages]
    assert table.of_sep_counts(every_sep) > 3 * 600e6  # plenty for the search to prune
    assert table.of_sep_counts([n - 1 for n in space.stages]) < 600e6  # a chain fits


@pytest.mark.slow
@pytest.mark.parametrize("name", ["imagenet-mobile", "imagenet100"])
def test_imagenet_configs_run_on_an_imagefolder_tree(imagefolder, tmp_path, name):
    cfg = load_config(CONFIGS / f"{name}.yaml", [f"data.root={imagefolder}", *REDUCED])
    summary = run_search(cfg, tmp_path)
    assert summary["search_iters"] == 2 * CLASSES // 16
    assert 0.0 <= summary["retrain_val_top1"] <= 1.0
    listed = tmp_path / "classes.txt"
    if name == "imagenet100":
        drawn = listed.read_text().split()
        available = [f"n{c:08d}" for c in range(CLASSES)]
        assert drawn == sorted(random.Random(0).sample(available, 100))
    else:
        assert not listed.exists()


def test_a_classes_file_restricts_the_tree(imagefolder, tmp_path):
    (tmp_path / "classes.txt").write_text("# three of them\nn00000007\nn00000003\n\nn00000050\n")
    cfg = load_config(
        CONFIGS / "imagenet-mobile.yaml",
        [f"data.root={imagefolder}", f"data.classes_file={tmp_path / 'classes.txt'}"],
    )
    data = load_data(cfg.data)
    assert data.num_classes == 3 and data.classes == ["n00000003", "n00000007", "n00000050"]
    assert len(data.train) == 6 and len(data.val) == 3
    assert {label for _, label in data.val.samples} == {0, 1, 2}


@pytest.mark.parametrize(
    "overrides,error,message",
    [
        (["data.num_classes_sample=500"], ConfigError, "500 classes asked for"),
        (["data.classes_file=/no/such/list.txt"], FileNotFoundError, "/no/such/list.txt"),
        (
            ["data.classes_file=list.txt", "data.num_classes_sample=5"],
            ConfigError,
            "give one of them",
        ),
    ],
)
def test_class_subsets_fail_clearly(imagefolder, overrides, error, message):
    with pytest.raises(error, match=message):
        cfg = load_config(
            CONFIGS / "imagenet-mobile.yaml", [f"data.root={imagefolder}", *overrides]
        )
        load_data(cfg.data)


def test_a_listed_class_without_a_folder_is_named(imagefolder, tmp_path):
    (tmp_path / "classes.txt").write_text("n00000001\nn99999999\n")
    cfg = load_config(
        CONFIGS / "imagenet-mobile.yaml",
        [f"data.root={imagefolder}", f"data.classes_file={tmp_path / 'classes.txt'}"],
    )
    with pytest.raises(FileNotFoundError, match="n99999999"):
        load_data(cfg.data)


@pytest.mark.parametrize("name", ["imagenet-mobile", "imagenet100", "cifar10"])
def test_configs_need_a_data_root(name):
    with pytest.raises(ConfigError, match="data.root: required"):
        load_config(CONFIGS / f"{name}.yaml")
    cfg = load_config(CONFIGS / f"{name}.yaml", ["data.root=/no/such/data"])
    with pytest.raises(FileNotFoundError, match="/no/such/data"):
        load_data(cfg.data)
