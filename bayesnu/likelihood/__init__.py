"""Likelihood building blocks (pure JAX)."""
