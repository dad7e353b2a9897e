"""Sky maps, all-sky scans and spatial priors."""
