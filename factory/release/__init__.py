"""The release group (recipe: "Inference", "Results"): the quantized release bundle (Hugging Face
export, FP8 row-wise FFN weights, INT8 guard, model card) and the evaluation report over the herd."""
