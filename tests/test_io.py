"""Atomic writes: the whole file or the previous one, with the permissions open() would give."""

import os
import stat

import pytest

from ifnas._io import atomic_write, atomic_write_text


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_permissions_of_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "summary.json", "{}")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)

    mode = stat.S_IMODE((tmp_path / "summary.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "genotype.json"
    atomic_write_text(path, "old")

    def half_then_fail(f):
        f.write(b"new, half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["genotype.json"]
