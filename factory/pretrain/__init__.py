"""The pre-training stages (recipe: "Pre-Training"; docs/architecture.md, "The recipe, stage by
stage"): base, long context, annealing and the domain experts, one module each; ``continued`` holds
what they share. Every stage trains next-token prediction through the one stage training call
(``factory.train.stage_training.train_stage``), with its checkpoints in ``ctx.checkpoint_dir`` so
an interrupted build resumes."""
