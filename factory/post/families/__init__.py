"""Verifiable task families, a module each; ``factory.post.tasks`` registers them."""
