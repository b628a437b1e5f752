"""Safety: the hazard taxonomy, Llama Guard and Prompt Guard classifiers, and Code Shield
(recipe: "Safety characteristics")."""
