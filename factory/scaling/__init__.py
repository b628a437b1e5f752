"""Scaling laws: the IsoFLOP grid, compute-optimal fits and the two-stage benchmark forecast
(recipe: "Scaling Laws")."""
