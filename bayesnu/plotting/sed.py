r"""SED plot: flux points in :math:`E^2\,dN/dE` with model bands.

:func:`plot_sed` draws a flux-point table of :func:`bayesnu.frequentist.flux_points.estimate_flux_points`
(or any table with ``e_ref``, ``e_min``, ``e_max``, ``e2dnde`` and its ``errn``/``errp``/``ul``
columns), upper limits as arrows where ``is_ul``, and any number of
:class:`SpectrumBand` s: the fitted model with its uncertainty
(:func:`band_from_covariance`) and the posterior band of a NumPyro fit
(:func:`band_from_samples`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SpectrumBand", "band_from_covariance", "band_from_samples", "plot_sed"]

DndeFn = Callable[[np.ndarray, Mapping[str, float]], np.ndarray]


@dataclass(frozen=True)
class SpectrumBand:
    """A band of :math:`E^2\\,dN/dE` [GeV cm^-2 s^-1] versus energy [GeV].

    ``low``/``high`` bound the central ``cl`` interval of the spectra at each energy;
    ``mid`` is the median.
    """

    energy_gev: np.ndarray
    low: np.ndarray
    mid: np.ndarray
    high: np.ndarray
    cl: float
    label: str


def band_from_samples(
    energy_gev: np.ndarray,
    dnde: DndeFn,
    samples: Mapping[str, Any],
    *,
    cl: float = 0.6826894921370859,
    max_samples: int = 2000,
    seed: int = 0,
    label: str = "posterior",
) -> SpectrumBand:
    """Pointwise ``cl`` band of :math:`E^2 dN/dE` over parameter samples.

    Parameters
    ----------
    energy_gev
        Energies [GeV].
    dnde
        ``dnde(energy_gev, params) -> dN/dE`` [GeV^-1 cm^-2 s^-1] for one parameter set
        (a dict of floats, e.g. ``{"norm": ..., "gamma": ...}``).
    samples
        ``name -> array`` of samples (e.g. an ArviZ posterior group; chains are flattened).
    cl
        Central probability of the band.
    max_samples
        At most this many samples are used (a seeded random subset).
    seed
        Seed of the subset.
    label
        Legend label.
    """
    e = np.asarray(energy_gev, dtype=float)
    flat = {k: np.asarray(getattr(v, "values", v), dtype=float).ravel() for k, v in samples.items()}
    n = min(len(v) for v in flat.values())
    idx = np.arange(n)
    if n > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))
    curves = np.stack([e**2 * np.asarray(dnde(e, {k: float(v[i]) for k, v in flat.items()})) for i in idx])
    q = [(1 - cl) / 2, 0.5, (1 + cl) / 2]
    lo, mid, hi = np.quantile(curves, q, axis=0)
    return SpectrumBand(e, lo, mid, hi, cl, label)


def band_from_covariance(
    energy_gev: np.ndarray,
    dnde: DndeFn,
    best: Mapping[str, float],
    cov: np.ndarray,
    *,
    cl: float = 0.6826894921370859,
    n_draws: int = 1000,
    seed: int = 0,
    label: str = "best fit",
) -> SpectrumBand:
    """Band of the fitted model: parameters drawn from a Gaussian (best fit, covariance).

    ``cov`` is ordered like ``best``'s keys. The middle line is the best-fit model.
    """
    names = list(best)
    mean = np.array([best[k] for k in names], dtype=float)
    draws = np.random.default_rng(seed).multivariate_normal(mean, np.asarray(cov, dtype=float), size=n_draws)
    band = band_from_samples(
        energy_gev,
        dnde,
        {k: draws[:, i] for i, k in enumerate(names)},
        cl=cl,
        max_samples=n_draws,
        label=label,
    )
    e = np.asarray(energy_gev, dtype=float)
    return SpectrumBand(e, band.low, e**2 * np.asarray(dnde(e, dict(best))), band.high, cl, label)


def plot_sed(
    table: Any,
    *,
    ax: Any = None,
    bands: Sequence[SpectrumBand] = (),
    label: str = "flux points",
    color: str | None = None,
) -> Any:
    """Plot flux points as :math:`E^2 dN/dE` [GeV cm^-2 s^-1] versus energy [GeV].

    Parameters
    ----------
    table
        Flux-point table (astropy ``Table`` with ``e_ref``, ``e_min``, ``e_max``,
        ``e2dnde``, ``e2dnde_errn``, ``e2dnde_errp``, ``e2dnde_ul`` and optionally
        ``is_ul``; units converted to GeV and GeV cm^-2 s^-1 when present).
    ax
        Matplotlib axes (default: a new figure).
    bands
        Model bands drawn below the points (fitted model, posterior, ...).
    label, color
        Legend label and colour of the points.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.4))

    def col(name: str, unit: str) -> np.ndarray:
        c = table[name]
        if getattr(c, "unit", None) is not None:
            return np.asarray(c.quantity.to_value(unit), dtype=float)
        return np.asarray(c, dtype=float)

    e_ref, e_min, e_max = col("e_ref", "GeV"), col("e_min", "GeV"), col("e_max", "GeV")
    flux_u = "GeV cm-2 s-1"
    y = col("e2dnde", flux_u)
    yn, yp = col("e2dnde_errn", flux_u), col("e2dnde_errp", flux_u)
    ul = col("e2dnde_ul", flux_u) if "e2dnde_ul" in table.colnames else np.full_like(y, np.nan)
    is_ul = np.asarray(table["is_ul"], dtype=bool) if "is_ul" in table.colnames else ~np.isfinite(y)
    is_ul = is_ul & np.isfinite(ul)
    for band in bands:
        ax.fill_between(
            band.energy_gev, band.low, band.high, alpha=0.3, label=f"{band.label} ({band.cl:.0%})"
        )
        ax.plot(band.energy_gev, band.mid, lw=1)
    xerr = np.vstack([e_ref - e_min, e_max - e_ref])
    pts = ~is_ul & np.isfinite(y) & (y > 0)
    handle = ax.errorbar(
        e_ref[pts],
        y[pts],
        xerr=xerr[:, pts],
        yerr=np.vstack([np.minimum(yn[pts], y[pts] * (1 - 1e-3)), yp[pts]]),
        fmt="o",
        color=color,
        label=label,
    )
    if np.any(is_ul):
        ax.errorbar(
            e_ref[is_ul],
            ul[is_ul],
            xerr=xerr[:, is_ul],
            yerr=0.4 * ul[is_ul],
            uplims=True,
            fmt="none",
            color=handle[0].get_color() if color is None else color,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("E [GeV]")
    ax.set_ylabel(r"$E^2\,dN/dE$ [GeV cm$^{-2}$ s$^{-1}$]")
    ax.legend(frameon=False)
    return ax
