"""Release: FP8 row-wise and INT8 quantization, the Hugging Face bundle and the model card (recipe: "Inference")."""
