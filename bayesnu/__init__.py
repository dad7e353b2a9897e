"""bayesnu: Bayesian and frequentist analysis of high-energy neutrino data.

Importing :mod:`bayesnu` switches JAX to 64-bit floats (likelihoods, MAP fits and
test statistics need float64, see ``docs/statistics.rst``) and, unless the user
already configured XLA, exposes several host devices (one per core, at least 4) so that NUTS chains
can run in parallel (``numpyro`` chain_method ``"parallel"``).
"""

from __future__ import annotations

import os as _os


def _configure_host_devices() -> None:
    """Expose several CPU devices to XLA before JAX initialises its backend."""
    if "xla_force_host_platform_device_count" in _os.environ.get("XLA_FLAGS", ""):
        return
    n = _os.environ.get("BAYESNU_HOST_DEVICES")
    count = int(n) if n else max(4, min(_os.cpu_count() or 1, 8))
    flags = _os.environ.get("XLA_FLAGS", "")
    _os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


_configure_host_devices()

import jax as _jax  # noqa: E402

_jax.config.update("jax_enable_x64", True)

from bayesnu.errors import BayesnuError, ConfigError, DataFormatError, FetchError  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BayesnuError",
    "ConfigError",
    "DataFormatError",
    "FetchError",
    "__version__",
]
