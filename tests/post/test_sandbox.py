"""The sandbox: hostile programs are contained (the effect they aim at does not happen), score 0 and
leave the caller running; honest programs score the fraction of tests they pass; no isolation, no run."""

import logging
import os
import secrets
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from factory.post import sandbox
from factory.post.sandbox import parse_test, run_python, score_code

needs_isolation = pytest.mark.skipif(sandbox.isolation_error() is not None,
                                     reason=f"no isolation here: {sandbox.isolation_error()}")

TESTS = ["assert f(0) == 7", "assert f(3) == 10", "assert f(-4) == 3", "assert f(10) == 17"]
CORRECT = "def f(x):\n    return x + 7\n"


@pytest.fixture
def run_dirs(tmp_path, monkeypatch):
    """The parent folder of the runs' temporary folders (to show each is removed)."""
    parent = tmp_path / "runs"
    parent.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(parent))
    return parent


def _processes_with(marker: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and marker.encode() in (d / "cmdline").read_bytes():
                found.append(int(d.name))
        except OSError:
            pass
    return found


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@needs_isolation
def test_honest_programs_score_the_fraction_of_tests_passed(run_dirs):
    assert score_code(CORRECT, TESTS) == 1.0
    assert score_code("def f(x):\n    return x + 7 if x > 0 else x\n", TESTS) == 0.5  # f(0), f(-4) fail
    assert score_code("def f(x):\n    return x\n", TESTS) == 0.0
    assert score_code("def f(x) return", TESTS) == 0.0  # does not parse
    assert score_code("def f(s):\n    return [s, {'k': (s, None)}]\n", ["assert f(2) == [2, {'k': (2, None)}]"]) == 1.0
    assert list(run_dirs.iterdir()) == []


@needs_isolation
def test_run_python_gets_stdin_an_empty_environment_and_a_private_work_folder(run_dirs):
    r = run_python("import os, sys\nopen('note', 'w').write(sys.stdin.read().upper())\n"
                   "print(open('note').read(), os.getcwd(), sorted(set(os.environ) - {'LC_CTYPE'}))", stdin="hello")
    assert r.completed and r.returncode == 0
    # LC_CTYPE may be the interpreter's own C-locale coercion (PEP 538); nothing else is set
    assert r.stdout == "HELLO /work []\n"
    assert list(run_dirs.iterdir()) == []


@needs_isolation
def test_fork_bomb_is_capped_and_leaves_no_process(run_dirs):
    marker = f"30.{secrets.randbelow(10**6):06d}"  # sleep's argument, to find its processes
    bomb = ("import os\nwhile True:\n    if os.fork() == 0:\n        os.setsid()\n"
            f"        os.execv('/usr/bin/sleep', ['sleep', '{marker}'])\n")
    r = run_python(bomb, timeout_s=2)
    assert not r.completed and not r.timed_out and "BlockingIOError" in r.stderr  # RLIMIT_NPROC stopped it
    assert score_code(bomb + CORRECT, TESTS) == 0.0
    escaped = _processes_with(marker)
    for pid in escaped:  # only if containment broke: do not leave them behind
        os.kill(pid, signal.SIGKILL)
    assert _group_gone(r.pgid) and escaped == []  # setsid'd children went with the namespace
    assert list(run_dirs.iterdir()) == []


@needs_isolation
def test_memory_bomb_fails_inside_the_run():
    bomb = "blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 24))\n"
    r = run_python(bomb, memory_mb=128, timeout_s=2)
    assert not r.completed and not r.timed_out and "MemoryError" in r.stderr
    assert score_code(CORRECT + bomb, TESTS, memory_mb=128) == 0.0


@needs_isolation
def test_infinite_loop_times_out_and_its_group_is_killed():
    r = run_python("while True:\n    pass\n", timeout_s=0.5)
    assert r.timed_out and not r.completed and _group_gone(r.pgid)
    assert r.wall_ms < 3000
    assert score_code("def f(x):\n    while True:\n        pass\n", TESTS, timeout_s=0.5) == 0.0


@needs_isolation
def test_no_network_reaches_a_listener_on_the_hosts_loopback():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'x')\n"
        r = run_python(program)
        assert not r.completed and "Network is unreachable" in r.stderr
        assert score_code(program + CORRECT, TESTS) == 0.0
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected


@needs_isolation
def test_writes_outside_the_work_folder_do_not_happen(tmp_path):
    outside = tmp_path / "outside.txt"
    usr_probe = Path(f"/usr/factory-sandbox-probe-{secrets.token_hex(4)}")
    program = (f"import errno\nfor path in ({str(outside)!r}, {str(usr_probe)!r}, '/escape.txt'):\n"
               "    try:\n        open(path, 'w').write('x')\n        print('wrote', path)\n"
               "    except OSError as e:\n        print(errno.errorcode[e.errno])\n")
    r = run_python(program)
    # the caller's folder is not in the view; the rest of the view is read-only
    assert r.completed and r.stdout.split() == ["ENOENT", "EROFS", "EROFS"]
    assert not outside.exists() and not usr_probe.exists() and list(tmp_path.iterdir()) == []
    write = f"open({str(outside)!r}, 'w').write('x')\n" + CORRECT
    assert score_code(write, TESTS) == 0.0 and not outside.exists()


@needs_isolation
def test_the_callers_environment_secret_never_reaches_the_program(monkeypatch):
    secret = secrets.token_hex(16)
    monkeypatch.setenv("FACTORY_SANDBOX_SECRET", secret)
    program = ("import os\nprint(dict(os.environ))\n"
               "for pid in [p for p in os.listdir('/proc') if p.isdigit()] + " f"['{os.getpid()}']:\n"
               "    try:\n        print(open(f'/proc/{pid}/environ').read())\n"
               "    except OSError as e:\n        print(pid, type(e).__name__)\n")
    r = run_python(program)
    assert r.completed and secret not in r.stdout + r.stderr
    assert f"{os.getpid()} FileNotFoundError" in r.stdout  # the caller's /proc entry is not in the view
    leak = "import os\nSECRET = os.environ['FACTORY_SANDBOX_SECRET']\n" + CORRECT
    assert score_code(leak, TESTS) == 0.0


@needs_isolation
def test_printing_the_pass_count_then_exiting_scores_zero():
    for exit_call in ("import os\nos._exit(0)", "import sys\nsys.exit(0)", "raise SystemExit(0)"):
        program = f"def f(x):\n    return 0\nprint(4, 4)\nprint('4/4 passed', flush=True)\n{exit_call}\n"
        r = run_python(program)
        assert r.returncode == 0 and r.stdout.startswith("4 4") and not r.completed
        assert score_code(program, TESTS) == 0.0, exit_call


@needs_isolation
def test_killing_the_caller_or_another_process_fails():
    victim = subprocess.Popen(["sleep", "30"])
    try:
        program = (f"import os, signal\nfor pid in ({os.getpid()}, {victim.pid}, os.getppid()):\n"
                   "    try:\n        os.kill(pid, signal.SIGKILL)\n        print(pid, 'sent')\n"
                   "    except OSError as e:\n        print(pid, type(e).__name__)\n"
                   "print('still here as pid', os.getpid())\n")
        r = run_python(program)
        # outside pids do not exist in the PID namespace; getppid() is 0 there, and kill(0) reaches only
        # the sandbox's own group, whose first process (pid 1 of the namespace) ignores it
        assert r.completed and r.stdout.splitlines() == [
            f"{os.getpid()} ProcessLookupError", f"{victim.pid} ProcessLookupError", "0 sent", "still here as pid 1"]
        kill_caller = f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)\n" + CORRECT
        assert score_code(kill_caller, TESTS) == 0.0
        assert victim.poll() is None  # the victim and this process are alive
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()


@needs_isolation
def test_redefining_the_harness_or_forging_its_record_scores_zero():
    # Finds the harness's job (nonce included) in memory, rebinds what a harness would use, writes a
    # well-formed record claiming values to every descriptor and exits: the record is accepted, but
    # the expected values never entered the sandbox, so its claims fail the caller's comparison.
    forger = """
import builtins, gc, json, os, sys
job = next(o for o in gc.get_objects() if isinstance(o, dict) and 'nonce' in o and 'calls' in o)
builtins.eval = lambda *a, **k: 7
builtins.repr = lambda v: '7'
os.write = lambda fd, data: len(data)
sys.modules['__main__'].__dict__.clear()
record = (job['nonce'] + '\\n' + json.dumps(['True'] * len(job['calls']))).encode()
for fd in [int(n) for n in os.listdir('/proc/self/fd') if int(n) > 2]:  # wherever the caller's channel landed
    try:
        os.lseek(fd, 0, 0)
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
    except OSError:
        pass
os._exit(0)
"""
    forged = sandbox._run("def f(x):\n    return 0\n" + forger, ["f(0)", "f(3)"], "", 2.0, 256)
    assert forged.values == ["True", "True"]  # the forged record itself was well-formed and accepted
    assert score_code("def f(x):\n    return 0\n" + forger, TESTS) == 0.0
    always_equal = ("class Anything:\n    def __eq__(self, other):\n        return True\n\n"
                    "def f(x):\n    return Anything()\n")
    assert score_code(always_equal, TESTS) == 0.0
    # the harness's own evaluation is untouched by a program that rebinds builtins and then returns
    rebinds = "import builtins\nbuiltins.eval = lambda *a, **k: 7\nbuiltins.repr = lambda v: '7'\n" + CORRECT
    assert score_code(rebinds, TESTS) == 1.0


def test_code_shield_blocks_before_running(tmp_path):
    marker = tmp_path / "ran"
    insecure = f"import os\npath = {str(marker)!r}\nos.system('touch ' + path)\n" + CORRECT
    assert score_code(insecure, TESTS) == 0.0 and not marker.exists()


def test_tests_must_compare_an_expression_with_a_literal():
    assert parse_test("assert f('a') == 'aaa'") == ("f('a')", "aaa")
    for bad in ("f(1) == 2", "assert f(1) < 2", "assert f(1) == g(2)"):
        with pytest.raises(ValueError):
            parse_test(bad)


def test_without_isolation_nothing_runs_and_everything_scores_zero(monkeypatch, tmp_path, caplog):
    sandbox.isolation_error.cache_clear()
    monkeypatch.setattr(sandbox, "_TOOLS", (*sandbox._TOOLS, "no-such-isolation-tool"))
    try:
        with caplog.at_level(logging.ERROR, logger="factory.post.sandbox"):
            marker = tmp_path / "ran"
            r = run_python(f"open({str(marker)!r}, 'w')")
            assert score_code(CORRECT, TESTS) == 0.0
        assert r.refused and "no-such-isolation-tool" in r.refused and not r.completed and not marker.exists()
        assert len([m for m in caplog.messages if "will not run" in m]) == 1  # logged once
    finally:
        sandbox.isolation_error.cache_clear()
