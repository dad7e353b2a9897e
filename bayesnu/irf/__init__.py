"""Instrument response of the point-source releases in JAX (signal injection, yields, PDFs)."""
