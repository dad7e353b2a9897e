"""A parametric IceCube-like muon-track detector model (NOT IceCube's Monte Carlo).

The release-format simulator (:mod:`bayesnu.data.simulate`) needs an instrument
response for every detector configuration: an effective area, and the joint
distribution of reconstructed muon energy, point-spread angle and estimated angular
error for a given true neutrino energy and declination (the content of the
release's smearing matrices, which are not available offline). This module provides
a smooth, documented, *parametric* model of both. Its constants were fitted to the
public effective-area tables and the public IC40 events of the 10-year release
(``benchmarks/calibrate_detector_model.py`` reproduces the fit); the formulas are written
out in ``docs/simulator.rst``.

It is a stand-in with plausible magnitudes and shapes, good enough to exercise every
code path of an analysis on data in the exact release formats. It is not IceCube's
detector simulation and must not be used to interpret real data.

Notation: ``x = log10(E_nu/GeV)``, ``s = sin(dec_nu)``, ``y = log10(E_reco/GeV)``.
At the South Pole the zenith angle is ``90 deg + dec``: ``s > 0`` is up-going
(through the Earth), ``s < sin(-5 deg)`` is the down-going southern sky, where the
event selection removes the atmospheric-muon background with a rising
reconstructed-energy threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesnu.data.ps_formats import EffectiveArea
from bayesnu.errors import ConfigError

#: Version tag written into simulated releases (``simulation.json``).
MODEL_VERSION = "bayesnu-detector-model-1"

#: sin(-5 deg): boundary between the up-going/horizontal and the southern selection.
SIN_DEC_HORIZON = float(np.sin(np.radians(-5.0)))

#: AngErr floor of the release [deg].
ANG_ERR_FLOOR_DEG = 0.2

#: Energy range of the model's "Monte Carlo", log10(E_nu/GeV) (A_eff = 0 outside).
LOG10_ENU_RANGE = (2.0, 9.0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class AeffParams:
    r"""Constants of the effective-area model.

    .. math::

        \log_{10} A_0(x) &= c_0 + c_1 u + c_2 u^2 + c_3 u^3, \quad u = x - 5 \\
        \alpha(x) &= \alpha_\mathrm{hi} + (\alpha_\mathrm{lo} - \alpha_\mathrm{hi})\,
                     \sigma\!\left(-(x - x_\alpha)/w_\alpha\right) \\
        A(x, s) &= A_0(x)\,(N/86)^{\alpha(x)}\, 10^{g\,s_+ e^{-(x-2)}}\;
                   e^{-\tau(x, s)}\; S(x, s) \\
        \tau(x, s) &= 10^{\beta (x - x_\mathrm{abs})}\, s_+ (1 + \kappa s_+) \\
        S(x, s) &= [F(x, s)\, G(s)]^{h(s)}, \quad h(s) = \sigma((s_h - s)/0.02) \\
        F(x, s) &= \sigma\!\left((x - x_\mathrm{th}(s))/w_\mathrm{th}(s)\right), \;
        x_\mathrm{th} = x_{\mathrm{th},0} + \Delta_c + k_\mathrm{th} t^{p_\mathrm{th}}, \;
        w_\mathrm{th} = w_0 + w_1 t, \; t = \max(s_h - s, 0) \\
        G(s) &= \exp(-a_g t^{p_g})

    with :math:`\sigma` the logistic function, :math:`s_+ = \max(s, 0)`, :math:`N` the
    number of strings, :math:`s_h = \sin(-5^\circ)` and :math:`\Delta_c` a per-
    configuration threshold shift (:class:`DetectorConfig`).
    """

    # Fitted by benchmarks/calibrate_detector_model.py to the five public effective-area
    # tables of the 10-year release (IC40, IC59, IC79, IC86_I, IC86_II; log10 E < 9):
    # least squares in log10(A + 10 cm^2) of the bin averages (rms 0.38 dex over all
    # bins) plus the log10 ratios of E^-2 and E^-3 rates in four sin(dec) bands
    # (weight 40; all 40 ratios within a factor 1.45).
    c: tuple[float, float, float, float] = (6.15685, 0.877877, -0.216133, 0.0329655)
    alpha_lo: float = 1.97118
    alpha_hi: float = 0.827239
    x_alpha: float = 4.10666
    w_alpha: float = 0.188941
    g_vertical: float = 0.852873
    x_abs: float = 5.09369
    beta_abs: float = 0.333016
    kappa_abs: float = 0.736401
    x_th0: float = 3.47996
    k_th: float = 2.58382
    p_th: float = 0.211872
    w_th0: float = 0.188179
    w_th1: float = 0.0343284
    a_geo: float = 2.08632
    p_geo: float = 0.296832


@dataclass(frozen=True)
class EnergyParams:
    r"""Constants of the reconstructed-energy model.

    .. math::

        y = m(x) + \sigma_E(x)\, Z - T, \quad Z \sim N(0, 1),\;
        T \sim \mathrm{Exp}(\text{mean } \tau_E) \\
        m(x) = y_3 + b\,(x - 3), \quad \sigma_E(x) = \sigma_0 + \sigma_1 (x - 2)

    ``T`` is the low-side tail of muons produced far outside the detector. In the
    southern sky the selection keeps an event with probability
    :math:`\sigma((y - m(x_\mathrm{th}(s)))/(b\, w_\mathrm{th}(s)))^{h(s)}` (the effective-area
    threshold of :class:`AeffParams` translated to reconstructed energy), so the
    smearing matrix there has the selection-biased, higher reconstructed energies.
    """

    # y3 calibrated (benchmarks/calibrate_detector_model.py) so that an atmospheric-like
    # E^-3.7 spectrum through the IC40 model reproduces the median log10(E/GeV) of the
    # up-going IC40 events (3.37); slope, widths and tail are plausible choices.
    y3: float = 3.8524
    slope: float = 0.75
    sigma0: float = 0.25
    sigma1: float = 0.03
    tail: float = 0.15


@dataclass(frozen=True)
class AngularParams:
    r"""Constants of the point-spread and angular-error model.

    .. math::

        \sigma_\mathrm{kin}(x) &= \sigma_{k} \, 10^{-q (x - 3)} \\
        \sigma_\mathrm{rec}(y) &= \sigma_f\, (86/N)^{\nu_f} + a\, 10^{-r (y - 3)}\, (86/N)^{\nu} \\
        \sigma_{\mathrm{rec},i} &= \sigma_\mathrm{rec}(y_i)\, e^{\eta_i},
            \quad \eta_i \sim N(0, s_\eta^2) \\
        \psi_i &\sim \mathrm{Rayleigh}\!\left(c_i \sqrt{\sigma_\mathrm{kin}^2
            + \sigma_{\mathrm{rec},i}^2}\right), \quad c_i = c_\mathrm{tail}
            \text{ with probability } f_\mathrm{tail}, \text{ else } 1 \\
        \mathrm{AngErr}_i &= \max\!\left(0.2^\circ, \sigma_{\mathrm{rec},i}\, e^{\epsilon_i}\right),
            \quad \epsilon_i \sim N(0, s_\epsilon^2)

    ``psi`` (the release's PSF column) is the true angle between neutrino and
    reconstructed muon; ``AngErr`` is the per-event estimate of the muon
    reconstruction error, correlated with it through :math:`\sigma_{\mathrm{rec},i}`;
    it knows neither the kinematic neutrino-muon angle nor the rare
    mis-reconstructed tail, so the PSF is wider than AngErr at low energy.
    """

    # sigma_f and a calibrated (benchmarks/calibrate_detector_model.py) so that the E^-3.7
    # up-going IC40 model reproduces the median AngErr of the up-going IC40 events at
    # log10(E/GeV) in [2.8, 3.2] and [4.0, 4.8] (IC40's resolution barely improves with
    # energy); nu_f = 1.3 then gives the full detector a ~0.2-0.3 deg high-energy
    # floor. The kinematic angle follows the usual ~0.7 deg (E/TeV)^-0.6 rule.
    sigma_kin_deg: float = 0.6
    kin_index: float = 0.6
    sigma_floor_deg: float = 0.2919
    sigma_amp_deg: float = 0.0580
    rec_index: float = 0.5
    strings_index: float = 0.3
    floor_strings_index: float = 1.3
    s_eta: float = 0.3
    s_eps: float = 0.25
    tail_fraction: float = 0.03
    tail_factor: float = 3.0


@dataclass(frozen=True)
class DetectorConfig:
    """One detector configuration.

    Attributes
    ----------
    name
        Configuration name as in the release's ``irfs/<name>_*.csv`` files.
    n_strings
        Number of deployed strings (40, 59, 79, 86).
    threshold_shift
        :math:`\\Delta_c`, shift of the southern energy threshold in log10(E/GeV)
        (selection differences between seasons; fitted).
    log10_ereco_range
        Reconstructed energies the selection keeps, log10(E/GeV): the range of the
        seasons' background-PDF energy binning (SkyLLH's dataset definitions, which
        refuse events outside it), intersected over the releases that use the
        configuration.
    """

    name: str
    n_strings: int
    threshold_shift: float = 0.0
    log10_ereco_range: tuple[float, float] = (1.0, 9.5)


#: Detector configurations of the 10-year (IC40..IC86_II) and 14-year (IC86) releases.
#: Threshold shifts fitted together with :class:`AeffParams`; ``IC86`` (the 14-year
#: release's homogenised IC86 selection) reuses IC86_II's.
CONFIGS: dict[str, DetectorConfig] = {
    "IC40": DetectorConfig("IC40", 40, 0.46231, (2.0, 9.0)),
    "IC59": DetectorConfig("IC59", 59, 0.01034, (2.0, 9.5)),
    "IC79": DetectorConfig("IC79", 79, -0.09521, (2.0, 9.0)),
    "IC86_I": DetectorConfig("IC86_I", 86, -0.34617, (1.0, 10.5)),
    "IC86_II": DetectorConfig("IC86_II", 86, 0.0, (0.5, 9.5)),
    "IC86": DetectorConfig("IC86", 86, 0.0, (1.0, 9.5)),
}


def detector_config(name: str) -> DetectorConfig:
    """Look up a detector configuration by name (clear error for an unknown one)."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(f"unknown detector configuration {name!r}; known: {', '.join(CONFIGS)}") from None


def release_aeff_grid() -> tuple[np.ndarray, np.ndarray]:
    """The release's effective-area grid: log10(E_nu/GeV) 2..10 step 0.2, 50 bins uniform in sin(dec).

    Returns
    -------
    log10_enu_edges, dec_edges_deg
        Declination edges rounded to 0.01 deg as the release writes them.
    """
    log10_enu_edges = np.round(np.linspace(2.0, 10.0, 41), 2)
    dec_edges_deg = np.round(np.degrees(np.arcsin(np.linspace(-1.0, 1.0, 51))), 2)
    return log10_enu_edges, dec_edges_deg


@dataclass(frozen=True)
class DetectorModel:
    """The parametric detector model (effective area + reconstruction response).

    Parameters
    ----------
    aeff, energy, angular
        Constants; the defaults are the calibrated ones.
    """

    aeff: AeffParams = field(default_factory=AeffParams)
    energy: EnergyParams = field(default_factory=EnergyParams)
    angular: AngularParams = field(default_factory=AngularParams)

    version: str = MODEL_VERSION

    # ------------------------------------------------------------------ effective area

    def _threshold(self, cfg: DetectorConfig, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x_th(s), w_th(s), t(s)) of the southern selection."""
        p = self.aeff
        t = np.clip(SIN_DEC_HORIZON - s, 0.0, None)
        x_th = p.x_th0 + cfg.threshold_shift + p.k_th * t**p.p_th
        w_th = p.w_th0 + p.w_th1 * t
        return x_th, w_th, t

    def aeff_cm2(
        self, config: str | DetectorConfig, log10_enu: np.ndarray, dec_deg: np.ndarray
    ) -> np.ndarray:
        """Effective area [cm^2] at true energy ``log10_enu`` = log10(E_nu/GeV) and declination ``dec_deg``.

        Zero outside the model's energy range :data:`LOG10_ENU_RANGE`. Arrays broadcast.
        """
        cfg = config if isinstance(config, DetectorConfig) else detector_config(config)
        p = self.aeff
        x = np.asarray(log10_enu, dtype=float)
        s = np.sin(np.radians(np.asarray(dec_deg, dtype=float)))
        u = x - 5.0
        log_a = p.c[0] + p.c[1] * u + p.c[2] * u**2 + p.c[3] * u**3
        alpha = p.alpha_hi + (p.alpha_lo - p.alpha_hi) * _sigmoid(-(x - p.x_alpha) / p.w_alpha)
        sp = np.clip(s, 0.0, None)
        log_a = log_a + alpha * np.log10(cfg.n_strings / 86.0) + p.g_vertical * sp * np.exp(-(x - 2.0))
        tau = 10.0 ** (p.beta_abs * (x - p.x_abs)) * sp * (1.0 + p.kappa_abs * sp)
        x_th, w_th, t = self._threshold(cfg, s)
        h = _sigmoid((SIN_DEC_HORIZON - s) / 0.02)
        south = (_sigmoid((x - x_th) / w_th) * np.exp(-p.a_geo * t**p.p_geo)) ** h
        a = 10.0**log_a * np.exp(-tau) * south
        inside = (x >= LOG10_ENU_RANGE[0]) & (x <= LOG10_ENU_RANGE[1])
        return np.where(inside, a, 0.0)

    def effective_area(
        self,
        config: str | DetectorConfig,
        *,
        log10_enu_edges: np.ndarray | None = None,
        dec_edges_deg: np.ndarray | None = None,
        n_sub: int = 8,
        decimals: int | None = 2,
    ) -> EffectiveArea:
        """Bin-averaged effective area on the release grid (or the given edges).

        Each bin's value is the mean of the model over ``n_sub x n_sub`` points
        spaced uniformly in log10 E and sin(dec) inside the bin, rounded to
        ``decimals`` (0.01 cm^2 as the release writes it; ``None``: not rounded).
        """
        e_def, d_def = release_aeff_grid()
        le = np.asarray(e_def if log10_enu_edges is None else log10_enu_edges, dtype=float)
        de = np.asarray(d_def if dec_edges_deg is None else dec_edges_deg, dtype=float)
        f = (np.arange(n_sub) + 0.5) / n_sub
        xs = le[:-1, None] + np.diff(le)[:, None] * f[None, :]  # (n_e, n_sub)
        sd = np.sin(np.radians(de))
        ss = sd[:-1, None] + np.diff(sd)[:, None] * f[None, :]  # (n_dec, n_sub)
        dec_pts = np.degrees(np.arcsin(np.clip(ss, -1.0, 1.0)))
        vals = self.aeff_cm2(config, xs[None, :, None, :], dec_pts[:, None, :, None])
        grid = vals.mean(axis=(2, 3))
        if decimals is not None:
            grid = np.round(grid, decimals)
        name = config.name if isinstance(config, DetectorConfig) else config
        return EffectiveArea(
            log10_enu_edges=le, dec_edges_deg=de, aeff_cm2=grid, source=f"{self.version}:{name}"
        )

    # ------------------------------------------------------------------ reconstruction

    def reco_energy_mean(self, log10_enu: np.ndarray) -> np.ndarray:
        """Mode of the reconstructed energy, m(x) in log10(E/GeV)."""
        e = self.energy
        return e.y3 + e.slope * (np.asarray(log10_enu) - 3.0)

    def selection_weight(
        self, config: str | DetectorConfig, log10_ereco: np.ndarray, dec_deg: np.ndarray
    ) -> np.ndarray:
        """Probability that the event selection keeps an event of given reco energy and declination.

        1 in the up-going sky; in the south a soft cut at the reconstructed energy
        that corresponds to the effective-area threshold; 0 outside the
        configuration's :attr:`~DetectorConfig.log10_ereco_range`.
        """
        cfg = config if isinstance(config, DetectorConfig) else detector_config(config)
        s = np.sin(np.radians(np.asarray(dec_deg, dtype=float)))
        x_th, w_th, _ = self._threshold(cfg, s)
        y_th = self.reco_energy_mean(x_th)
        h = _sigmoid((SIN_DEC_HORIZON - s) / 0.02)
        y = np.asarray(log10_ereco)
        keep = _sigmoid((y - y_th) / (self.energy.slope * w_th))
        lo, hi = cfg.log10_ereco_range
        return np.where((y >= lo) & (y <= hi), keep**h, 0.0)

    def sample_response(
        self,
        rng: np.random.Generator,
        config: str | DetectorConfig,
        log10_enu: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw (log10 E_reco, psi [deg], AngErr [deg]) for events of true energy ``log10_enu``.

        Vectorised over events; the southern selection is applied separately as a
        weight (:meth:`selection_weight`).

        Returns
        -------
        log10_ereco, psf_deg, ang_err_deg
            Arrays of the shape of ``log10_enu``.
        """
        cfg = config if isinstance(config, DetectorConfig) else detector_config(config)
        x = np.asarray(log10_enu, dtype=float)
        e, a = self.energy, self.angular
        sig_e = e.sigma0 + e.sigma1 * (x - 2.0)
        y = self.reco_energy_mean(x) + sig_e * rng.standard_normal(x.shape) - rng.exponential(e.tail, x.shape)
        sig_kin = a.sigma_kin_deg * 10.0 ** (-a.kin_index * (x - 3.0))
        scale = 86.0 / cfg.n_strings
        sig_rec = (
            a.sigma_floor_deg * scale**a.floor_strings_index
            + a.sigma_amp_deg * 10.0 ** (-a.rec_index * (y - 3.0)) * scale**a.strings_index
        )
        sig_rec = sig_rec * np.exp(a.s_eta * rng.standard_normal(x.shape))
        tail = rng.random(x.shape) < a.tail_fraction
        sig_true = np.hypot(sig_kin, sig_rec) * np.where(tail, a.tail_factor, 1.0)
        # Rayleigh in the small-angle approximation: psi = sigma sqrt(-2 ln U).
        psi = np.minimum(sig_true * np.sqrt(-2.0 * np.log1p(-rng.random(x.shape))), 180.0)
        ang_err = sig_rec * np.exp(a.s_eps * rng.standard_normal(x.shape))
        ang_err = np.clip(ang_err, ANG_ERR_FLOOR_DEG, 180.0)
        return y, psi, ang_err


__all__ = [
    "ANG_ERR_FLOOR_DEG",
    "CONFIGS",
    "LOG10_ENU_RANGE",
    "MODEL_VERSION",
    "SIN_DEC_HORIZON",
    "AeffParams",
    "AngularParams",
    "DetectorConfig",
    "DetectorModel",
    "EnergyParams",
    "detector_config",
    "release_aeff_grid",
]
