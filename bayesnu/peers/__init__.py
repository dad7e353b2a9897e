"""Drivers of peer packages (SkyLLH, gammapy) for side-by-side comparisons."""
