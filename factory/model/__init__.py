"""The Llama 3 model: architecture, named sizes, checkpoint layout, chat format, generation, HF export
(recipe: "Model Architecture")."""
