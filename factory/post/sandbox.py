"""The sandbox that model-written Python runs in, and the unit-test scorer built on it (recipe:
"Capabilities/Code" — execution feedback; the project's rule: model-written code never runs in a
bare subprocess).

``run_python(code, stdin=, timeout_s=, memory_mb=)`` runs one program; ``score_code(code, tests)``
is the fraction of ``assert <expression> == <literal>`` tests it passes, after Code Shield
(``factory.core.insecure_code``) has scanned it: a blocked program scores 0 without running.

How one run is isolated (Linux, util-linux ``unshare``/``mount``/``chroot``/``setpriv``):

- **Namespaces.** ``unshare --user --net --mount --pid --fork --kill-child``: a new network
  namespace holds only a loopback that is down, so no socket reaches the host, its 127.0.0.1 or
  the network (connect fails with ENETUNREACH); a new PID namespace, so the program sees and
  signals only its own processes (``os.getppid()`` is 0, the caller's pid does not exist there,
  ``kill(-1)`` reaches only the sandbox) and, when its first process (the harness) ends, the
  kernel kills every process left in it. The program's uid: a non-root caller maps itself to the
  namespace's root (``--map-root-user``); a root caller writes the maps itself and the program
  runs as the namespace's uid 1 = host ``nobody``, because the kernel never applies
  RLIMIT_NPROC to host root (a fork bomb would be unbounded) and host-root-owned files would be
  the program's own.
- **Filesystem.** In the new mount namespace the program is ``chroot``ed into a read-only tmpfs
  holding read-only bind mounts of ``/usr``, the interpreter's prefix and ``/etc/ld.so.cache``,
  ``/dev/{null,zero,random,urandom}``, its own ``/proc`` and a 16 MiB tmpfs ``/work`` (its cwd):
  nothing else of the host exists in its view, so no path the caller owns can be read or written,
  and what it writes in ``/work`` disappears with the namespace.
- **Privileges.** ``setpriv --no-new-privs --bounding-set=-all --inh-caps=-all`` + ``noroot``
  securebits before the interpreter starts: the program holds no capability even in its own
  namespaces (it cannot remount, chroot out or unshare again; the kernel refuses a new user
  namespace to a chrooted process anyway).
- **Limits** (set by the harness before the program's first line): CPU seconds, address space
  (``memory_mb``), processes, file size (also caps stdout/stderr, which go to files), open files,
  no core files. The caller's wall-clock timeout kills the process group.
- **Environment.** Empty: the caller's environment variables never reach the program.
- **Process lifetime.** Its own session and process group (``start_new_session``); at the end
  (exit or timeout) the namespace's first process is SIGKILLed, which kills the whole PID
  namespace (setsid'd descendants included), then the group; nothing outlives the call.
- **The result.** The harness (trusted code, run before the program) reads its job from a file
  descriptor the caller opened, closes it, runs the program, evaluates each test's left-hand
  side, and writes one record ``<per-run nonce>\\n<JSON list of reprs>`` to a second descriptor,
  a file of the caller's outside the sandbox's view, then ``os._exit(0)``. The caller accepts the
  run only with exit status 0 and exactly that record; any other exit (``sys.exit``,
  ``os._exit``, a signal, a timeout, a crash, garbage on the descriptor) scores 0 for every test.
  The nonce ties the record to this run; it is not a secret from the program (same process). What
  makes a pass unforgeable is that **the expected values never enter the sandbox**: the caller
  compares each returned value with the test's literal itself, so a program that prints a pass
  count, redefines the harness's functions or ``builtins``, or writes its own record can only
  "pass" a test by producing its expected value — which is solving it. A value counts only when
  it is built of exact ``int/float/complex/bool/str/bytes/None/list/tuple/dict/set`` objects, so
  an object whose ``__eq__`` always answers True passes nothing.

Where this holds: Linux with user namespaces open to this user: root with its usual
capabilities, as here and in a privileged container; non-root where ``kernel.
unprivileged_userns_clone`` / ``user.max_user_namespaces`` allow it and no AppArmor (Ubuntu 24.04's
``apparmor_restrict_unprivileged_userns``) or seccomp profile (Docker's default, for a container
without CAP_SYS_ADMIN) forbids ``unshare(CLONE_NEWUSER)``. A Ray worker inherits its node's
answer. The first run in a process probes it; where isolation is unavailable every run is refused
(``SandboxResult.refused`` says why, logged once as an error) and scores 0: the sandbox fails
closed and never runs a program unisolated.

Cost: ~70-130 ms a run here (2 loaded cores; a bare ``python -I -S`` is ~10-20 ms), mostly the
setup's ~15 short-lived processes; the Code Shield scan adds ~1 ms a snippet once bandit is loaded.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from factory.core.insecure_code import CodeShieldPolicy, scan

log = logging.getLogger(__name__)

OUTPUT_CAP = 64 * 1024  # bytes of stdout/stderr kept per stream
FILE_LIMIT = 1 << 20  # RLIMIT_FSIZE: largest file (stdout and stderr included) a run may write
VALUE_CAP = 10_000  # longest repr of one test value the harness reports (a longer one fails)
MAX_PROCESSES = 16  # RLIMIT_NPROC inside the run's user namespace
MAX_OPEN_FILES = 64
_TOOLS = ("unshare", "mount", "chroot", "setpriv", "sh", "env")
_TOOL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # the system's tools only, whatever the caller's PATH
_RUN_ID = 1  # the program's uid and gid inside the namespace when the caller is root ...
_NOBODY = 65534  # ... and what they are on the host

# Runs as root of the new user namespace, before any model-written code: wait until the caller has
# written the uid/gid maps (a newline on stdin), build the read-only view, chroot into it, drop to the
# run's uid and every capability. $1 = run folder, $2 = interpreter prefix, $3 = the run's uid and gid
# inside the namespace, rest = command. Each mount/chroot is its own exec after the maps exist, so it
# gets the namespace root's capabilities even though this shell started unmapped.
_SETUP = r"""
set -eu
read -r _
T="$1"; PREFIX="$2"; RUNID="$3"; shift 3
exec <"$T/stdin"
R="$T/root"
mount -t tmpfs -o size=1m,mode=0755 sbx-root "$R"
mkdir -p "$R/usr" "$R/proc" "$R/dev" "$R/work" "$R/etc" "$R$PREFIX"
touch "$R/etc/ld.so.cache" "$R/dev/null" "$R/dev/zero" "$R/dev/random" "$R/dev/urandom"
for d in bin lib lib64 sbin; do  # merged-/usr links, or the directories themselves read-only
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$R/$d"
  elif [ -d "/$d" ]; then mkdir "$R/$d"; mount --bind -o ro "/$d" "$R/$d"; fi
done
mount --bind -o ro /usr "$R/usr"
[ "$PREFIX" = /usr ] || mount --bind -o ro "$PREFIX" "$R$PREFIX"
mount --bind -o ro /etc/ld.so.cache "$R/etc/ld.so.cache"
for n in null zero random urandom; do mount --bind "/dev/$n" "$R/dev/$n"; done
mount -t tmpfs -o "size=16m,mode=0700,uid=$RUNID,gid=$RUNID,nosuid,nodev" sbx-work "$R/work"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -o remount,ro,bind "$R"
if [ "$RUNID" = 0 ]; then DROP=""; else DROP="--reuid=$RUNID --regid=$RUNID --clear-groups"; fi
exec chroot "$R" /usr/bin/setpriv $DROP --no-new-privs --bounding-set=-all --inh-caps=-all \
  --securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked /usr/bin/env -i "$@"
"""

# The trusted part of the sandboxed process. Everything it needs after the program runs is bound
# to locals of _harness before the program's first line, so rebinding builtins, os.write or json
# in the program changes nothing here (and a forged record gains nothing: see the docstring).
_HARNESS = r"""
import builtins, json, os, resource, sys

def _harness():
    in_fd, out_fd, cpu_s, mem_mb, fsize, nproc, nofile, value_cap = map(int, sys.argv[1:9])
    for lim, v in ((resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_AS, mem_mb << 20),
                   (resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_NPROC, nproc),
                   (resource.RLIMIT_NOFILE, nofile), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(lim, (v, v))
    with os.fdopen(in_fd, "rb") as f:
        job = json.loads(f.read())
    write, exit_, dumps, eval_, exec_, compile_, repr_, type_ = (
        os.write, os._exit, json.dumps, eval, exec, compile, repr, type)
    atoms = (int, float, complex, bool, str, bytes, type(None))
    seqs = (list, tuple, set)

    def plain(v, depth=0):
        t = type_(v)
        if t in atoms:
            return True
        if depth > 20:
            return False
        if t in seqs:
            return all(plain(x, depth + 1) for x in v)
        if t is dict:
            return all(plain(k, depth + 1) and plain(x, depth + 1) for k, x in v.items())
        return False

    def value(expr, g):
        try:
            v = eval_(expr, g)
            text = repr_(v) if plain(v) else None
            return text if text is not None and len(text) <= value_cap else None  # never a cut repr
        except Exception:
            return None

    nonce, calls = job["nonce"], job["calls"]
    os.chdir("/work")
    g = {"__name__": "__main__", "__builtins__": builtins}
    exec_(compile_(job["code"], "<program>", "exec"), g)
    record = (nonce + "\n" + dumps([value(c, g) for c in calls])).encode()
    while record:
        record = record[write(out_fd, record):]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    exit_(0)

_harness()
"""


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run left behind. ``values`` is the harness's record (one repr or None per
    test expression) and is None unless the run ended the one accepted way."""

    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    values: list[str | None] | None
    wall_ms: float
    pgid: int | None  # the run's process group (all killed when the run returns)
    refused: str | None = None  # why the run did not start (isolation unavailable)

    @property
    def completed(self) -> bool:
        return self.values is not None


def _interpreter() -> tuple[str, str]:
    """(interpreter, prefix to mount): the base binary behind a venv, and the prefix holding its stdlib."""
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    prefix = os.path.realpath(sys.base_prefix)
    if not exe.startswith(prefix + os.sep):
        raise RuntimeError(f"interpreter {exe} lies outside its prefix {prefix}")
    return exe, "/usr" if prefix.startswith("/usr/") or prefix == "/usr" else prefix


def _map_ids(pid: int, timeout_s: float = 5.0) -> None:
    """Write the user namespace's maps of a root caller: namespace root is host root (so the setup
    can bind the interpreter from under a root-only home) and the run's uid is host ``nobody``.

    Why not ``--map-root-user`` as for other callers: the kernel never applies RLIMIT_NPROC to host
    root, so a program running as host root could fork without bound."""
    own = os.readlink("/proc/self/ns/user")
    deadline = time.monotonic() + timeout_s
    while os.readlink(f"/proc/{pid}/ns/user") == own:  # unshare(2) not done yet
        if time.monotonic() > deadline:
            raise OSError(f"process {pid} did not enter a new user namespace")
        time.sleep(0.0005)
    for kind in ("uid_map", "gid_map"):
        Path(f"/proc/{pid}/{kind}").write_text(f"0 0 1\n{_RUN_ID} {_NOBODY} 1\n")


def _stop(proc: subprocess.Popen) -> None:
    """End a run and every process it made. SIGKILL to the namespace's first process (unshare's
    child) makes the kernel kill the rest of the PID namespace and unshare reap it all, so no
    zombie is orphaned; then the group (unshare, and anything else still in it) is killed too."""
    if proc.poll() is None:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            try:
                os.kill(int(child), signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _read_capped(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(OUTPUT_CAP)


def _parse_record(raw: bytes, nonce: str, n: int) -> list[str | None] | None:
    head, sep, body = raw.partition(b"\n")
    if not sep or head != nonce.encode():
        return None
    try:
        values = json.loads(body)
    except ValueError:
        return None
    ok = isinstance(values, list) and len(values) == n and all(v is None or isinstance(v, str) for v in values)
    return values if ok else None


def _execute(code: str, calls: Sequence[str], stdin: str, timeout_s: float, memory_mb: int) -> SandboxResult:
    exe, prefix = _interpreter()
    nonce = secrets.token_hex(16)
    run_dir = Path(tempfile.mkdtemp(prefix="factory-sandbox-"))
    start = time.perf_counter()
    pgid = None
    try:
        (run_dir / "root").mkdir()
        (run_dir / "job.json").write_text(json.dumps({"nonce": nonce, "code": code, "calls": list(calls)}))
        (run_dir / "stdin").write_text(stdin)  # the setup reads it as the program's stdin
        job_fd = os.open(run_dir / "job.json", os.O_RDONLY)
        out_fd = os.open(run_dir / "result", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        cpu_s = max(1, int(timeout_s + 0.999))
        as_root = os.geteuid() == 0
        argv = ["unshare", "--user", "--net", "--mount", "--pid", "--fork", "--kill-child",
                *([] if as_root else ["--map-root-user"]),
                "sh", "-c", _SETUP, "sandbox-setup", str(run_dir), prefix, str(_RUN_ID if as_root else 0),
                exe, "-I", "-S", "-B", "-c", _HARNESS, str(job_fd), str(out_fd), str(cpu_s), str(memory_mb),
                str(FILE_LIMIT), str(MAX_PROCESSES), str(MAX_OPEN_FILES), str(VALUE_CAP)]
        try:
            with open(run_dir / "stdout", "wb") as fout, open(run_dir / "stderr", "wb") as ferr:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=fout, stderr=ferr,
                                        env={"PATH": _TOOL_PATH}, cwd=run_dir,
                                        pass_fds=(job_fd, out_fd), start_new_session=True)
        finally:
            os.close(job_fd)
            os.close(out_fd)
        try:
            if as_root:
                _map_ids(proc.pid)
            proc.stdin.write(b"\n")  # the setup waits for this before its first mount
        except OSError:
            pass  # no maps, or the setup died early: it reads EOF and ends without a record
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
        pgid = proc.pid  # start_new_session: the leader's pid is the group id
        timed_out = False
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _stop(proc)
        values = None if timed_out or proc.returncode != 0 else _parse_record(
            _read_capped(run_dir / "result"), nonce, len(calls))
        return SandboxResult(
            returncode=None if timed_out else proc.returncode, timed_out=timed_out,
            stdout=_read_capped(run_dir / "stdout").decode(errors="replace"),
            stderr=_read_capped(run_dir / "stderr").decode(errors="replace"),
            values=values, wall_ms=(time.perf_counter() - start) * 1000, pgid=pgid)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@cache
def isolation_error() -> str | None:
    """Why sandboxed runs are refused here (None: they are isolated). Probed once per process."""
    if not sys.platform.startswith("linux"):
        reason = f"the sandbox needs Linux namespaces; this is {sys.platform}"
    elif missing := [t for t in _TOOLS if shutil.which(t, path=_TOOL_PATH) is None]:
        reason = f"the sandbox needs util-linux tools missing here: {', '.join(missing)}"
    else:
        try:
            probe = _execute("", ["6 * 7"], "", 10.0, 256)
        except (OSError, RuntimeError) as e:
            reason = f"isolation unavailable: {e}"
        else:
            reason = None if probe.values == ["42"] else (
                f"isolation unavailable (unshare of user/net/mount/pid namespaces failed, exit {probe.returncode}): "
                f"{probe.stderr.strip()[-500:]}")
    if reason:
        log.error("model-written code will not run (every sandboxed run scores 0): %s", reason)
    return reason


def _run(code: str, calls: Sequence[str], stdin: str, timeout_s: float, memory_mb: int) -> SandboxResult:
    reason = isolation_error()
    if reason:
        return SandboxResult(None, False, "", "", None, 0.0, None, refused=reason)
    return _execute(code, calls, stdin, timeout_s, memory_mb)


def run_python(code: str, *, stdin: str = "", timeout_s: float = 2.0, memory_mb: int = 256) -> SandboxResult:
    """Run one Python program in the sandbox; ``completed`` when it ran to its end."""
    return _run(code, [], stdin, timeout_s, memory_mb)


def parse_test(test: str) -> tuple[str, Any]:
    """``assert <expression> == <literal>`` -> (expression source, expected value)."""
    tree = ast.parse(test)
    stmt = tree.body[0] if len(tree.body) == 1 else None
    if not (isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Compare) and len(stmt.test.ops) == 1
            and isinstance(stmt.test.ops[0], ast.Eq)):
        raise ValueError(f"a test is one `assert <expression> == <literal>`: {test!r}")
    return ast.unparse(stmt.test.left), ast.literal_eval(stmt.test.comparators[0])


def _passes(value: str | None, expected: Any) -> bool:
    if value is None:
        return False
    try:
        return bool(ast.literal_eval(value) == expected)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def score_code(code: str, tests: Sequence[str], *, timeout_s: float = 2.0, memory_mb: int = 256,
               policy: CodeShieldPolicy | None = None) -> float:
    """Fraction of ``tests`` (``assert <expression> == <literal>``) that ``code`` passes in the
    sandbox. A syntax error, a Code Shield block, a timeout, a crash, any exit but the harness's
    and a refused run score 0; an expression that raises or returns a non-plain value fails its test."""
    parsed = [parse_test(t) for t in tests]
    if not parsed:
        raise ValueError("score_code needs at least one test")
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return 0.0
    if scan(code, policy).verdict == "block":
        return 0.0
    run = _run(code, [expr for expr, _ in parsed], "", timeout_s, memory_mb)
    if run.values is None:
        return 0.0
    return sum(_passes(v, want) for v, (_, want) in zip(run.values, parsed, strict=True)) / len(parsed)
