r"""Atmospheric-like background events: a parametric model calibrated on the public IC40 events.

The simulated release's background is drawn in (sin dec, log10 E_reco, AngErr) from
a data-driven parametric model whose constants were fitted to the 36,900 real IC40
events (``benchmarks/calibrate_detector_model.py`` reproduces them):

* **sin(dec)**: a density tabulated in 40 bins of width 0.05, linearly interpolated
  between bin centres (``SIN_DEC_DENSITY``);
* **log10 E | sin(dec)**: an exponentially modified Gaussian
  :math:`y = \mu(s) + \sigma(s) Z + T`, :math:`T \sim \mathrm{Exp}(\tau(s))`, with
  :math:`(\mu, \sigma, \tau)` fitted by maximum likelihood in sin(dec) slices (finer
  across the horizon, where the southern energy cut switches on) and linearly
  interpolated between slice centres;
* **log10 AngErr | log10 E, sin(dec)**: Gaussian with mean
  :math:`a_0 + a_1 (y - 4) + a_2 (y - 4)^2 + a_3 s` (separate coefficients for the
  southern and the up-going selection) and constant width, floored at 0.2 deg as in
  the release.

Right ascension is uniform and times are uniform over the good runs (done by
:mod:`bayesnu.data.simulate`). The same shapes are used for every season: only IC40
events are public offline, so later seasons' lower energy thresholds are not modelled.
"""

from __future__ import annotations

import numpy as np

from bayesnu.data.detector_model import ANG_ERR_FLOOR_DEG, SIN_DEC_HORIZON

#: Bin edges of the tabulated sin(dec) density.
SIN_DEC_DENSITY_EDGES = np.linspace(-1.0, 1.0, 41)

# Fitted to the IC40 events (benchmarks/calibrate_detector_model.py): normalised density
# per unit sin(dec) in each 0.05 bin.
SIN_DEC_DENSITY = np.array([
    0.6011, 0.6417, 0.6130, 0.6244, 0.6168, 0.6103, 0.6249, 0.5995, 0.6179, 0.6266,
    0.5767, 0.5919, 0.6033, 0.6266, 0.5892, 0.6347, 0.6173, 0.5772, 0.6379, 0.7154,
    0.6266, 0.5897, 0.5203, 0.4591, 0.4390, 0.4038, 0.3821, 0.3572, 0.3631, 0.3333,
    0.3290, 0.3268, 0.3523, 0.3279, 0.3192, 0.3187, 0.3214, 0.3306, 0.3263, 0.2271,
])  # fmt: skip

#: Edges of the sin(dec) slices in which the energy distribution was fitted.
ENERGY_KNOT_EDGES = np.round(
    np.concatenate(
        [np.linspace(-1.0, -0.3, 8), np.linspace(-0.275, 0.05, 14), [0.1], np.linspace(0.2, 1.0, 9)]
    ),
    4,
)

# Exponentially modified Gaussian parameters per slice (log10(E/GeV)), fitted to IC40.
ENERGY_MU = np.array([
    5.7736, 5.6966, 5.6441, 5.5909, 5.5209, 5.4262, 5.2964, 5.1844, 5.1245, 5.0551,
    4.9700, 4.8606, 4.7225, 4.5427, 4.2529, 3.8994, 3.5651, 3.2553, 3.2055, 3.2005,
    3.2418, 3.1921, 3.1851, 3.1672, 3.1609, 3.1473, 3.1548, 3.1214, 3.0900, 3.0746,
    3.0453,
])  # fmt: skip
ENERGY_SIGMA = np.array([
    0.0298, 0.0148, 0.0137, 0.0159, 0.0236, 0.0303, 0.0459, 0.0154, 0.0174, 0.0214,
    0.0308, 0.0431, 0.0474, 0.0731, 0.1047, 0.1413, 0.2573, 0.1965, 0.1355, 0.1624,
    0.1774, 0.1481, 0.1417, 0.1551, 0.1524, 0.1465, 0.1637, 0.1427, 0.1323, 0.1405,
    0.1589,
])  # fmt: skip
ENERGY_TAU = np.array([
    0.1570, 0.1413, 0.1379, 0.1289, 0.1309, 0.1270, 0.1295, 0.1358, 0.1383, 0.1392,
    0.1353, 0.1428, 0.1539, 0.1588, 0.2038, 0.2372, 0.2314, 0.4192, 0.4294, 0.3159,
    0.3022, 0.3293, 0.3181, 0.3039, 0.2967, 0.2861, 0.2509, 0.2751, 0.2431, 0.2425,
    0.2251,
])  # fmt: skip

# log10(AngErr/deg) = a0 + a1 (y - 4) + a2 (y - 4)^2 + a3 sin(dec) + sd * Z, fitted to IC40.
ANGERR_SOUTH = (-0.1082, 0.0195, -0.0151, 0.1683)
ANGERR_SOUTH_SD = 0.1963
ANGERR_NORTH = (-0.1083, -0.0055, 0.0520, -0.0050)
ANGERR_NORTH_SD = 0.2094

_GRID = np.linspace(-1.0, 1.0, 4001)


def _sin_dec_inverse_cdf() -> tuple[np.ndarray, np.ndarray]:
    centres = 0.5 * (SIN_DEC_DENSITY_EDGES[1:] + SIN_DEC_DENSITY_EDGES[:-1])
    dens = np.interp(_GRID, centres, SIN_DEC_DENSITY)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(_GRID))])
    return cdf / cdf[-1], _GRID


def sin_dec_density(sin_dec: np.ndarray) -> np.ndarray:
    """Model density of background events per unit sin(dec) (normalised over [-1, 1])."""
    centres = 0.5 * (SIN_DEC_DENSITY_EDGES[1:] + SIN_DEC_DENSITY_EDGES[:-1])
    norm = np.trapezoid(np.interp(_GRID, centres, SIN_DEC_DENSITY), _GRID)
    return np.interp(sin_dec, centres, SIN_DEC_DENSITY) / norm


def energy_params(sin_dec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, sigma, tau) of the log10-energy distribution at ``sin_dec`` (linear in sin dec)."""
    centres = 0.5 * (ENERGY_KNOT_EDGES[1:] + ENERGY_KNOT_EDGES[:-1])
    return (
        np.interp(sin_dec, centres, ENERGY_MU),
        np.interp(sin_dec, centres, ENERGY_SIGMA),
        np.interp(sin_dec, centres, ENERGY_TAU),
    )


def sample_background(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` background events.

    Returns
    -------
    sin_dec, log10_energy, ang_err_deg
        Arrays of length ``n``; AngErr is at least 0.2 deg.
    """
    cdf, grid = _sin_dec_inverse_cdf()
    s = np.interp(rng.random(n), cdf, grid)
    mu, sig, tau = energy_params(s)
    y = mu + sig * rng.standard_normal(n) + rng.exponential(1.0, n) * tau
    south = s < SIN_DEC_HORIZON
    a = np.where(south[:, None], np.array(ANGERR_SOUTH)[None, :], np.array(ANGERR_NORTH)[None, :])
    sd = np.where(south, ANGERR_SOUTH_SD, ANGERR_NORTH_SD)
    u = y - 4.0
    log_ae = a[:, 0] + a[:, 1] * u + a[:, 2] * u**2 + a[:, 3] * s + sd * rng.standard_normal(n)
    ang_err = np.clip(10.0**log_ae, ANG_ERR_FLOOR_DEG, 180.0)
    return s, y, ang_err


__all__ = ["energy_params", "sample_background", "sin_dec_density"]
