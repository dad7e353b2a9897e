"""Plots (matplotlib; import pyplot lazily)."""
