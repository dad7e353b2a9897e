"""Instrument response functions (effective areas, smearing, detector-systematic splines)."""
