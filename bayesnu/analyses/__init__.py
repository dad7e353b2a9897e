"""Analyses: NumPyro models over one JAX likelihood each."""
