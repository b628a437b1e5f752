"""The kernel converter: same state dict, same logits and gradients as the eager model."""

import copy

import pytest
import torch

from factory.model.convert import KernelFeedForward, KernelRMSNorm, apply_kernels
from factory.model.flavors import model_args
from factory.model.llama import Transformer


def test_converted_model_matches_eager_forward_and_backward():
    torch.manual_seed(0)
    eager = Transformer(model_args("debug", vocab_size=40))
    fused = copy.deepcopy(eager)
    assert apply_kernels(fused, enabled=True, emulate=True) == 2 * 2 + 1 + 2  # 2 norms/layer, final norm, 2 FFNs
    assert isinstance(fused.norm, KernelRMSNorm) and isinstance(fused.layers[0].feed_forward, KernelFeedForward)
    assert list(fused.state_dict()) == list(eager.state_dict())
    tokens = torch.randint(0, 40, (1, 5))  # few rows: each interpreted program costs ~10 ms
    losses = []
    for model in (eager, fused):
        logits = model(tokens)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten())
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(eager.named_parameters(), fused.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_disabled_is_a_no_op_and_cpu_without_emulation_raises():
    model = Transformer(model_args("debug", vocab_size=40))
    assert apply_kernels(model, enabled=False) == 0
    assert type(model.norm).__name__ == "RMSNorm"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            apply_kernels(model, enabled=True)
