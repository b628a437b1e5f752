"""Shared test setup: offline hubs, quiet GE, no Ray auth tokens, one torch thread.

Tests run many tiny forward passes; a second OpenMP thread only spin-waits on them (measured
15-25x slower on a busy 2-core host), so the whole suite uses one intra-op thread.
"""

import torch

from factory.core.environment import EMBEDDED_RAY_ENV, PROCESS_ENV, apply_env

torch.set_num_threads(1)
apply_env({**PROCESS_ENV, **EMBEDDED_RAY_ENV})
