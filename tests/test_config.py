"""Config loading: YAML, dotted overrides, and errors that name the key."""

import pytest

from ifnas.config import ConfigError, load_config, parse_madds, parse_override


def test_defaults_are_the_paper_settings():
    cfg = load_config()
    assert cfg.model.stages == [18, 20, 18]
    assert cfg.search.weight_warmup_epochs == 20
    assert cfg.search.alpha_delay_epochs == 10
    assert cfg.search.step_iters == 100
    assert cfg.search.prune_threshold == 0.01
    assert parse_madds(cfg.search.budget_madds) == 600_000_000


def test_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  L: 6\nsearch:\n  epochs: 3\n  lr: 3e-2\n")
    cfg = load_config(path, ["search.epochs=2", "model.stages=[4, 5]", "data.root=/x"])
    assert (cfg.model.L, cfg.search.epochs, cfg.model.stages) == (6, 2, [4, 5])
    assert cfg.search.lr == pytest.approx(0.03)
    assert cfg.data.root == "/x"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["search.epoch=2"],
            r"unknown config key 'search.epoch' \(did you mean 'search.epochs'\?\)",
        ),
        (["bogus=1"], "unknown config key 'bogus'"),
        (["model.L=0"], "model.L: expected an integer >= 1"),
        (["model.L=2.5"], "model.L: expected an integer"),
        (["search.lr=fast"], "search.lr: expected a number"),
        (["model.stages=4"], "model.stages: expected a list"),
        (["model.stages=[4, 1]"], "model.stages: expected node counts >= 2"),
        (["model.mixing=magic"], "model.mixing"),
        (["search.budget_madds=lots"], "search.budget_madds"),
        (["search.budget_madds=-5"], "must be positive"),
        (["data.name=mnist"], "data.name"),
        (["data.name=cifar10"], "data.root: required"),
        (["search.derive=best"], "search.derive"),
        (["search"], "not of the form key=value"),
        (["search.nesterov=3"], "expected true or false"),
        (["search.lr=.nan"], r"expected finite numbers, got search.lr=nan"),
        (["search.arch_lr=.inf"], r"search.arch_lr=inf"),
        (["retrain.lr=-0.1"], "retrain.lr: expected a learning rate >= 0"),
        (["search.lr=-1"], "search.lr: expected a learning rate >= 0"),
        (["retrain.weight_decay=-1e-4"], "retrain.weight_decay: expected a weight decay >= 0"),
        (["search.weight_decay=.inf"], "search.weight_decay=inf"),
        (["search.darts_arch_weight_decay=.nan"], "search.darts_arch_weight_decay=nan"),
        (["search.momentum=1.0"], r"search.momentum: expected a momentum in \[0, 1\)"),
        (["retrain.momentum=-0.5"], "retrain.momentum: expected a momentum"),
        (["search.arch_momentum=2"], "search.arch_momentum: expected a momentum"),
        (["search.momentum=0", "search.nesterov=true"], "Nesterov momentum needs"),
        (["search.mu1=-0.1"], "search.mu1 and search.mu2: expected >= 0"),
        (["search.mu_growth=0"], "search.mu_growth: expected a factor >= 1"),
        (["search.mu_growth=0.5"], "search.mu_growth: expected a factor >= 1"),
        (["data.input_size=0"], "data.input_size: expected an image side >= 1"),
        (["data.input_size=-8"], "data.input_size: expected an image side >= 1"),
        (["model.stem_strides=[]"], "model.stem_strides: expected one stride >= 1"),
        (["model.stem_strides=[1, 0]"], "model.stem_strides: expected one stride >= 1"),
        (["seed=-1"], r"seed: expected an integer in \[0, 2\*\*63\)"),
        ([f"seed={2**63}"], r"seed: expected an integer in \[0, 2\*\*63\)"),
        (["search.budget_madds=1e400"], "search.budget_madds: expected a finite count"),
        (["search.budget_madds=.inf"], "search.budget_madds: expected int or str, got inf"),
        (["device=cuda:x"], "device: expected auto, cpu, cuda or cuda:N"),
        (["model.stages=[8,10"], r"override 'model.stages=\[8,10': the value .* is not valid YAML"),
        (["compare.strategies=[ifnas"], "override 'compare.strategies=.*not valid YAML"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigError, match=r"binary.yaml is not a text file"):
        load_config(binary)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(listing)


@pytest.mark.parametrize(
    "text,value",
    [
        ("600M", 600_000_000),
        ("1.5G", 1_500_000_000),
        ("250K", 250_000),
        (5e6, 5_000_000),
        (1200, 1200),
    ],
)
def test_madds_strings(text, value):
    assert parse_madds(text) == value


def test_override_tree():
    assert parse_override("a.b.c=[1, 2]") == {"a": {"b": {"c": [1, 2]}}}
    with pytest.raises(ConfigError, match="empty key"):
        parse_override("a..b=1")


def test_data_that_leave_no_batch_or_an_empty_split():
    from ifnas.data import load_data
    from ifnas.run import check_batches

    cfg = load_config(None, ["data.val_fraction=0.0001"])
    with pytest.raises(ConfigError, match="data.val_fraction=0.0001 leaves an empty split"):
        load_data(cfg.data)
    cfg = load_config(None, ["data.val_fraction=0.5", "data.batch_size=1000"])
    with pytest.raises(ConfigError, match="data.batch_size=1000: larger than the 899 training"):
        check_batches(cfg, load_data(cfg.data))
    cfg = load_config(None, ["retrain.batch_size=5000"])
    with pytest.raises(ConfigError, match="retrain.batch_size=5000: larger than"):
        check_batches(cfg, load_data(cfg.data), search=False)
