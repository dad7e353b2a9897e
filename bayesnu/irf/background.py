r"""Data-driven background PDFs of the point-source likelihood.

Both are built from the experimental events of a season (the background dominates
every declination band), in the season's (sin dec, log10 E) binning
(:class:`bayesnu.data.ps_release.SeasonSpec`), exactly as SkyLLH's public-data
analysis builds them (``DataBackgroundI3SpatialPDF`` and
``PDDataBackgroundI3EnergyPDF``; see ``docs/instrument_response.rst``):

Spatial
    :math:`B_\mathrm{sp}(\delta) = \frac{1}{2\pi}\exp s(\sin\delta)`, with :math:`s` the
    quadratic interpolating spline of the log of the normalised sin(dec) histogram at
    the bin centres (extrapolated beyond the outer centres).

Energy
    The 2D histogram in (log10 E, sin dec) is normalised per sin(dec) column to a
    density in log10 E, smoothed along log10 E with a 3-bin moving average (edge bins
    averaged over the available neighbours), and its log10 interpolated along log10 E
    by a not-a-knot cubic spline per sin(dec) column (empty bins set to the global
    minimum minus 3 decades; constant beyond the outer bin centres). In sin(dec) the
    PDF is a step function of the column. Each column is renormalised to unit integral
    over the season's log10 E range (128-point Gauss-Legendre).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
from scipy import interpolate, signal

from bayesnu.errors import DataFormatError
from bayesnu.irf.interp import PiecewisePoly, array_namespace

_TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class SpatialBackground:
    """Background spatial PDF in sin(dec) [1/sr].

    Attributes
    ----------
    log_spline
        Spline of ``ln`` of the sin(dec) density (quadratic, extrapolating).
    """

    log_spline: PiecewisePoly

    def pdf(self, sin_dec: jax.Array) -> jax.Array:
        """Background spatial PDF per steradian at ``sin_dec``."""
        xp = array_namespace(sin_dec, self.log_spline.coeffs)
        return xp.exp(self.log_spline(sin_dec)) / _TWO_PI


jax.tree_util.register_dataclass(SpatialBackground, data_fields=["log_spline"], meta_fields=[])


def build_spatial_background(
    sin_dec: np.ndarray, sin_dec_edges: np.ndarray, season: str = ""
) -> SpatialBackground:
    """Build the spatial background PDF from event sin(dec) values.

    Raises
    ------
    DataFormatError
        If a sin(dec) bin has no events (the PDF would be zero there).
    """
    h, _ = np.histogram(sin_dec, bins=sin_dec_edges, range=(sin_dec_edges[0], sin_dec_edges[-1]))
    h = h / h.sum() / np.diff(sin_dec_edges)
    if np.any(h <= 0):
        empty = 0.5 * (sin_dec_edges[:-1] + sin_dec_edges[1:])[h <= 0]
        raise DataFormatError(
            f"season {season}: the sin(dec) background histogram has empty bins at "
            f"{np.round(empty, 3).tolist()}",
            field="Dec[deg]",
            fix="the data-driven background needs events in every sin(dec) bin: use more events "
            "or a coarser binning",
        )
    centres = 0.5 * (sin_dec_edges[:-1] + sin_dec_edges[1:])
    spl = interpolate.InterpolatedUnivariateSpline(centres, np.log(h), k=2)
    return SpatialBackground(PiecewisePoly.from_scipy(spl, extrapolate="poly"))


@dataclass(frozen=True)
class EnergyBackground:
    """Background energy PDF in log10(E/GeV), conditional on sin(dec).

    Attributes
    ----------
    sin_dec_edges
        ``(n_sd + 1,)`` sin(dec) bin edges (the PDF is a step function in sin dec).
    log10_splines
        Stack of ``n_sd`` cubic splines of log10 of the (unnormalised) density.
    log10_norm
        ``(n_sd,)`` log10 of each column's integral over the log10 E range.
    log10_e_range
        ``(2,)`` season's log10 E range; the PDF is zero outside.
    """

    sin_dec_edges: jax.Array
    log10_splines: PiecewisePoly
    log10_norm: jax.Array
    log10_e_range: jax.Array

    def column(self, sin_dec: jax.Array) -> jax.Array:
        """sin(dec) column index (the first bin includes its lower edge, the last its upper)."""
        xp = array_namespace(sin_dec, self.sin_dec_edges)
        e = self.sin_dec_edges
        return xp.clip(xp.searchsorted(e, sin_dec, side="right") - 1, 0, e.shape[0] - 2)

    def pdf(self, log10_e: jax.Array, sin_dec: jax.Array) -> jax.Array:
        """Density per unit log10(E/GeV) at (``log10_e``, ``sin_dec``); zero outside the range."""
        xp = array_namespace(log10_e, sin_dec, self.log10_norm)
        col = self.column(sin_dec)
        val = 10.0 ** (self.log10_splines(log10_e, index=col) - xp.asarray(self.log10_norm)[col])
        inside = (
            (log10_e >= self.log10_e_range[0])
            & (log10_e <= self.log10_e_range[1])
            & (sin_dec >= self.sin_dec_edges[0])
            & (sin_dec <= self.sin_dec_edges[-1])
        )
        return xp.where(inside, val, 0.0)


jax.tree_util.register_dataclass(
    EnergyBackground,
    data_fields=["sin_dec_edges", "log10_splines", "log10_norm", "log10_e_range"],
    meta_fields=[],
)


def energy_background_histogram(
    log10_e: np.ndarray, sin_dec: np.ndarray, log10_e_edges: np.ndarray, sin_dec_edges: np.ndarray
) -> np.ndarray:
    """Normalised and smoothed (log10 E, sin dec) histogram (density per unit log10 E per column)."""
    h, _, _ = np.histogram2d(
        log10_e,
        sin_dec,
        bins=[log10_e_edges, sin_dec_edges],
        range=[(log10_e_edges[0], log10_e_edges[-1]), (sin_dec_edges[0], sin_dec_edges[-1])],
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        h = h / (h.sum(axis=0)[None, :] * np.diff(log10_e_edges)[:, None])
    kernel = np.ones((3, 1))
    norm = signal.convolve(np.ones_like(h), kernel, mode="same")
    return signal.convolve(h, kernel, mode="same") / norm


def build_energy_background(
    log10_e: np.ndarray, sin_dec: np.ndarray, log10_e_edges: np.ndarray, sin_dec_edges: np.ndarray
) -> EnergyBackground:
    """Build the background energy PDF from event (log10 E, sin dec) values."""
    h = energy_background_histogram(log10_e, sin_dec, log10_e_edges, sin_dec_edges)
    positive = h > 0
    if not positive.any():
        raise DataFormatError("no events inside the season's (log10 E, sin dec) range", field="log10(E/GeV)")
    z = np.empty_like(h)
    z[positive] = np.log10(h[positive])
    z[~positive] = z[positive].min() - 3.0
    centres = 0.5 * (log10_e_edges[:-1] + log10_e_edges[1:])
    spl = interpolate.make_interp_spline(centres, z, k=3, axis=0)
    stack = PiecewisePoly.from_bspline(spl, extrapolate="clamp")
    # Normalisation per column: 128-point Gauss-Legendre over the full log10 E range.
    gx, gw = np.polynomial.legendre.leggauss(128)
    lo, hi = log10_e_edges[0], log10_e_edges[-1]
    qx = 0.5 * (hi - lo) * gx + 0.5 * (hi + lo)
    qw = 0.5 * (hi - lo) * gw
    vals = 10.0 ** stack(qx)  # (n_sd, 128)
    norm = vals @ qw
    return EnergyBackground(
        sin_dec_edges=np.asarray(sin_dec_edges, dtype=float),
        log10_splines=stack,
        log10_norm=np.log10(norm),
        log10_e_range=np.array([lo, hi], dtype=float),
    )
