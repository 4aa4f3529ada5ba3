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


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--L", "0"], "--L: expected precursor counts >= 1, got [0]"),
        (["--L", "4", "-2"], "--L: expected precursor counts >= 1, got [4, -2]"),
        (["--stages", "1"], "--stages: expected node counts >= 2"),
    ],
)
def test_space_refuses_impossible_sizes(capsys, argv, message):
    assert main(["space", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ifnas space: error: ") and message in err


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe\x00binary"])
def test_show_and_retrain_name_an_unreadable_genotype_file(tmp_path, capsys, content):
    path = tmp_path / "g.json"
    path.write_bytes(content)
    for argv in (["show", str(path)], ["retrain", "--genotype", str(path), "--out", "x"]):
        assert main(argv + (["--config", "configs/digits.yaml"] if "retrain" in argv else [])) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ifnas {argv[0]}: error: genotype file {path}"), err
    assert main(["show", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_a_binary_config_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "c.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    assert main(["search", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path)]) == 2
    assert "is not a text file" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_out_that_is_or_lies_under_a_file(tmp_path, capsys, where):
    (tmp_path / "f").write_text("x\n")
    out = tmp_path / "f" if where == "file" else tmp_path / "f" / "run"
    assert main(["search", "--config", "configs/digits.yaml", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    expected = "is a file" if where == "file" else f"lies under the file {tmp_path / 'f'}"
    assert err.startswith("ifnas search: error: --out") and expected in err, err


def test_a_broken_override_names_it(tmp_path, capsys):
    argv = [
        "search",
        "--config",
        "configs/digits.yaml",
        "--out",
        str(tmp_path),
        "model.stages=[8,10",
    ]
    assert main(argv) == 2
    assert "override 'model.stages=[8,10': the value '[8,10' is not valid YAML" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("command", ["search", "retrain"])
def test_ctrl_c_prints_how_to_resume_and_exits_130(tmp_path, capsys, monkeypatch, command):
    import ifnas.run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ifnas.run, f"run_{command}", interrupted)
    g = derive(make_supernet())
    g.save(tmp_path / "g.json")
    argv = [command, "--config", "configs/digits.yaml", "--out", str(tmp_path / "run")]
    assert (
        main(argv + (["--genotype", str(tmp_path / "g.json")] if command == "retrain" else []))
        == 130
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"ifnas {command}: interrupted; resume with: ifnas {command} --out {tmp_path / 'run'} "
        f"--resume"
    )
