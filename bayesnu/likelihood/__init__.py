"""Pure JAX log-likelihoods (one per analysis); see ``docs/design.rst``."""
