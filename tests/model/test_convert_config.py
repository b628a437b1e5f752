"""The trainer's ``kernels`` switch reaches the converter, which refuses to run without CUDA."""

import functools

import pytest
import torch

from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.train.config import TrainConfig
from factory.train.data import PackedTokens
from factory.train.losses import LanguageModeling
from factory.train.trainer import train


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_kernels_switch_without_cuda_raises_a_clear_error():
    args = model_args("debug", 32, max_seq_len=16)
    data = PackedTokens(torch.arange(200).remainder(31).numpy(), 8, eot_id=31)
    cfg = TrainConfig(steps=1, batch_size=2, lr=1e-3, kernels=True)
    with pytest.raises(RuntimeError, match="CUDA"):
        train(cfg, functools.partial(Transformer, args), LanguageModeling(), data, log=lambda _: None)
