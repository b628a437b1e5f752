"""The pre-training stages (recipe: "Pre-Training"): base, long context, annealing and the domain
experts, each a module; ``continued`` holds what they share. Every stage trains through the one
trainer with the ``LanguageModeling`` objective; checkpoints go to the stage's work folder so an
interrupted build resumes."""
