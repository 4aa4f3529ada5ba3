"""The command line: space sizes, show, search errors and exit codes."""

import pytest

from ifnas.cli import main
from ifnas.search.derive import derive
from tests.conftest import make_supernet


def test_space_prints_table1(capsys):
    assert main(["space", "--L", "4", "6", "8"]) == 0
    out = capsys.readouterr().out
    for name, text in [
        ("DARTS", "1.1e18"),
        ("GOLD-NAS", "3.1e117"),
        ("4-chain", "1.8e116"),
        ("6-chain", "7.5e163"),
        ("8-chain", "1.6e204"),
    ]:
        assert any(line.split()[:2] == [name, text] for line in out.splitlines()), name


def test_show_describes_and_draws(tmp_path, capsys):
    g = derive(make_supernet())
    g.save(tmp_path / "g.json")
    assert main(["show", str(tmp_path / "g.json"), "--out", str(tmp_path / "a.png")]) == 0
    out = capsys.readouterr().out
    assert f"depth {g.depth()}" in out
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["search", "--config", "configs/digits.yaml", "search.epoch=2"], "unknown config key"),
        (["search", "--config", "configs/digits.yaml", "model.L=0"], "model.L"),
        (["search", "--config", "nowhere.yaml"], "does not exist"),
        (["search"], "needs --config"),
        (["search", "--resume"], "--resume needs --out"),
    ],
)
def test_search_errors_exit_2_with_a_message(tmp_path, capsys, argv, message):
    assert (
        main(argv + ["--out", str(tmp_path / "run")] if argv != ["search", "--resume"] else argv)
        == 2
    )
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_show_rejects_a_bad_genotype(tmp_path, capsys):
    (tmp_path / "g.json").write_text('{"format": "something-else"}')
    assert main(["show", str(tmp_path / "g.json")]) == 2
    assert "not a genotype" in capsys.readouterr().err
