"""Instrument response: effective-area yields, energy and spatial PDFs, interpolants."""
