"""The foundation every layer may import: the stage contract, file digests and atomic writes, and
the process environment of factory workers (see docs/architecture.md, "Layers")."""
