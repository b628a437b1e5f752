"""A multi-node cluster on this machine: the cluster path without a cluster (docs/cluster.md).

``up`` starts, on 127.0.0.1 and with all state under one folder (default ``<FACTORY_HOME>/cluster``):

- a Ray head and one Ray worker node, each its own ``ray start --block`` in its own session (own
  raylet and object store, one CPU each, custom resources ``node_head`` / ``node_worker``), the
  dashboard and its Job Submission API on ``http://127.0.0.1:<port>``, Ray Client on ``ray://``;
- SeaweedFS (``weed server``: master, volume, filer, S3 gateway) serving S3 with the bucket ``factory``;
- an MLflow tracking server on a SQLite store whose artifacts go to ``s3://factory/mlflow``.

Every process is started in a new session, so ``down`` stops exactly the processes of that session
(SIGTERM, SIGKILL after a timeout) and never touches another Ray on the machine (``ray stop`` would).
``cluster.json`` in the folder records pids, sessions, ports and addresses, so ``status``, ``env``
and ``down`` work from any process; ``up`` on a running cluster only reports it.

``down`` keeps the data (``s3/``, ``mlflow.db``, ``logs/``) so the next ``up`` sees the same
artifacts and runs; it removes the Ray session folders and sockets. ``down(purge=True)`` removes it all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory.config import HOME_ENV
from factory.core.environment import EMBEDDED_RAY_ENV, PROCESS_ENV

STATE_FILE = "cluster.json"
PORT_BASE_ENV = "FACTORY_CLUSTER_PORT_BASE"
DEFAULT_PORT_BASE = 26000
HOST = "127.0.0.1"
BUCKET = "factory"
# SeaweedFS without an IAM config accepts any key pair; these only have to be consistent.
ACCESS_KEY = "factory"
SECRET_KEY = "factory-local-secret"
REGION = "us-east-1"
OBJECT_STORE_BYTES = 100_000_000
# Ray's Unix sockets live at <temp dir>/session_<date>_<pid>/sockets/plasma_store and must fit in
# 107 bytes: the session part takes about 65, so the temp dir may take at most this many (the
# worker node's is 2 longer, see node_temp_dir).
MAX_RAY_TEMP_LEN = 38
PROCESSES = ("ray_head", "ray_worker", "s3", "mlflow")
RAY_STOP_SECONDS = 8.0

# Offsets from the port base. Ray's own gRPC listeners (GCS, raylets, agents) bind every interface
# whatever the flags say; everything else listens on 127.0.0.1 only.
PORT_OFFSETS = {
    "ray_gcs": 0,
    "ray_dashboard": 1,
    "ray_client": 2,
    "head_node_manager": 3,
    "head_object_manager": 4,
    "worker_node_manager": 5,
    "worker_object_manager": 6,
    "head_agent_http": 7,
    "head_agent_grpc": 8,
    "worker_agent_http": 9,
    "worker_agent_grpc": 10,
    "head_runtime_env_agent": 11,
    "worker_runtime_env_agent": 12,
    "head_metrics": 13,
    "worker_metrics": 14,
    "s3": 20,
    "weed_master": 21,
    "weed_volume": 22,
    "weed_filer": 23,
    "weed_master_grpc": 24,
    "weed_volume_grpc": 25,
    "weed_filer_grpc": 26,
    "s3_grpc": 27,
    "mlflow": 30,
}
WORKER_PORTS = {"ray_head": (100, 149), "ray_worker": (150, 199)}  # Ray worker process ranges
# A replacement worker node (restart_worker_node) alternates to its node's ports + this shift (its
# Ray worker processes too): the GCS's gRPC channel to the dead node's address is left failing and
# backing off, and a new raylet on that address got "connection refused" from it and no placement.
REPLACEMENT_PORT_SHIFT = 200


def default_state_dir() -> Path:
    return Path(os.environ.get(HOME_ENV) or ".factory").expanduser().resolve() / "cluster"


def port_base() -> int:
    return int(os.environ.get(PORT_BASE_ENV) or DEFAULT_PORT_BASE)


def ports_for(base: int) -> dict[str, int]:
    return {name: base + offset for name, offset in PORT_OFFSETS.items()}


def runtime_dir(state_dir: Path) -> Path:
    """Ray's temp dir: ``<state>/run`` when that path is short enough for Ray's socket paths,
    otherwise a short folder in the system temp dir (per state folder) linked from ``<state>/run``.
    Not named ``ray``: a job's working directory holding ``ray/`` would shadow the package."""
    inside = state_dir / "run"
    if len(str(inside)) <= MAX_RAY_TEMP_LEN:
        return inside
    return Path(tempfile.gettempdir()) / f"fcl-{hashlib.sha1(str(state_dir).encode()).hexdigest()[:10]}"


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name!r} not found next to {sys.executable} or on PATH (pip install '.[cluster]')")
    return found


# ---------------------------------------------------------------------------------------------
# State file and addresses


def read_state(state_dir: Path | None = None) -> dict[str, Any] | None:
    path = Path(state_dir or default_state_dir()) / STATE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _write_state(state: dict[str, Any]) -> None:
    path = Path(state["state_dir"]) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def addresses(ports: dict[str, int]) -> dict[str, str]:
    return {
        "ray_address": f"ray://{HOST}:{ports['ray_client']}",
        "ray_gcs_address": f"{HOST}:{ports['ray_gcs']}",
        "dashboard_url": f"http://{HOST}:{ports['ray_dashboard']}",
        "s3_endpoint": f"http://{HOST}:{ports['s3']}",
        "bucket": BUCKET,
        "artifact_root": f"s3://{BUCKET}/artifacts",
        "mlflow_uri": f"http://{HOST}:{ports['mlflow']}",
    }


def s3_env(endpoint: str) -> dict[str, str]:
    """What an S3 client (boto3, s3fs through fsspec, MLflow) needs to reach the local S3."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        # boto3/botocore (and so s3fs) read it. Not FSSPEC_S3_ENDPOINT_URL: fsspec copies FSSPEC_*
        # into its config once, at import, so a later endpoint in the environment would be ignored.
        "AWS_ENDPOINT_URL_S3": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }


def client_env(state_dir: Path | None = None, state: dict[str, Any] | None = None) -> dict[str, str]:
    """The environment of a client process of the cluster (the factory CLI, Dagster, a test).

    ``RAY_ADDRESS`` is the Ray Client address (``ray.init`` and the factory's ``runtime.ray_address``
    take it); the Job Submission API is at ``RAY_API_SERVER_ADDRESS`` (``ray job submit`` and
    ``JobSubmissionClient()`` read it before ``RAY_ADDRESS``).
    """
    state = state or read_state(state_dir)
    if state is None:
        raise RuntimeError(f"no local cluster recorded in {state_dir or default_state_dir()} (factory cluster up)")
    a = state["addresses"]
    return {
        "RAY_ADDRESS": a["ray_address"],
        "RAY_API_SERVER_ADDRESS": a["dashboard_url"],
        "MLFLOW_TRACKING_URI": a["mlflow_uri"],
        **s3_env(a["s3_endpoint"]),
    }


def storage_options(state_dir: Path | None = None, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """s3fs keyword arguments for the local S3 (``fsspec.filesystem("s3", **storage_options())``)."""
    env = client_env(state_dir, state)
    return {"key": env["AWS_ACCESS_KEY_ID"], "secret": env["AWS_SECRET_ACCESS_KEY"],
            "client_kwargs": {"endpoint_url": env["AWS_ENDPOINT_URL_S3"], "region_name": REGION}}


def format_env(env: dict[str, str]) -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())


# ---------------------------------------------------------------------------------------------
# Processes: each started in its own session; a process belongs to the cluster by its session id


def _session_members(sid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # fields after the parenthesised command: state ppid pgrp session ...
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) != sid:
            continue
        if fields[0] in ("Z", "X"):
            _reap(int(entry.name))
            continue
        members.append(int(entry.name))
    return members


def _reap(pid: int) -> None:
    """Collect a dead child of this process (the starter's own Popen children), if it is one."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_sessions(sids: dict[str, int], timeout: float = 20.0, timeouts: dict[str, float] | None = None,
                  ) -> dict[str, float]:
    """SIGTERM every process of each session at once, SIGKILL what is left after ``timeout`` (or the
    session's own entry in ``timeouts``);
    returns the seconds each session took to end. (SeaweedFS takes its own 15 s cap to stop the
    filer's gRPC server gracefully; the rest end in a few seconds.)"""
    t0 = time.monotonic()
    taken: dict[str, float] = {}
    pending = dict(sids)
    for sid in pending.values():
        _signal_all(_session_members(sid), signal.SIGTERM)
    limits = {name: (timeouts or {}).get(name, timeout) for name in sids}
    while pending:
        for name, sid in list(pending.items()):
            members = _session_members(sid)
            if not members:
                taken[name] = round(time.monotonic() - t0, 1)
                del pending[name]
            elif time.monotonic() - t0 > limits[name]:
                _signal_all(members, signal.SIGKILL)
        if pending:
            time.sleep(0.2)
    return taken


def _start(name: str, cmd: list[str], state_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    log = state_dir / "logs" / f"{name}.log"
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, cwd=state_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return {"pid": proc.pid, "sid": proc.pid, "log": str(log), "cmd": cmd}


def _alive(entry: dict[str, Any]) -> bool:
    return bool(_session_members(entry["sid"]))


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def port_free(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 (a listener on any interface blocks it)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT does not block
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _alive_nodes(dashboard_url: str) -> set[str]:
    """Ids of the Ray nodes the GCS holds alive (empty while the dashboard does not answer)."""
    try:
        with urllib.request.urlopen(f"{dashboard_url}/api/v0/nodes?limit=100", timeout=5) as response:
            data = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return set()
    rows = data.get("data", {}).get("result", {}).get("result", [])
    return {row["node_id"] for row in rows if row.get("state") == "ALIVE"}


def _tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait(what: str, ready: Callable[[], bool], procs: list[dict[str, Any]], deadline: float) -> None:
    while not ready():
        for entry in procs:
            if not _alive(entry):
                raise RuntimeError(f"{what}: process exited; log {entry['log']}:\n{_tail(entry['log'])}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready in time; logs: {', '.join(e['log'] for e in procs)}")
        time.sleep(0.3)


# ---------------------------------------------------------------------------------------------
# Commands


def node_temp_dir(role: str, temp_dir: Path) -> Path:
    """A node's own Ray temp dir: the head's is ``temp_dir``, the worker's ``temp_dir/w``. Nodes of
    one host must not share one: each node's runtime-env agent unpacks a job's ``working_dir`` into
    ``<temp dir>/session_*/runtime_resources`` and, on a new setup of the same package, deletes and
    unpacks it again (Ray's ``overwrite=True``), so a shared folder was replaced under a running
    job's driver by the other node's agent (its working directory gone: ``getcwd`` failed, torch's
    libraries could not be loaded)."""
    return temp_dir if role == "ray_head" else temp_dir / "w"


def _share_head_logs(temp_dir: Path) -> None:
    """Make the worker node write its session's logs into the head's logs folder (a link). On one
    host Ray reports the head's dashboard agent as the agent of every job driver, so the log of a
    job placed on the worker node (its lines, Pipes messages, result line) is read from the head's
    folder; the nodes shared one temp dir before (node_temp_dir), so this is how their logs lay."""
    session = (temp_dir / "session_latest").resolve()
    logs = node_temp_dir("ray_worker", temp_dir) / session.name / "logs"
    if not logs.is_symlink():
        logs.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(logs, ignore_errors=True)
        logs.symlink_to(session / "logs", target_is_directory=True)


def _ray_cmd(role: str, ports: dict[str, int], temp_dir: Path, shift: int = 0) -> list[str]:
    """``ray start --block`` of a node; ``shift`` moves the node's own ports (a replacement node)."""
    head = role == "ray_head"
    prefix = "head" if head else "worker"
    ports = {k: v + shift if k.startswith(prefix) else v for k, v in ports.items()}
    low, high = (p + shift for p in WORKER_PORTS[role])
    base = ports["ray_gcs"]
    cmd = [_bin("ray"), "start", "--block", "--disable-usage-stats", f"--node-ip-address={HOST}",
           "--num-cpus=1", f"--object-store-memory={OBJECT_STORE_BYTES}",
           f"--resources={json.dumps({f'node_{prefix}': 1})}",
           f"--node-manager-port={ports[f'{prefix}_node_manager']}",
           f"--object-manager-port={ports[f'{prefix}_object_manager']}",
           f"--dashboard-agent-listen-port={ports[f'{prefix}_agent_http']}",
           f"--dashboard-agent-grpc-port={ports[f'{prefix}_agent_grpc']}",
           f"--runtime-env-agent-port={ports[f'{prefix}_runtime_env_agent']}",
           f"--metrics-export-port={ports[f'{prefix}_metrics']}",
           f"--min-worker-port={base + low}", f"--max-worker-port={base + high}",
           f"--temp-dir={node_temp_dir(role, temp_dir)}"]
    if head:
        cmd += ["--head", f"--port={ports['ray_gcs']}", "--include-dashboard=true", f"--dashboard-host={HOST}",
                f"--dashboard-port={ports['ray_dashboard']}", f"--ray-client-server-port={ports['ray_client']}"]
    else:
        cmd += [f"--address={HOST}:{ports['ray_gcs']}"]
    return cmd


def _weed_cmd(ports: dict[str, int], data_dir: Path) -> list[str]:
    return [_bin("weed"), "server", f"-dir={data_dir}", f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-master.port={ports['weed_master']}", f"-master.port.grpc={ports['weed_master_grpc']}",
            f"-volume.port={ports['weed_volume']}", f"-volume.port.grpc={ports['weed_volume_grpc']}",
            "-filer", f"-filer.port={ports['weed_filer']}", f"-filer.port.grpc={ports['weed_filer_grpc']}",
            "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",   # on by default (8181, 9101): would collide
            "-master.telemetry=false", "-master.volumeSizeLimitMB=1024", "-volume.max=0",
            "-volume.preStopSeconds=0"]                # default 10 s of heartbeats before stopping


def _mlflow_cmd(ports: dict[str, int], state_dir: Path) -> list[str]:
    return [_bin("mlflow"), "server", "--backend-store-uri", f"sqlite:///{state_dir / 'mlflow.db'}",
            "--artifacts-destination", f"s3://{BUCKET}/mlflow", "--host", HOST, "--port", str(ports["mlflow"]),
            "--workers", "1"]


def _node_env(s3_endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    # A stage job runs the nodes' `python` (factory.raycluster): this interpreter's, first on PATH,
    # so jobs get the environment the nodes run in (the project's venv) without being told.
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
    # Stage code on the Ray nodes reads and writes artifacts in the local S3.
    return {**env, **PROCESS_ENV, **EMBEDDED_RAY_ENV, **s3_env(s3_endpoint)}


def _create_bucket(endpoint: str) -> bool:
    """Create the bucket; False while the S3 gateway does not answer yet (readiness probe)."""
    import boto3
    import botocore.config
    import botocore.exceptions

    config = botocore.config.Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY, region_name=REGION, config=config)
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
        return False
    return True


def status(state_dir: Path | None = None) -> dict[str, Any]:
    """The recorded cluster with, per process, whether it is alive, and ``up``: all alive and answering."""
    state = read_state(state_dir)
    if state is None:
        return {"up": False, "state_dir": str(state_dir or default_state_dir()), "recorded": False}
    alive = {name: _alive(entry) for name, entry in state["processes"].items()}
    a = state["addresses"]
    answering = {
        "dashboard": _http_ok(f"{a['dashboard_url']}/api/version"),
        "s3": _port_open(state["ports"]["s3"]),
        "mlflow": _http_ok(f"{a['mlflow_uri']}/health"),
    }
    up = all(alive.values()) and set(alive) == set(PROCESSES) and all(answering.values())
    return {**state, "recorded": True, "up": up, "alive": alive, "answering": answering}


def up(state_dir: Path | None = None, base: int | None = None, timeout: float = 180.0,
       log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Start the cluster (or report the running one); returns its status (``started``: whether this call did)."""
    state_dir = Path(state_dir or default_state_dir()).resolve()
    current = status(state_dir)
    if current["up"]:
        log(f"cluster already up in {state_dir}")
        return {**current, "started": False}
    if current["recorded"]:
        log("stale cluster record: stopping what is left of it")
        down(state_dir)
    base = port_base() if base is None else base
    ports = ports_for(base)
    busy = [f"{name}={port}" for name, port in ports.items() if not port_free(port)]
    if busy:
        raise RuntimeError(f"ports in use: {', '.join(busy)} (set {PORT_BASE_ENV} to another base)")
    for sub in ("logs", "s3"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    temp_dir = runtime_dir(state_dir)
    temp_dir.mkdir(parents=True, exist_ok=True)
    link = state_dir / "run"
    if temp_dir != link and not link.is_symlink():
        link.symlink_to(temp_dir)

    t0 = time.monotonic()
    deadline = t0 + timeout
    a = addresses(ports)
    state: dict[str, Any] = {"version": 1, "state_dir": str(state_dir), "port_base": base, "ports": ports,
                             "ray_temp_dir": str(temp_dir), "addresses": a, "processes": {}}
    node_env = _node_env(a["s3_endpoint"])
    server_env = {**os.environ, **PROCESS_ENV, **s3_env(a["s3_endpoint"])}
    procs = state["processes"]
    try:
        procs["ray_head"] = _start("ray_head", _ray_cmd("ray_head", ports, temp_dir), state_dir, node_env)
        procs["s3"] = _start("s3", _weed_cmd(ports, state_dir / "s3"), state_dir, server_env)
        procs["mlflow"] = _start("mlflow", _mlflow_cmd(ports, state_dir), state_dir, server_env)
        _write_state(state)  # from here on, down() from another process can stop what was started
        log(f"starting Ray head, SeaweedFS and MLflow (ports from {base}, state in {state_dir})")
        _wait("Ray head", lambda: _port_open(ports["ray_gcs"]) and (temp_dir / "session_latest").exists(),
              [procs["ray_head"]], deadline)
        _share_head_logs(temp_dir)
        procs["ray_worker"] = _start("ray_worker", _ray_cmd("ray_worker", ports, temp_dir), state_dir, node_env)
        _write_state(state)
        _wait("S3", lambda: _create_bucket(a["s3_endpoint"]), [procs["s3"]], deadline)
        log(f"S3 up at {a['s3_endpoint']}, bucket {BUCKET}")
        _wait("MLflow", lambda: _http_ok(f"{a['mlflow_uri']}/health"), [procs["mlflow"]], deadline)
        log(f"MLflow up at {a['mlflow_uri']}")
        _wait("Ray dashboard", lambda: _http_ok(f"{a['dashboard_url']}/api/version"), [procs["ray_head"]], deadline)
        _wait("Ray nodes", lambda: len(_alive_nodes(a["dashboard_url"])) >= 2,
              [procs["ray_head"], procs["ray_worker"]], deadline)
        log(f"Ray up: 2 nodes, jobs at {a['dashboard_url']}, client at {a['ray_address']}")
    except BaseException:
        down(state_dir)
        raise
    state["up_seconds"] = round(time.monotonic() - t0, 1)
    state["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write_state(state)
    return {**status(state_dir), "started": True}


def down(state_dir: Path | None = None, purge: bool = False, timeout: float = 20.0,
         log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Stop every process the cluster started; keep ``s3/``, ``mlflow.db`` and ``logs/`` unless ``purge``.

    Returns seconds taken per process and in all.
    """
    state_dir = Path(state_dir or default_state_dir()).resolve()
    state = read_state(state_dir)
    t0 = time.monotonic()
    taken: dict[str, float] = {}
    if state is not None:
        sids = {name: entry["sid"] for name, entry in state["processes"].items()}
        # The worker node first: with the head's GCS gone its raylet waits for it until killed.
        taken = stop_sessions({n: sids.pop(n) for n in ("ray_worker",) if n in sids}, timeout)
        # Ray's processes end in a few seconds on SIGTERM or not at all (the Ray Client servers):
        # they get RAY_STOP_SECONDS; SeaweedFS gets ``timeout`` for its own 15 s graceful filer stop.
        taken.update(stop_sessions(sids, timeout, {"ray_head": min(timeout, RAY_STOP_SECONDS)}))
        for name, seconds in taken.items():
            log(f"stopped {name} in {seconds} s")
        temp_dir = Path(state["ray_temp_dir"])
    else:
        temp_dir = runtime_dir(state_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)
    link = state_dir / "run"
    if link.is_symlink():
        link.unlink()
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if purge:
        shutil.rmtree(state_dir, ignore_errors=True)
        log(f"removed {state_dir}")
    return {"stopped": taken, "down_seconds": round(time.monotonic() - t0, 1), "purged": purge}


# ---------------------------------------------------------------------------------------------
# Node faults: what tests/cluster/test_fault.py does to the cluster


def raylet_pid(node: str = "ray_worker", state_dir: Path | None = None) -> int:
    """Pid of the raylet of Ray node ``node`` (``ray_head`` or ``ray_worker``): the process named
    ``raylet`` in that node's session. Killing it takes the node down: its ``ray start --block``
    sees the raylet gone, kills the node's other processes and exits; its workers exit within ~1 s."""
    state = read_state(state_dir)
    if state is None:
        raise RuntimeError(f"no local cluster recorded in {state_dir or default_state_dir()}")
    for pid in _session_members(state["processes"][node]["sid"]):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                return pid
        except OSError:
            continue
    raise RuntimeError(f"no raylet in the session of {node}")


def restart_worker_node(state_dir: Path | None = None, timeout: float = 120.0,
                        log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Bring the Ray worker node back after it went down, as a cluster manager replaces a lost node
    (KubeRay restarts a worker pod whose ``ray start --block`` exited): stop what is left of its
    session, start it again on other ports (``REPLACEMENT_PORT_SHIFT``: a new address, as a new pod
    has) and wait until a new node is alive in the GCS. Returns
    the status, with the new process recorded (``status``/``down`` find it) and ``node_id``."""
    state_dir = Path(state_dir or default_state_dir()).resolve()
    state = read_state(state_dir)
    if state is None:
        raise RuntimeError(f"no local cluster recorded in {state_dir}")
    t0 = time.monotonic()
    stop_sessions({"ray_worker": state["processes"]["ray_worker"]["sid"]}, RAY_STOP_SECONDS)
    dashboard = state["addresses"]["dashboard_url"]
    before = _alive_nodes(dashboard)
    shift = 0 if state["processes"]["ray_worker"].get("port_shift") else REPLACEMENT_PORT_SHIFT
    _share_head_logs(Path(state["ray_temp_dir"]))
    cmd = _ray_cmd("ray_worker", state["ports"], Path(state["ray_temp_dir"]), shift)
    entry = {**_start("ray_worker", cmd, state_dir, _node_env(state["addresses"]["s3_endpoint"])), "port_shift": shift}
    state["processes"]["ray_worker"] = entry
    _write_state(state)
    new: set[str] = set()

    def joined() -> bool:
        new.update(_alive_nodes(dashboard) - before)
        return bool(new)

    _wait("Ray worker node", joined, [entry], time.monotonic() + timeout)
    log(f"Ray worker node back in {time.monotonic() - t0:.1f} s as {min(new)}")
    return {**status(state_dir), "node_id": min(new)}
