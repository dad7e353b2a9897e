r"""Pseudo-data drawn from the point-source likelihood's own model (for calibration checks).

:class:`ModelSampler` draws a season's events from exactly the densities the
likelihood assumes, so that simulation-based calibration (SBC) tests the inference and
nothing else: with the profiled background the likelihood is the mixture
:math:`\prod_i[\frac{n_s}{N}S_i + (1-\frac{n_s}{N})B_i]` over :math:`N` events, so each
event is signal with probability :math:`n_s/N` (:math:`n_\mathrm{sig}\sim
\mathrm{Binomial}(N, n_s/N)`);

* background: :math:`\sin\delta` from :math:`B^\mathrm{sp}`, right ascension uniform,
  :math:`\log_{10}E` from :math:`B^E(\cdot\mid\sin\delta)`;
* signal: direction from the Rayleigh PSF around the source, :math:`\log_{10}E` from
  :math:`S^E(\cdot\mid\gamma)` (interpolated in :math:`\gamma` like the likelihood);
* AngErr of both drawn from the season's observed AngErr values (the likelihood
  conditions on AngErr, so any common distribution is consistent with it).

(The instrument-response injector :mod:`bayesnu.irf.injection` is the physical
simulation used for trials and sensitivities; this sampler is the model's own.)
"""

from __future__ import annotations

import numpy as np

from bayesnu.analyses.ps_inputs import SeasonModel
from bayesnu.data.ps_formats import EventTable

_N_FINE = 4001


def _inverse_cdf(x: np.ndarray, pdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Invert the piecewise-linear CDF of a density tabulated on ``x`` (last axis)."""
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
    cdf /= cdf[-1]
    return np.interp(u, cdf, x)


class ModelSampler:
    """Draw pseudo-events of one season from the likelihood's densities.

    Parameters
    ----------
    model
        The season model (background PDFs, signal energy tables).
    src_ra_rad, src_dec_rad
        Source position [rad].
    """

    def __init__(self, model: SeasonModel, src_ra_rad: float, src_dec_rad: float) -> None:
        self.model = model
        self.src_ra, self.src_dec = float(src_ra_rad), float(src_dec_rad)
        sd = model.sin_dec_edges
        self._sd_x = np.linspace(sd[0], sd[-1], _N_FINE)
        self._sd_pdf = model.spatial_bkg.pdf(self._sd_x)
        le = model.log10_e_edges
        self._le_x = np.linspace(le[0], le[-1], _N_FINE)
        n_col = len(sd) - 1
        centres = 0.5 * (sd[:-1] + sd[1:])
        self._col_pdf = np.stack(
            [model.energy_bkg.pdf(self._le_x, np.full_like(self._le_x, c)) for c in centres]
        )  # (n_col, n_fine)
        self._n_col = n_col
        self._sig = model.signal_energy(self.src_dec)
        self._sig_pdf = self._sig.pdf_grid(self._le_x)  # (n_fine, K)
        g = np.asarray(self._sig.gamma_grid)
        self._g0, self._dg = float(g[0]), float(g[1] - g[0])
        self._angerr = np.asarray(model.events.ang_err_deg, dtype=float)
        self._mjd = (float(np.min(model.events.mjd)), float(np.max(model.events.mjd)))

    def _signal_pdf(self, gamma: float) -> np.ndarray:
        from bayesnu.irf.interp import hermite_uniform

        vals = np.asarray(hermite_uniform(self._sig_pdf, self._g0, self._dg, gamma))
        return np.clip(vals, 0.0, None)

    def sample(
        self, rng: np.random.Generator, ns: float, gamma: float, n_total: int | None = None
    ) -> EventTable:
        """One pseudo-data set of ``n_total`` events (default: the season's count) with mean ``ns`` signal."""
        n = self.model.n_events if n_total is None else int(n_total)
        n_sig = int(rng.binomial(n, min(1.0, ns / n)))
        n_bkg = n - n_sig
        # Background.
        sin_dec = _inverse_cdf(self._sd_x, self._sd_pdf, rng.random(n_bkg))
        col = np.clip(
            np.searchsorted(self.model.sin_dec_edges, sin_dec, side="right") - 1, 0, self._n_col - 1
        )
        log_e = np.empty(n_bkg)
        u = rng.random(n_bkg)
        for c in np.unique(col):
            m = col == c
            log_e[m] = _inverse_cdf(self._le_x, self._col_pdf[c], u[m])
        ra = rng.uniform(0.0, 2 * np.pi, n_bkg)
        dec = np.arcsin(sin_dec)
        # Signal: Rayleigh offsets around the source (2D Gaussian of width AngErr on the sphere).
        sig_deg = rng.choice(self._angerr, size=n_sig)
        sigma = np.deg2rad(sig_deg)
        psi = sigma * np.sqrt(-2.0 * np.log(1.0 - rng.random(n_sig)))
        phi = rng.uniform(0.0, 2 * np.pi, n_sig)
        sd_s = np.sin(self.src_dec) * np.cos(psi) + np.cos(self.src_dec) * np.sin(psi) * np.cos(phi)
        dec_s = np.arcsin(np.clip(sd_s, -1, 1))
        ra_s = self.src_ra + np.arctan2(
            np.sin(phi) * np.sin(psi) * np.cos(self.src_dec), np.cos(psi) - np.sin(self.src_dec) * sd_s
        )
        loge_s = _inverse_cdf(self._le_x, self._signal_pdf(gamma), rng.random(n_sig))
        ang = np.concatenate([rng.choice(self._angerr, size=n_bkg), sig_deg])
        ra_all = np.mod(np.concatenate([ra, ra_s]), 2 * np.pi)
        dec_all = np.concatenate([dec, dec_s])
        dec_deg = np.rad2deg(dec_all)
        return EventTable(
            mjd=rng.uniform(*self._mjd, n),
            log10_energy=np.concatenate([log_e, loge_s]),
            ang_err_deg=ang,
            ra_deg=np.rad2deg(ra_all),
            dec_deg=dec_deg,
            azimuth_deg=rng.uniform(0.0, 360.0, n),
            zenith_deg=np.clip(dec_deg + 90.0, 0.0, 180.0),
            source="model pseudo-data",
        )
