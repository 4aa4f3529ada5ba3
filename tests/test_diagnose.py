"""`ifnas diagnose`: the network of each setting, and a tiny run to its JSON and picture."""

import json

import pytest

from ifnas.cli import main
from ifnas.config import ConfigError, load_config
from ifnas.diagnose import DiagnoseSettings, build_diagnostic
from ifnas.nn.macro import MacroConfig
from ifnas.space.interleave import interleave

TINY = [
    "model.L=6",
    "model.stages=[10, 3]",
    "model.width=4",
    "data.batch_size=128",
]
MACRO = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)


@pytest.mark.parametrize("setting,added", [(0, []), (1, [(3, 7)]), (3, [(1, 4), (2, 6), (3, 7)])])
def test_each_setting_is_a_chain_plus_candidates_plus_its_interleaved_edges(setting, added):
    cfg = load_config(None, TINY)
    net, candidates = build_diagnostic(cfg, DiagnoseSettings(), MACRO, setting)
    assert candidates == [(7, 8), (5, 8), (2, 8)]
    edges = {
        (s, i, j) for s in range(2) for j, pairs in net.live_inputs(s).items() for i, _ in pairs
    }
    chain = {(s, j - 1, j) for s, n in enumerate((10, 3)) for j in range(1, n) if j != 8}
    assert edges == chain | {(0, i, j) for i, j in candidates + added}
    for edge in added:  # each interleaves with a candidate, and the candidates with nothing else
        assert any(interleave(edge, c) for c in candidates)


def test_shifted_node_and_bad_settings():
    d = DiagnoseSettings(node=9, settings=(2,))
    assert d.interleaved == (((2, 5), (4, 8)),)
    with pytest.raises(ConfigError, match="need node >= 7"):
        DiagnoseSettings(node=6, candidates=(1, 3), settings=(3,))
    with pytest.raises(ConfigError, match="expected numbers in 0..3"):
        DiagnoseSettings(settings=(4,))
    with pytest.raises(ConfigError, match="precursor distances in 1..8"):
        DiagnoseSettings(candidates=(1, 9))


@pytest.mark.slow
def test_cli_writes_curves_and_picture(tmp_path, capsys):
    argv = ["diagnose", "--out", str(tmp_path), "--warmup-epochs", "1", "--epochs", "1"]
    argv += ["--settings", "0", "2", "--record-every", "3", *TINY, "search.arch_lr=5.0"]
    assert main(argv) == 0
    results = json.loads((tmp_path / "curves.json").read_text())
    assert [s["setting"] for s in results["settings"]] == [0, 2]
    assert results["candidates"] == ["pre-1", "pre-3", "pre-6"]
    for setting in results["settings"]:
        iters, warmup = setting["iters"], setting["warmup_iters"]
        for values in setting["gates"].values():
            assert len(values) == len(iters)
            # frozen during the warm-up, moving afterwards
            assert len({v for t, v in zip(iters, values, strict=True) if t <= warmup}) == 1
            assert values[-1] != values[0]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "final gates" in capsys.readouterr().out


def test_node_outside_the_stages(tmp_path, capsys):
    assert main(["diagnose", "--out", str(tmp_path), "--node", "12", *TINY]) == 2
    assert "node 12 of stage 0 is not in model.stages=[10, 3]" in capsys.readouterr().err


def test_duplicate_candidates_or_settings_are_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"diagnose candidates: each may be listed once"):
        DiagnoseSettings(candidates=(1, 1))
    with pytest.raises(ConfigError, match=r"diagnose settings: each may be listed once"):
        DiagnoseSettings(settings=(0, 0))
    assert main(["diagnose", "--out", str(tmp_path / "d"), *TINY, "--candidates", "1", "1"]) == 2
    assert "candidates: each may be listed once, got (1, 1)" in capsys.readouterr().err
    assert not (tmp_path / "d" / "curves.json").exists()


def test_an_existing_diagnostic_is_not_overwritten(tmp_path, capsys, monkeypatch):
    import ifnas.diagnose as diagnose_module

    (tmp_path / "curves.json").write_text("{}\n")
    monkeypatch.setattr(diagnose_module, "load_data", lambda cfg: pytest.fail("ran"))
    assert main(["diagnose", "--out", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ifnas diagnose: error: ") and "already holds a run" in err
    assert "choose another --out" in err
    assert (tmp_path / "curves.json").read_text() == "{}\n"
