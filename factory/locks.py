"""Mutual exclusion per (stage, key) for the artifact store (docs/architecture.md, "Artifacts").

Two materializations of one artifact must not build it side by side: they would share the key's
resumable work folder and the later commit would replace the earlier artifact under a reader. The
store therefore builds a key only while holding its lock; whoever waited then finds the committed
artifact and reuses it.

- ``FileLock`` (local root): ``flock`` on ``<root>/.locks/<stage>/<key>.<purpose>.lock``. The kernel
  drops it when the holder's process dies (SIGKILL included), so a crashed build never blocks the
  next one; threads exclude each other too (each lock opens its own file description). A child
  *forked* while the lock is held shares that description and keeps the lock until it exits too
  (``subprocess`` children do not: the descriptor is not inherited across exec). On a network
  filesystem it is as good as that filesystem's ``flock`` (NFSv4: yes).
- ``LeaseLock`` (object store): a lease object ``{owner, host, pid, ttl}`` at the same path, taken
  with a conditional PUT (``If-None-Match: *``: only one creator wins) and then renewed, handed
  back and stolen with ``If-Match: <ETag>`` (only the writer who saw the current lease wins), so
  two builders never both believe they hold it while the store honours these headers (AWS S3 since
  2024, SeaweedFS: checked by the store tests). A holder renews every ``ttl/3`` seconds from a
  thread; a lease whose last write is older than ``ttl`` (holder killed, or cut off) may be stolen.
  What it cannot promise: a holder stalled longer than ``ttl`` (a frozen VM, a partition) loses
  the lease while still running; it finds out at its next renewal or at ``check()``, which the
  store calls just before committing, and fails there, but files it staged meanwhile are local and
  a commit it had already begun would race the thief's (same key, so the same inputs and code).
  Expiry compares the store's ``LastModified`` with the waiter's clock: clocks must agree to well
  under ``ttl`` (NTP does).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

POLL_SECONDS = 0.2
LEASE_TTL = 60.0


class LockLost(RuntimeError):
    """The holder's lease was taken over by another builder (it stalled past the lease's ttl)."""


def owner_id() -> str:
    """Who holds a lock: host, pid and a nonce (two locks of one process are different owners)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _HeldWhileOpen(ABC):
    """``with lock:`` acquires on entry and releases on exit (both lock kinds)."""

    @abstractmethod
    def acquire(self) -> None:
        """Block until this process holds the lock."""

    @abstractmethod
    def release(self) -> None:
        """Give the lock up (a no-op when not held)."""

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FileLock(_HeldWhileOpen):
    """An exclusive ``flock`` on a local file, waited for by polling (interruptible, logged once)."""

    def __init__(self, path: Path, log: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.owner = owner_id()
        self._log = log
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as err:
                    if err.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if not told and self._log is not None:
                    self._log(f"waiting for {self.path.name}, held by {self.path.read_text().strip() or '?'}")
                    told = True
                time.sleep(POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)  # the holder's name, for the messages of whoever waits
        os.pwrite(fd, self.owner.encode(), 0)
        self._fd = fd

    def check(self) -> None:
        """A flock cannot be lost while its process lives."""

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None



class LeaseLock(_HeldWhileOpen):
    """A lease object on an fsspec object store (``s3fs``), taken and renewed by conditional PUTs."""

    def __init__(self, fs: Any, path: str, log: Callable[[str], None] | None = None, ttl: float = LEASE_TTL):
        self.fs = fs
        self.path = path
        self.ttl = ttl
        self.owner = owner_id()
        self._log = log
        self._etag: str | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self, ttl: float) -> bytes:
        host, pid, _ = self.owner.split(":")
        return json.dumps({"owner": self.owner, "host": host, "pid": int(pid), "ttl": ttl}).encode()

    def _put(self, ttl: float, **condition: str) -> bool:
        """One conditional PUT of our lease; False when the condition did not hold (someone else wrote)."""
        try:
            response = self.fs.pipe_file(self.path, self._body(ttl), **condition)
        except OSError as err:  # s3fs maps 412 PreconditionFailed to EINVAL (or FileExistsError)
            if isinstance(err, FileExistsError) or err.errno == errno.EINVAL:
                return False
            raise
        self._etag = response["ETag"]
        return True

    def _current(self) -> tuple[str, dict[str, Any], float] | None:
        """(ETag, lease, age in seconds) of the lease object, or None when there is none. The ETag is
        read first: a lease rewritten between the two reads then fails the conditional PUT."""
        self.fs.invalidate_cache(self.path)
        try:
            info = self.fs.info(self.path)
            lease = json.loads(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        age = time.time() - info["LastModified"].timestamp()
        return info["ETag"], lease, age

    def acquire(self) -> None:
        told = False
        while True:
            current = self._current()
            if current is None:
                if self._put(self.ttl, mode="create"):
                    break
                continue
            etag, lease, age = current
            if age >= float(lease.get("ttl", self.ttl)):  # expired or handed back (ttl 0): take it over
                if self._put(self.ttl, IfMatch=etag):
                    break
                continue
            if not told and self._log is not None:
                self._log(f"waiting for lease {self.path}, held by {lease.get('owner')}")
                told = True
            time.sleep(POLL_SECONDS)
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name=f"lease-{self.path}", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                renewed = self._put(self.ttl, IfMatch=self._etag)
            except Exception:  # a transient store error: try again at the next tick, the ttl allows two misses
                continue
            if not renewed:
                self._lost.set()
                return

    def check(self) -> None:
        """Raise ``LockLost`` when a renewal found the lease taken over."""
        if self._lost.is_set():
            raise LockLost(f"lease {self.path} was taken over by another builder (this one stalled > {self.ttl}s)")

    def release(self) -> None:
        """Stop renewing and hand the lease back (ttl 0, so the next one takes it at once); a lost
        lease is left to its new holder."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if not self._lost.is_set() and self._etag is not None:
            self._put(0.0, IfMatch=self._etag)
        self._etag = None

