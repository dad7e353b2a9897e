"""Sensitivity and discovery potential against the exact counting-experiment answers."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from scipy import stats

from bayesnu.errors import ConfigError
from bayesnu.frequentist.conversion import FluxConversion
from bayesnu.frequentist.passing import find_strength
from bayesnu.frequentist.sensitivity import discovery_potential, sensitivity, sensitivity_curve, trial_setup
from bayesnu.frequentist.testproblems import counting_trial
from bayesnu.frequentist.trials import run_trials, signal_sampler

B = 10.0


def _ts_of_n(n: np.ndarray, b: float) -> np.ndarray:
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > b, 2 * (n * np.log(n / b) - (n - b)), 0.0)


@pytest.fixture(scope="module")
def background():
    return run_trials(counting_trial, 20000, seed=1, inputs=(0.0, B), batch_size=400)["ts"]


@pytest.fixture(scope="module")
def sampler():
    return signal_sampler(counting_trial, (0.0, B), batch_size=400)


def test_sensitivity_matches_the_exact_poisson_answer(background, sampler):
    # median background TS is 0 (P(n <= 10) > 1/2), so a trial passes iff n >= 11:
    # P(N >= 11 | mu + b) = chi2.cdf(2 (mu + b), 22) = 0.9
    exact = stats.chi2.ppf(0.9, 22) / 2 - B
    res = sensitivity(
        sampler,
        background,
        seed=3,
        n_trials=1200,
        strength_init=2.0,
        n_boot=30,
        conversion=FluxConversion(1e11),
    )
    assert res.threshold == 0.0 and res.threshold_method == "median"
    assert abs(res.strength - exact) < 4 * res.strength_err + 0.05, (res.strength, res.strength_err, exact)
    assert res.flux["phi0_per_gev_cm2_s"] == pytest.approx(res.strength / 1e11)
    # same seed, same numbers
    again = sensitivity(sampler, background, seed=3, n_trials=1200, strength_init=2.0, n_boot=30)
    assert again.strength == res.strength and again.strength_err == res.strength_err
    # another seed agrees within the stated uncertainties
    other = sensitivity(sampler, background, seed=4, n_trials=1200, strength_init=2.0, n_boot=30)
    assert abs(other.strength - res.strength) < 3 * np.hypot(other.strength_err, res.strength_err)


def test_discovery_potential_matches_the_exact_poisson_answer(background, sampler):
    res = discovery_potential(
        sampler, background, seed=5, sigma=3.0, n_trials=1200, strength_init=5.0, n_boot=30
    )
    assert res.threshold_method == "empirical"  # 20000 * 1.35e-3 = 27 trials above
    n_grid = np.arange(0, 200)
    n_thr = n_grid[_ts_of_n(n_grid, B) <= res.threshold * (1 + 1e-9)].max()  # passing: n > n_thr
    exact = stats.chi2.ppf(0.5, 2 * (n_thr + 1)) / 2 - B
    assert abs(res.strength - exact) < 4 * res.strength_err + 0.05, (res.strength, res.strength_err, exact)
    five = discovery_potential(
        sampler, background, seed=6, sigma=5.0, n_trials=800, strength_init=10.0, n_boot=20
    )
    assert five.threshold_method == "tail_fit"
    assert five.strength > res.strength


def test_find_strength_rejects_bad_targets(sampler):
    with pytest.raises(ConfigError):
        find_strength(sampler, 0.0, 1.2, seed=1)
    with pytest.raises(ConfigError, match="no strength"):
        find_strength(lambda mu, n, seed: np.zeros(n), 0.0, 0.9, seed=1, max_doublings=3)


def test_sensitivity_curve_table():
    def factory(dec_deg: float):
        b = 5.0 + 10.0 * np.cos(np.radians(dec_deg))
        return trial_setup(
            counting_trial,
            (0.0, b),
            conversion=FluxConversion(1e11 * (1 + dec_deg / 90)),
            strength_init=3.0,
            batch_size=400,
        )

    table = sensitivity_curve(
        factory, [-30.0, 60.0], seed=2, n_background=2000, discovery_sigmas=(3.0,), n_trials=600, n_boot=10
    )
    assert list(table["dec_deg"]) == [-30.0, 60.0]
    for name in ("sens_ns", "sens_ns_err", "sens_phi0", "sens_e2dnde", "disc3sigma_ns", "disc3sigma_ts"):
        assert name in table.colnames
    assert table["sens_phi0"].unit == u.Unit("GeV-1 cm-2 s-1")
    assert table["sens_e2dnde"].unit == u.Unit("GeV cm-2 s-1")
    # more background at -30 deg (b = 13.7) than at 60 deg (b = 10): a larger sensitivity in ns
    assert table["sens_ns"][0] > table["sens_ns"][1]
    assert np.all(table["disc3sigma_ns"] > table["sens_ns"])
    np.testing.assert_allclose(table["sens_e2dnde"], 1e6 * table["sens_phi0"])
