"""Post-training: verifiable tasks, the programmatic annotator, reward model, rejection sampling, SFT, DPO
and averaging."""
