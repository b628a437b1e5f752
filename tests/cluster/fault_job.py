"""Ray Job body of ``test_fault.py``: small distributed pretraining runs on the local cluster.

``python fault_job.py SPEC.json`` trains each of ``spec["runs"]`` in turn (a ``TrainConfig`` as
``train``, checkpoints in ``checkpoint_dir``) on Ray Train workers of the cluster the job belongs
to, and writes each run's ``result`` file as it finishes: per-step losses, the steps each attempt
of the worker group started from, restarts, lost steps, goodput, wall time and the Ray nodes the
job's actors used so far. The model and the token stream are fixed by seeds, so runs of one
config train on the same batches from the same initial weights. One job for all runs: a job's
interpreter start and imports cost ~12 s here.

A run with ``hold: {"step": S, "until": PATH}`` stops before step S's batch until PATH exists: the
test kills the node while the run stands there, so the kill lands between the first checkpoint and
the end whatever the machine's speed (a step takes ~0.05 s, less than the node takes to go down).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

from factory.jobs import job_nodes
from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.train.config import TrainConfig
from factory.train.data import PackedTokens
from factory.train.losses import LanguageModeling
from factory.train.schedules import samples_before
from factory.train.trainer import JOURNAL, train

VOCAB = 512
EOT = 1


def token_stream(n: int = 200_000, seed: int = 0) -> np.ndarray:
    """Uniform tokens with an end-of-text about every 100: documents for the packed windows."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(2, VOCAB, n)
    tokens[rng.random(n) < 1 / 100] = EOT
    return tokens


class HeldTokens:
    """``PackedTokens`` whose batches from sample ``at`` on wait until the file ``until`` exists."""

    def __init__(self, data: PackedTokens, at: int, until: str, timeout: float = 300.0):
        self.data, self.at, self.until, self.timeout = data, at, Path(until), timeout

    def batch(self, offset: int, batch_size: int):
        deadline = time.monotonic() + self.timeout
        while offset >= self.at and not self.until.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.until} did not appear within {self.timeout} s")
            time.sleep(0.05)
        return self.data.batch(offset, batch_size)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    data = PackedTokens(token_stream(), spec["seq_len"], eot_id=EOT, seed=0)
    build = functools.partial(Transformer, model_args(spec["flavor"], VOCAB, max_seq_len=spec["seq_len"]))
    for run in spec["runs"]:
        root = Path(run["checkpoint_dir"])
        cfg = TrainConfig(**run["train"])
        hold = run.get("hold")
        source = data
        if hold:
            at = samples_before(hold["step"], cfg.batch_size, cfg.schedule.batch_ramp)
            source = HeldTokens(data, at, hold["until"])
        result = train(cfg, build, LanguageModeling(), source, checkpoint_dir=root)
        journal = [json.loads(line) for line in (root / JOURNAL).read_text().splitlines()]
        out = {
            "steps": result.steps,
            "losses": {int(h["step"]): h["loss"] for h in result.history},
            "starts": [e["start"] for e in journal if "start" in e],
            "restarts": result.restarts,
            "lost_steps": result.lost_steps,
            "goodput": result.final["goodput"],
            "wall_s": result.wall_s,
            **job_nodes(),
        }
        Path(run["result"]).write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
