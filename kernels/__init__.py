"""Triton kernels, each beside its plain-torch reference (recipe: "Infrastructure, Scaling, and
Efficiency"; "Inference", FP8 quantization).

Modules: ``rmsnorm``, ``rope``, ``swiglu`` (forward and backward, as ``torch.autograd.Function``)
and ``fp8`` (row-wise float8_e4m3fn quantize/dequantize). This package imports only torch and
triton. The kernels run on CUDA tensors, or on CPU tensors when ``TRITON_INTERPRET=1`` was set
before a kernel module was imported (Triton decides at decoration time); tests do the latter.
Importing this package itself pulls in nothing heavy.
"""
