"""Evaluation: perplexity, needle-in-a-haystack, held-out task accuracy, guard metrics and the final report."""
