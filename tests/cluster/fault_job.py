"""Ray Job body of ``test_fault.py``: small distributed pretraining runs on the local cluster.

``python fault_job.py SPEC.json`` trains each of ``spec["runs"]`` in turn (a ``TrainConfig`` as
``train``, checkpoints in ``checkpoint_dir``) on Ray Train workers of the cluster the job belongs
to, and writes each run's ``result`` file as it finishes: per-step losses, the steps each attempt
of the worker group started from, restarts, lost steps, goodput, wall time and the Ray nodes the
job's actors used so far. The model and the token stream are fixed by seeds, so runs of one
config train on the same batches from the same initial weights. One job for all runs: a job's
interpreter start and imports cost ~12 s here.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np

from factory.jobs import job_nodes
from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.train.config import TrainConfig
from factory.train.data import PackedTokens
from factory.train.losses import LanguageModeling
from factory.train.trainer import JOURNAL, train

VOCAB = 512
EOT = 1


def token_stream(n: int = 200_000, seed: int = 0) -> np.ndarray:
    """Uniform tokens with an end-of-text about every 100: documents for the packed windows."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(2, VOCAB, n)
    tokens[rng.random(n) < 1 / 100] = EOT
    return tokens


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    data = PackedTokens(token_stream(), spec["seq_len"], eot_id=EOT, seed=0)
    build = functools.partial(Transformer, model_args(spec["flavor"], VOCAB, max_seq_len=spec["seq_len"]))
    for run in spec["runs"]:
        root = Path(run["checkpoint_dir"])
        result = train(TrainConfig(**run["train"]), build, LanguageModeling(), data, checkpoint_dir=root)
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
