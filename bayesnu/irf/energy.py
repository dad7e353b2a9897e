r"""Signal energy PDF of the point-source likelihood from effective area and smearing.

For a source at declination :math:`\delta_s` and a power law of index :math:`\gamma`
(reference energy ``e0_gev``, optional cut-off), the density of the reconstructed
log10 muon energy of signal events is built on a grid of :math:`\gamma` values as in
SkyLLH's public-data analysis (``PDSignalEnergyPDFSet``):

1. take the smearing matrix's true-declination slice containing :math:`\delta_s`, and
   the true-energy range of the bins that have a reco-energy distribution;
2. detection probability per true-energy bin :math:`P_\mathrm{det}(i)`: integral over the
   bin of a linear interpolation of :math:`A_\mathrm{eff}/\Delta E` (effective-area row
   of :math:`\delta_s`, linear in E, knots at bin edges and centres), normalised over
   the range;
3. flux probability :math:`P_\Phi(i\mid\gamma) = \int_i\Phi\,dE / \int\Phi\,dE`;
   true-energy weights :math:`w_i(\gamma) \propto P_\Phi P_\mathrm{det}`, normalised;
4. reco-energy density of true bin :math:`i`, :math:`f_i(\log E)` = fractional counts
   summed over PSF and AngErr divided by the reco-bin width, PCHIP-interpolated
   between the block's reco-bin centres (zero outside them) and evaluated at the
   season's log10 E bin centres;
5. :math:`g(\log E\mid\gamma) = \sum_i w_i(\gamma) f_i`, PCHIP-interpolated between the
   season's bin centres (zero outside them) and normalised to unit integral.

Step 4 is done once per true bin: PCHIP is positively homogeneous, so the weighted
sum over true bins is a matrix product and every :math:`\gamma` costs one spline.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import numpy as np
from scipy import interpolate

from bayesnu.data.ps_formats import EffectiveArea, SmearingMatrix
from bayesnu.errors import ConfigError
from bayesnu.flux import E0_DEFAULT_GEV, PowerLaw
from bayesnu.irf.interp import PiecewisePoly, array_namespace

#: Default grid of spectral indices for the tabulated PDFs: 1..4 in steps of 0.1
#: plus one extra node on each side (as SkyLLH), so interpolation covers [1, 4].
GAMMA_GRID = np.round(np.arange(0.9, 4.1 + 1e-9, 0.1), 10)


def detection_probability(
    aeff: EffectiveArea, dec_rad: float, enu_lo_gev: np.ndarray, enu_hi_gev: np.ndarray
) -> np.ndarray:
    """P(true-energy bin | dec): integral of the linearly interpolated dA_eff/dE, normalised.

    Parameters
    ----------
    aeff
        Effective area.
    dec_rad
        True declination [rad]; selects the effective-area row.
    enu_lo_gev, enu_hi_gev
        Lower and upper true-energy edges [GeV] of the bins asked for; they are
        contiguous and define the normalisation range.
    """
    keep = aeff.aeff_cm2.sum(axis=0) > 0  # energy bins with any effective area
    edges_lo = aeff.log10_enu_edges[:-1][keep]
    edges_hi = aeff.log10_enu_edges[1:][keep]
    e_edges = 10.0 ** np.concatenate([edges_lo, edges_hi[-1:]])
    dec_edges = np.deg2rad(aeff.dec_edges_deg)
    row = int(np.clip(np.digitize(dec_rad, dec_edges) - 1, 0, len(dec_edges) - 2))
    area = aeff.aeff_cm2[row][keep]
    r_min, r_max = float(enu_lo_gev[0]), float(enu_hi_gev[-1])
    lidx = 0 if r_min <= e_edges[0] else int(np.searchsorted(e_edges, r_min, side="right") - 1)
    uidx = (
        len(e_edges) - 1 if r_max >= e_edges[-1] else int(np.searchsorted(e_edges, r_max, side="right") - 1)
    )
    area = area[lidx:uidx]
    e_edges = e_edges[lidx : uidx + 1]
    dens = area / np.diff(e_edges)
    x = np.concatenate([e_edges[:1], 0.5 * (e_edges[:-1] + e_edges[1:]), e_edges[-1:]])
    y = np.concatenate([dens[:1], dens, dens[-1:]])
    tck = interpolate.splrep(x, y, k=1, s=0)
    norm = interpolate.splint(r_min, r_max, tck)
    return np.array([interpolate.splint(a, b, tck) for a, b in zip(enu_lo_gev, enu_hi_gev)]) / norm


@dataclass(frozen=True)
class SignalEnergyPDF:
    """Signal energy densities on a grid of spectral indices for one source declination.

    Attributes
    ----------
    splines
        Stack (one per grid gamma) of PCHIP pieces between the season's log10 E bin
        centres; zero outside them.
    norm
        ``(K,)`` integral of each spline over its range.
    log10_e_range
        ``(2,)`` season's log10 E range.
    gamma_grid
        ``(K,)`` spectral-index grid (metadata, uniform).
    """

    splines: PiecewisePoly
    norm: jax.Array
    log10_e_range: jax.Array
    gamma_grid: tuple[float, ...]

    def pdf_grid(self, log10_e: jax.Array) -> jax.Array:
        """Densities per unit log10 E at every grid gamma: shape ``(*log10_e.shape, K)``."""
        xp = array_namespace(log10_e, self.norm)
        x = xp.asarray(log10_e, dtype=float)
        vals = self.splines(x)  # (K, *x.shape)
        inside = (x >= self.splines.breaks[0]) & (x <= self.splines.breaks[-1])
        inside &= (x >= self.log10_e_range[0]) & (x < self.log10_e_range[1])
        vals = xp.where(inside, vals, 0.0) / self.norm.reshape((-1,) + (1,) * x.ndim)
        return xp.moveaxis(vals, 0, -1)


jax.tree_util.register_dataclass(
    SignalEnergyPDF, data_fields=["splines", "norm", "log10_e_range"], meta_fields=["gamma_grid"]
)


def build_signal_energy_pdf(
    aeff: EffectiveArea,
    smearing: SmearingMatrix,
    dec_rad: float,
    log10_e_edges: np.ndarray,
    gamma_grid: np.ndarray = GAMMA_GRID,
    *,
    e0_gev: float = E0_DEFAULT_GEV,
    e_cut_gev: float | None = None,
    e_range_gev: tuple[float, float] | None = None,
) -> SignalEnergyPDF:
    """Tabulate the signal energy PDF of one season for a source at ``dec_rad``.

    Parameters
    ----------
    aeff, smearing
        The season's response.
    dec_rad
        Source declination [rad].
    log10_e_edges
        Season's log10(E/GeV) binning (:attr:`SeasonSpec.log10_energy_edges`).
    gamma_grid
        Uniform grid of spectral indices.
    e0_gev, e_cut_gev
        Reference and cut-off energy of the flux model [GeV].
    e_range_gev
        Restrict the flux to true energies in this range [GeV] (flux points): the
        flux integral of each true-energy bin is clipped to the range, the bin's
        detection probability is kept.
    """
    sm = smearing
    dec_edges = np.deg2rad(sm.dec_edges_deg)
    if not dec_edges[0] <= dec_rad <= dec_edges[-1]:
        raise ConfigError(f"declination {np.rad2deg(dec_rad):g} deg is outside the smearing matrix")
    idec = int(np.clip(np.digitize(dec_rad, dec_edges) - 1, 0, len(dec_edges) - 2))
    valid = (np.diff(sm.reco_edges[:, idec], axis=-1) > 0).sum(axis=-1) != 0
    if not valid.any():
        raise ConfigError(
            f"the smearing matrix has no reco-energy distribution at dec {np.rad2deg(dec_rad):g} deg"
        )
    te = sm.log10_enu_edges
    lo, hi = te[:-1][valid].min(), te[1:][valid].max()
    mask = (te >= lo) & (te <= hi)
    log_edges = te[mask]
    enu_edges = 10.0**log_edges
    true_idx = [int(np.digitize(0.5 * (a + b), te) - 1) for a, b in itertools.pairwise(log_edges)]
    xvals = 0.5 * (log10_e_edges[:-1] + log10_e_edges[1:])
    det = detection_probability(aeff, dec_rad, enu_edges[:-1], enu_edges[1:])
    # Reco-energy densities of every true bin at the season's bin centres (step 4).
    f_at_x = np.zeros((len(true_idx), len(xvals)))
    for n, it in enumerate(true_idx):
        edges = sm.reco_edges[it, idec]
        width = np.diff(edges)
        frac = sm.fractional_counts[it, idec].sum(axis=(1, 2))
        f_e = np.where(frac != 0, frac / np.where(width > 0, width, 1.0), 0.0)
        if f_e.sum() == 0:
            continue
        centres = 0.5 * (edges[:-1] + edges[1:])
        spl = interpolate.PchipInterpolator(centres, f_e, extrapolate=False)
        f_at_x[n] = np.nan_to_num(spl(xvals), nan=0.0)
    # True-energy weights for each gamma (step 3) and the weighted sums (step 5).
    gammas = np.asarray(gamma_grid, dtype=float)
    pl = PowerLaw(1.0, 0.0, e0_gev=e0_gev, e_cut_gev=e_cut_gev)
    lo_e, hi_e = enu_edges[:-1], enu_edges[1:]
    if e_range_gev is not None:
        lo_e, hi_e = np.clip(lo_e, *e_range_gev), np.clip(hi_e, *e_range_gev)
    flux_bins = np.stack(
        [np.asarray(pl.with_params(gamma=g).shape_integral(lo_e, np.maximum(hi_e, lo_e))) for g in gammas]
    )
    if e_range_gev is not None and not np.any(flux_bins > 0):
        raise ConfigError(f"the true-energy range {e_range_gev} GeV lies outside the smearing matrix")
    flux_prob = flux_bins / flux_bins.sum(axis=1, keepdims=True)
    p = flux_prob * det[None, :]
    w = p / p.sum(axis=1, keepdims=True)
    sums = w @ f_at_x  # (K, n_x)
    spl = interpolate.PchipInterpolator(xvals, sums.T, axis=0, extrapolate=False)
    norm = np.asarray(spl.integrate(xvals[0], xvals[-1]), dtype=float)
    pp = interpolate.PPoly(spl.c, spl.x)
    return SignalEnergyPDF(
        splines=PiecewisePoly.from_ppoly_arrays(pp.x, pp.c, extrapolate="clamp"),
        norm=norm,
        log10_e_range=np.array([log10_e_edges[0], log10_e_edges[-1]], dtype=float),
        gamma_grid=tuple(float(g) for g in gammas),
    )
