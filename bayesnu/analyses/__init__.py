"""NumPyro models of the analyses and their user-facing objects."""
