"""Small optimization problems with known optima (used by demos and tests)."""
