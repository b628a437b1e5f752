"""Shared test setup: offline hubs, quiet GE, no Ray auth tokens, one torch thread.

Tests run many tiny forward passes; a second OpenMP thread only spin-waits on them (measured
15-25x slower on a busy 2-core host), so the whole suite uses one intra-op thread.
"""

import os

import torch

torch.set_num_threads(1)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
