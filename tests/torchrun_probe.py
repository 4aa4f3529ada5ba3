"""`python -m ifnas` for tests under torchrun: runs the command, then saves what this process
ended with to `$PROBE_DIR/rank{RANK}.pt`, so a test can compare the processes.

Only the test writes these files; the command itself writes its run directory from rank 0.
"""

import os
import sys
from pathlib import Path

import torch

from ifnas.checkpoint import unwrap
from ifnas.cli import main
from ifnas.search.derive import derive
from ifnas.search.loop import SearchLoop
from ifnas.train.retrain import RetrainLoop

loops = []


def _record(cls):
    init = cls.__init__

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        net = self.supernet if isinstance(self, SearchLoop) else unwrap(self.net)
        self.initial_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        loops.append(self)

    cls.__init__ = recording_init


_record(SearchLoop)
_record(RetrainLoop)
code = main(sys.argv[1:])
state = {"exit_code": code}
for loop in loops:
    if isinstance(loop, SearchLoop):
        state["search"] = {
            "supernet": loop.supernet.state_dict(),
            "initial": loop.initial_state,
            "genotype": derive(loop.supernet, loop.cfg.derive).to_dict(),
            "prune_events": loop.prune_events,
        }
    else:
        state["retrain"] = {"net": unwrap(loop.net).state_dict(), "initial": loop.initial_state}
torch.save(state, Path(os.environ["PROBE_DIR"]) / f"rank{os.environ.get('RANK', '0')}.pt")
sys.exit(code)
