"""The one environment table: applied without overriding a user's own settings."""

import os

from factory.core.environment import PROCESS_ENV, apply_env, training_env


def test_apply_env_keeps_what_the_user_set(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    apply_env()
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert os.environ["TRANSFORMERS_OFFLINE"] == PROCESS_ENV["TRANSFORMERS_OFFLINE"]


def test_training_env_picks_deepspeeds_cpu_accelerator_only_without_a_gpu():
    assert training_env(use_gpu=False)["DS_ACCELERATOR"] == "cpu"
    assert "DS_ACCELERATOR" not in training_env(use_gpu=True)
    assert training_env(use_gpu=True)["TORCH_EXTENSIONS_DIR"].endswith("torch_extensions")
