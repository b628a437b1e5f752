"""Opt-in converter to the Triton kernels (recipe: "Infrastructure, Scaling, and Efficiency").

As torchtitan's float8 converter does, ``apply_kernels`` swaps modules by config and keeps the
checkpoint layout: each ``RMSNorm`` and ``FeedForward`` becomes a subclass whose ``forward`` calls
the fused kernel, with the same parameters and state-dict keys, so checkpoints load either way.
Kernels need CUDA; on a CPU machine enabling them raises a clear error unless ``emulate`` is set,
which runs them through Triton's interpreter (for tests; requires ``TRITON_INTERPRET=1`` before
the kernel modules are imported). RoPE is applied by ``Attention.forward`` through the module
function ``apply_rope``, so it has no module to swap; ``kernels.rope`` is ready for that hook.
"""

from __future__ import annotations

import torch
from torch import nn

from factory.model.llama import FeedForward, RMSNorm


class KernelRMSNorm(RMSNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kernels.rmsnorm import rmsnorm

        return rmsnorm(x, self.weight, self.eps)


class KernelFeedForward(FeedForward):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kernels.swiglu import swiglu

        return self.w2(swiglu(self.w1(x), self.w3(x)))


_SWAPS: dict[type[nn.Module], type[nn.Module]] = {RMSNorm: KernelRMSNorm, FeedForward: KernelFeedForward}


def apply_kernels(model: nn.Module, enabled: bool, *, emulate: bool = False) -> int:
    """Swap kernel-backed modules into ``model`` in place; returns how many modules were swapped."""
    if not enabled:
        return 0
    _check_backend(emulate)
    swapped = 0
    for module in model.modules():
        kernel_class = _SWAPS.get(type(module))
        if kernel_class is not None:
            # Same attributes and parameters, new forward: the state dict is unchanged.
            module.__class__ = kernel_class
            swapped += 1
    return swapped


def _check_backend(emulate: bool) -> None:
    if emulate:
        from triton.runtime.interpreter import InterpretedFunction

        import kernels.rmsnorm

        if not isinstance(kernels.rmsnorm._rmsnorm_fwd, InterpretedFunction):
            raise RuntimeError(
                "kernel emulation needs Triton's interpreter: set TRITON_INTERPRET=1 in the environment "
                "before the kernels are imported"
            )
    elif not torch.cuda.is_available():
        raise RuntimeError(
            "Triton kernels were enabled but no CUDA device is available; disable them for CPU runs, "
            "or pass emulate=True (with TRITON_INTERPRET=1) to run them through Triton's interpreter"
        )
