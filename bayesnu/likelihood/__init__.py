"""Pure JAX likelihood functions, one per analysis."""
