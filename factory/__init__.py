"""factory: the Llama 3 herd recipe as a reproducible model factory (see docs/architecture.md)."""

__version__ = "0.1.0"
