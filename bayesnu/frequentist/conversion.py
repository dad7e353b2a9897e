"""Conversion of a signal strength in events (ns) to flux units.

A limit or sensitivity computed in ``ns`` (expected signal events) becomes a flux
through the detector yield of the assumed spectrum at the source position:
:math:`\\Phi_0 = n_s / Y` with :math:`Y` the expected number of events for
:math:`\\Phi_0 = 1\\,\\mathrm{GeV^{-1}\\,cm^{-2}\\,s^{-1}}` at :math:`E_0` (see
:func:`bayesnu.flux.norm_from_ns`), and :math:`E_0^2\\,dN/dE(E_0) = E_0^2\\Phi_0`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bayesnu.errors import ConfigError
from bayesnu.flux import E0_DEFAULT_GEV

__all__ = ["FluxConversion"]


@dataclass(frozen=True)
class FluxConversion:
    """ns -> flux conversion at a reference energy.

    Parameters
    ----------
    ns_per_norm
        Either a number: expected signal events per unit flux normalisation
        :math:`\\Phi_0` [events per GeV^-1 cm^-2 s^-1] (the detector yield), or a callable
        ``ns -> Phi0`` [GeV^-1 cm^-2 s^-1] for conversions that are not linear or not
        a single number (e.g. a yield interpolated elsewhere).
    e0_gev
        Reference energy :math:`E_0` [GeV] at which :math:`\\Phi_0` is quoted.
    """

    ns_per_norm: float | Callable[[np.ndarray], np.ndarray]
    e0_gev: float = E0_DEFAULT_GEV

    def __post_init__(self) -> None:
        if not callable(self.ns_per_norm):
            y = float(self.ns_per_norm)
            if not np.isfinite(y) or y <= 0:
                raise ConfigError(f"ns_per_norm must be a positive number of events per unit flux, got {y}")
        if not self.e0_gev > 0:
            raise ConfigError(f"e0_gev must be positive, got {self.e0_gev}")

    def norm(self, ns: np.ndarray | float) -> np.ndarray:
        """Flux normalisation :math:`\\Phi_0` at ``e0_gev`` [GeV^-1 cm^-2 s^-1]."""
        ns = np.asarray(ns, dtype=float)
        if callable(self.ns_per_norm):
            return np.asarray(self.ns_per_norm(ns), dtype=float)
        return ns / float(self.ns_per_norm)

    def e2dnde(self, ns: np.ndarray | float) -> np.ndarray:
        """:math:`E_0^2\\,dN/dE(E_0)` [GeV cm^-2 s^-1]."""
        return self.e0_gev**2 * self.norm(ns)

    def columns(self, ns: np.ndarray | float, prefix: str = "") -> dict[str, np.ndarray | float]:
        """Flux columns for ``ns``: ``{prefix}phi0_per_gev_cm2_s`` (:math:`\\Phi_0` at
        ``e0_gev``) and ``{prefix}e2dnde_gev_per_cm2_s`` (:math:`E_0^2\\Phi_0`)."""
        return {
            f"{prefix}phi0_per_gev_cm2_s": _scalar(self.norm(ns)),
            f"{prefix}e2dnde_gev_per_cm2_s": _scalar(self.e2dnde(ns)),
        }


def _scalar(x: np.ndarray) -> np.ndarray | float:
    return float(x) if np.ndim(x) == 0 else x
