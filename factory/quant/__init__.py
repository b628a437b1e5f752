"""Quantized weight formats (recipe: "Inference"): FP8 row-wise and INT8, with the one loader of both."""
