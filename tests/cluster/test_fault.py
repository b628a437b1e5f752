"""Fault on the cluster: the worker node's raylet is killed while a distributed training run trains.

One Ray Job (``fault_job.py``, submitted as a stage's job is: driver on the head, through the Jobs
API) trains the same DDP config twice on the local cluster: an uninterrupted reference, then the
run the test breaks. Each node has one CPU and each Ray Train worker asks for one, so the two
workers of a run always sit one on each node. The second run holds before step ``HOLD`` (past its
first checkpoint, with steps after it that the kill loses) until the test opens a gate file; while
it stands there the test SIGKILLs the worker node's raylet: the node goes down (``ray start --block`` ends its
other processes, the Train worker there exits), the surviving worker's all-reduce fails, and Ray
Train (``max_failures=1``) restarts the worker group from the newest checkpoint. The local cluster
then brings the worker node back, as a cluster manager replaces a lost node: the restarted group
needs two CPUs and the head has one. The run must finish with one restart and every step's loss
equal to the reference's (fp32, same batches); the test prints the goodput.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from factory import localcluster
from factory.raycluster import job_client
from factory.train.checkpoint import checkpoint_step, list_checkpoints
from factory.train.trainer import JOURNAL

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
EVERY = 4  # steps between checkpoints
HOLD = 6  # the faulted run waits before this step (0-based) until the node is down
TRAIN = {
    "steps": 24, "batch_size": 16, "lr": 3e-3, "seed": 0, "log_every": 1, "precision": "fp32",
    "schedule": {"warmup_steps": 2}, "checkpoint": {"every": EVERY, "keep_last": 2},
    "parallelism": {"backend": "ddp", "num_workers": 2, "max_failures": 1},
}
# Two DDP ranks: each gradient element is the sum of the same two numbers in either order, so the
# curves agree bit for bit; the bound is the deliverable's.
LOSS_TOL = 1e-6


def _wait_for(what: str, ready, timeout: float, job: str, client) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        status = client.get_job_status(job)
        if status.is_terminal() and not ready():  # ended since the first look: that may be what we waited for
            pytest.fail(f"job ended {status} while waiting for {what}:\n{client.get_job_logs(job)[-6000:]}")
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def _progress(root: Path) -> tuple[int, int]:
    """(newest committed checkpoint step, newest step in the run's journal); 0 for none yet."""
    checkpoints = list_checkpoints(root)
    journal = root / JOURNAL
    newest = 0
    for line in journal.read_text().splitlines() if journal.exists() else []:
        with contextlib.suppress(ValueError):  # a line rank 0 is still writing
            newest = max(newest, json.loads(line).get("step", 0))
    return (checkpoint_step(checkpoints[-1]) if checkpoints else 0), newest


def test_killed_worker_node_raylet_restarts_the_group_and_the_curve_continues(local_cluster, tmp_path):
    state_dir = Path(local_cluster["state_dir"])
    env = localcluster.client_env(state=local_cluster)
    runs = {name: {"train": TRAIN, "checkpoint_dir": str(tmp_path / name), "result": str(tmp_path / f"{name}.json")}
            for name in ("reference", "faulted")}
    gate = tmp_path / "node-down"
    runs["faulted"]["hold"] = {"step": HOLD, "until": str(gate)}
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"flavor": "nano", "seq_len": 128, "runs": list(runs.values())}))
    client = job_client(env["RAY_API_SERVER_ADDRESS"])
    t0 = time.monotonic()
    job = client.submit_job(
        entrypoint=f"{sys.executable} {Path(__file__).parent / 'fault_job.py'} {spec}",
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},  # the nodes see this checkout
        entrypoint_num_cpus=0,
    )

    faulted = Path(runs["faulted"]["checkpoint_dir"])
    # Held past a checkpoint and steps beyond it: the kill loses work, and the resume has a checkpoint.
    _wait_for("the faulted run at its hold", lambda: _progress(faulted) == (EVERY, HOLD), 600, job, client)
    os.kill(localcluster.raylet_pid("ray_worker", state_dir), signal.SIGKILL)
    t_kill = time.monotonic()
    at_kill = _progress(faulted)
    # The node takes itself down: `ray start --block` kills the node's other processes and exits.
    _wait_for("the worker node's processes to exit", lambda: not localcluster.status(state_dir)["alive"]["ray_worker"],
              30, job, client)
    t_down = time.monotonic()
    gate.touch()  # the surviving worker goes on, and its all-reduce finds its peer gone
    back = localcluster.restart_worker_node(state_dir, log=print)
    t_back = time.monotonic()
    _wait_for("the job to finish", lambda: client.get_job_status(job).is_terminal(), 600, job, client)
    t_end = time.monotonic()
    logs = client.get_job_logs(job)
    assert client.get_job_status(job) == "SUCCEEDED", logs[-6000:]

    ref = json.loads(Path(runs["reference"]["result"]).read_text())
    got = json.loads(Path(runs["faulted"]["result"]).read_text())
    assert ref["restarts"] == 0 and ref["starts"] == [0] and ref["lost_steps"] == 0
    # One restart, from a checkpoint the first attempt committed (>= step EVERY), before the end.
    assert got["steps"] == TRAIN["steps"] and got["restarts"] == 1
    first, resumed = got["starts"]
    assert (first, resumed) == (0, EVERY) and got["lost_steps"] == HOLD - EVERY
    # The run's actors used the head, the killed worker node and the one that replaced it.
    nodes = set(got["ray_worker_node_ids"])
    assert back["node_id"] in nodes and len(nodes) == 3, got

    steps = sorted(int(s) for s in got["losses"])
    assert steps == list(range(1, TRAIN["steps"] + 1)) == sorted(int(s) for s in ref["losses"])
    diffs = {s: abs(got["losses"][str(s)] - ref["losses"][str(s)]) for s in steps}
    max_diff = max(diffs.values())
    print(f"\nworker node's raylet killed at step {at_kill[1]} (checkpoint {at_kill[0]}): node down in "
          f"{t_down - t_kill:.1f} s, back in {t_back - t_kill:.1f} s, job done {t_end - t_kill:.1f} s after "
          f"the kill ({t_end - t0:.1f} s in all)\nresumed from step {resumed}, {got['lost_steps']} lost steps; "
          f"max |loss - reference| over {len(steps)} steps: {max_diff:.3g}\n"
          f"goodput {got['goodput']:.1%} over {got['wall_s']:.1f} s wall "
          f"(uninterrupted: {ref['goodput']:.1%} over {ref['wall_s']:.1f} s)")
    assert max_diff <= LOSS_TOL, diffs
    assert 0 < got["goodput"] < 1 and 0 < ref["goodput"] < 1
    assert localcluster.status(state_dir)["up"]
