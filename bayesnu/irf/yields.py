r"""Detector signal yield: expected signal events per unit flux normalisation.

For a point source at declination :math:`\delta` with flux
:math:`\Phi_0\,(E/E_0)^{-\gamma}` [GeV^-1 cm^-2 s^-1] the expected number of signal
events in a season of livetime :math:`T` is :math:`n_s = \Phi_0\,Y(\delta, \gamma)` with

.. math::

    Y(\delta, \gamma) = T \sum_j A_\mathrm{eff}(\delta, E_j)
        \int_{E_j^-}^{E_j^+} (E/E_0)^{-\gamma}\,dE,

the sum running over the effective area's true-energy bins in the declination bin of
:math:`\delta`. As in SkyLLH, :math:`\ln Y` is tabulated at the declination-bin
centres and on the spectral-index grid and interpolated by a quadratic x quadratic
interpolating spline (bins with zero yield are set to 1e-10 of the smallest
non-zero one).

SkyLLH builds that spline with the declination-bin centres in *radians* on the first
axis but evaluates it at :math:`\sin\delta` (``PDSingleParamFluxPointLikeSourceI3DetSigYieldBuilder``
and ``SingleParamFluxPointLikeSourceI3DetSigYield`` in SkyLLH 26.1). bayesnu's
default ``dec_axis="sin_dec"`` uses the sin(dec) bin centres and evaluates at
:math:`\sin\delta`; ``dec_axis="skyllh"`` reproduces SkyLLH's convention for side-by-side
comparisons. The two agree near the equator; elsewhere SkyLLH gives a source at
declination :math:`\delta` the yield of the declination :math:`\sin\delta` (read as
radians): a source at +61.5 deg gets the yield of +50.4 deg.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy import interpolate

from bayesnu.data.ps_formats import EffectiveArea
from bayesnu.errors import ConfigError
from bayesnu.flux import E0_DEFAULT_GEV, PowerLaw
from bayesnu.irf.energy import GAMMA_GRID
from bayesnu.irf.interp import hermite_uniform

DEC_AXES = ("sin_dec", "skyllh")


def yield_histogram(
    aeff: EffectiveArea,
    livetime_s: float,
    gamma_grid: np.ndarray = GAMMA_GRID,
    *,
    e0_gev: float = E0_DEFAULT_GEV,
    e_cut_gev: float | None = None,
    e_range_gev: tuple[float, float] | None = None,
) -> np.ndarray:
    """Yield per unit Phi0 [events per (GeV^-1 cm^-2 s^-1)] per declination bin and grid gamma.

    ``e_range_gev`` restricts the flux to a true-energy range [GeV].

    Returns
    -------
    numpy.ndarray
        ``(n_dec_bins, K)``; zero entries replaced by 1e-10 of the smallest positive one.
    """
    e_edges = 10.0 ** np.asarray(aeff.log10_enu_edges)
    lo, hi = e_edges[:-1], e_edges[1:]
    if e_range_gev is not None:
        lo, hi = np.clip(lo, *e_range_gev), np.clip(hi, *e_range_gev)
    pl = PowerLaw(1.0, 0.0, e0_gev=e0_gev, e_cut_gev=e_cut_gev)
    out = np.empty((aeff.aeff_cm2.shape[0], len(gamma_grid)))
    for k, g in enumerate(gamma_grid):
        phi = np.asarray(pl.with_params(gamma=float(g)).shape_integral(lo, np.maximum(hi, lo)))
        h = aeff.aeff_cm2 @ phi
        h = np.where(h == 0, h[h > 0].min() * 1e-10, h)
        out[:, k] = h
    return out * livetime_s


def yield_spline(
    aeff: EffectiveArea,
    livetime_s: float,
    gamma_grid: np.ndarray = GAMMA_GRID,
    *,
    dec_axis: str = "sin_dec",
    e0_gev: float = E0_DEFAULT_GEV,
    e_cut_gev: float | None = None,
    e_range_gev: tuple[float, float] | None = None,
) -> interpolate.RectBivariateSpline:
    """Quadratic interpolating spline of ln Y over (declination axis, gamma); see module doc."""
    if dec_axis not in DEC_AXES:
        raise ConfigError(f"dec_axis must be one of {DEC_AXES}, got {dec_axis!r}")
    h = yield_histogram(
        aeff, livetime_s, gamma_grid, e0_gev=e0_gev, e_cut_gev=e_cut_gev, e_range_gev=e_range_gev
    )
    d = np.deg2rad(aeff.dec_edges_deg)
    x = 0.5 * (np.sin(d[:-1]) + np.sin(d[1:])) if dec_axis == "sin_dec" else 0.5 * (d[:-1] + d[1:])
    return interpolate.RectBivariateSpline(x, np.asarray(gamma_grid), np.log(h), kx=2, ky=2, s=0)


def log_yield_vs_gamma(
    aeff: EffectiveArea,
    livetime_s: float,
    dec_rad: float,
    gamma_grid: np.ndarray = GAMMA_GRID,
    *,
    eval_gamma: np.ndarray | None = None,
    dec_axis: str = "sin_dec",
    e0_gev: float = E0_DEFAULT_GEV,
    e_cut_gev: float | None = None,
    e_range_gev: tuple[float, float] | None = None,
) -> np.ndarray:
    """ln Y at a fixed source declination, splined over ``gamma_grid``, evaluated at ``eval_gamma``.

    ``eval_gamma`` defaults to ``gamma_grid``; ``e_range_gev`` restricts the flux's true energies.
    """
    spl = yield_spline(aeff, livetime_s, gamma_grid, dec_axis=dec_axis, e0_gev=e0_gev, e_cut_gev=e_cut_gev,
                       e_range_gev=e_range_gev)  # fmt: skip
    ev = np.asarray(gamma_grid if eval_gamma is None else eval_gamma, dtype=float)
    return spl(np.full(len(ev), np.sin(dec_rad)), ev, grid=False)


@dataclass(frozen=True)
class YieldGrid:
    """ln of the detector yield tabulated on a uniform (sin dec, gamma) grid, for JAX.

    Evaluation is C1 cubic Hermite along both axes. Used when the source position is
    a model parameter; a fixed-position analysis uses the exact gamma table.

    Attributes
    ----------
    log_yield
        ``(n_seasons, n_x, K)`` ln Y per unit Phi0.
    x0, dx
        Uniform sin(dec) grid (metadata).
    g0, dg
        Uniform gamma grid (metadata).
    """

    log_yield: jax.Array
    x0: float
    dx: float
    g0: float
    dg: float

    def __call__(self, sin_dec: jax.Array, gamma: jax.Array) -> jax.Array:
        """ln Y of every season at (sin_dec, gamma): shape ``(n_seasons,)``."""
        tab = hermite_uniform(jnp.moveaxis(self.log_yield, 1, -1), self.x0, self.dx, sin_dec)  # (S, K)
        return hermite_uniform(tab, self.g0, self.dg, gamma)


jax.tree_util.register_dataclass(YieldGrid, data_fields=["log_yield"], meta_fields=["x0", "dx", "g0", "dg"])


def build_yield_grid(
    aeffs: list[EffectiveArea],
    livetimes_s: list[float],
    gamma_grid: np.ndarray = GAMMA_GRID,
    *,
    n_sin_dec: int = 401,
    gamma_subdivision: int = 4,
    dec_axis: str = "sin_dec",
    e0_gev: float = E0_DEFAULT_GEV,
    e_cut_gev: float | None = None,
) -> YieldGrid:
    """Tabulate ln Y of several seasons on a uniform (sin dec, gamma) grid for position-free models.

    The spline is built on ``gamma_grid`` and tabulated ``gamma_subdivision`` times finer.
    """
    xs = np.linspace(-1.0, 1.0, n_sin_dec)
    g_nodes = np.asarray(gamma_grid, dtype=float)
    g = np.linspace(g_nodes[0], g_nodes[-1], (len(g_nodes) - 1) * gamma_subdivision + 1)
    tabs = []
    for aeff, lt in zip(aeffs, livetimes_s):
        spl = yield_spline(aeff, lt, g_nodes, dec_axis=dec_axis, e0_gev=e0_gev, e_cut_gev=e_cut_gev)
        tabs.append(spl(xs, g, grid=True))
    return YieldGrid(
        log_yield=jnp.asarray(np.stack(tabs)),
        x0=float(xs[0]),
        dx=float(xs[1] - xs[0]),
        g0=float(g[0]),
        dg=float(g[1] - g[0]),
    )
