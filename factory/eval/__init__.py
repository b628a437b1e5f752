"""Measurements on models: validation losses and perplexity, needle-in-a-haystack, guard metrics."""
