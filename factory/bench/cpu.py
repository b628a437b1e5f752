"""The CPU settings a benchmark times under (one core, a torch thread count), given back afterwards.

``factory bench`` runs each benchmark in the CLI's process, and tests and notebooks call the same
``run`` in theirs: what a benchmark pins must not outlive it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cpu_settings(threads: int | None = None, one_core: bool = False) -> Iterator[None]:
    """Time a benchmark with ``threads`` torch intra-op threads and/or pinned to one core, then restore
    the process's own affinity and thread count. A benchmark runs in-process too (tests, a notebook):
    a pinned affinity left behind with two torch threads makes OpenMP spin-wait on one core (measured:
    a later test's generation 0.07 s -> 27 s)."""
    affinity = os.sched_getaffinity(0) if one_core and hasattr(os, "sched_setaffinity") else None
    previous_threads = None
    if threads is not None:
        import torch  # only here: the extraction benchmark runs without it

        previous_threads = torch.get_num_threads()
    try:
        if affinity is not None:
            os.sched_setaffinity(0, {min(affinity)})
        if threads is not None:
            torch.set_num_threads(threads)
        yield
    finally:
        if previous_threads is not None:
            torch.set_num_threads(previous_threads)
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
