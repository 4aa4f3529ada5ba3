"""The Slurm examples build the torchrun command they document (run with stand-in commands)."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from ifnas.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]

STAND_INS = {
    "scontrol": 'printf "gpu-a17\\ngpu-a18\\n"',
    # srun runs its command once here, without its own options.
    "srun": 'while [[ "$1" == --* ]]; do shift; done; exec "$@"',
    "torchrun": 'printf "%s\\n" "$@" > "$TORCHRUN_ARGS"',
}


def run_example(tmp_path: Path, script: str, *args: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STAND_INS.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_NNODES": "2",
        "SLURM_JOB_NODELIST": "gpu-a[17-18]",
        "SLURM_GPUS_ON_NODE": "8",
        "TORCHRUN_ARGS": str(tmp_path / "torchrun.args"),
    }
    command = ["bash", str(ROOT / "examples" / "slurm" / script), *args]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "torchrun.args").read_text().splitlines()


RENDEZVOUS = [
    "--nnodes=2",
    "--nproc_per_node=8",
    "--rdzv_id=4242",
    "--rdzv_backend=c10d",
    "--rdzv_endpoint=gpu-a17:29500",
    "-m",
    "ifnas",
]


@pytest.mark.parametrize("resume", [False, True])
def test_search_example_launches_torchrun_on_every_node(tmp_path, resume):
    if resume:
        (tmp_path / "runs" / "imagenet-mobile-4242").mkdir(parents=True)
        (tmp_path / "runs" / "imagenet-mobile-4242" / "checkpoint.pt").write_bytes(b"")
    argv = run_example(tmp_path, "search.sbatch", "configs/imagenet-mobile.yaml", "data.root=/d")
    assert argv[:7] == RENDEZVOUS
    expected = "search --config configs/imagenet-mobile.yaml --out runs/imagenet-mobile-4242"
    assert argv[7:] == shlex.split(expected) + (["--resume"] if resume else []) + ["data.root=/d"]
    args = build_parser().parse_args(argv[7:])
    assert args.resume == resume and args.overrides == ["data.root=/d"]


def test_retrain_example_launches_torchrun_on_every_node(tmp_path):
    argv = run_example(
        tmp_path, "retrain.sbatch", "g.json", "configs/imagenet-mobile.yaml", "retrain.epochs=5"
    )
    assert argv[:7] == RENDEZVOUS
    args = build_parser().parse_args(argv[7:])
    assert (args.command, args.genotype, args.config) == (
        "retrain",
        "g.json",
        "configs/imagenet-mobile.yaml",
    )
    assert args.out == "runs/retrain-imagenet-mobile-4242" and args.overrides == [
        "retrain.epochs=5"
    ]
