"""The foundation every layer may import: the stage contract, file digests and atomic writes, the
process environment of factory workers, and the static import scan with the stage code versions
built on it (see docs/architecture.md, "Layers" and "Code versions")."""
