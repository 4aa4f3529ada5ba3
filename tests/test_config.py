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
