"""p-values: Wilks with boundary, empirical with binomial errors, chi2-mixture tail fit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesnu.errors import ConfigError
from bayesnu.frequentist.pvalues import (
    chi2_mixture_isf,
    chi2_mixture_sf,
    empirical_pvalue,
    fit_chi2_tail,
    pvalue,
    pvalue_from_sigma,
    sigma_from_pvalue,
    ts_threshold,
    wilks_pvalue,
)
from bayesnu.frequentist.testproblems import PeakProblem, peak_trial
from bayesnu.frequentist.trials import run_trials


def _mixture(n: int, eta: float, ndof: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < eta, rng.chisquare(ndof, n), 0.0)


def test_wilks_with_boundary_is_the_one_sided_gaussian():
    z = np.array([0.5, 1.0, 2.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(sigma_from_pvalue(wilks_pvalue(z**2)), z, rtol=1e-9)
    assert wilks_pvalue(0.0) == 1.0
    assert wilks_pvalue(2.705543454095413) == pytest.approx(0.05, rel=1e-9)
    assert wilks_pvalue(3.841458820694124, boundary=False) == pytest.approx(0.05, rel=1e-9)
    assert wilks_pvalue(4.0, ndof=2) == pytest.approx(0.5 * stats.chi2.sf(4.0, 2))
    assert pvalue_from_sigma(5.0) == pytest.approx(2.866515718791939e-07, rel=1e-9)


def test_mixture_isf_inverts_sf():
    p = np.array([0.3, 1e-3, 1e-7])
    ts = chi2_mixture_isf(p, 0.4, 1.3)
    np.testing.assert_allclose(chi2_mixture_sf(ts, 0.4, 1.3), p, rtol=1e-9)
    assert chi2_mixture_isf(0.5, 0.4, 1.3) == 0.0


def test_empirical_pvalue_counts_ties_and_bounds_zero_counts():
    bg = [0, 0, 0, 1, 2, 2, 3]
    e = empirical_pvalue([0.0, 2.0, 3.5], bg)
    np.testing.assert_array_equal(e.n_above, [7, 3, 0])
    np.testing.assert_allclose(e.pvalue, [1.0, 3 / 7, 0.0])
    np.testing.assert_allclose(e.pvalue_err[1], np.sqrt(3 / 7 * 4 / 7 / 7))
    assert e.ci_low[1] < 3 / 7 < e.ci_high[1]
    assert e.ci_low[2] == 0.0 and 0.1 < e.ci_high[2] < 0.3  # k = 0: a finite upper bound


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tail_fit_recovers_eta_and_ndof(seed):
    ts = _mixture(20000, 0.3, 1.7, seed)
    fit = fit_chi2_tail(ts)
    assert fit.eta == pytest.approx(np.mean(ts > 0))  # zero/non-zero split: eta = m/n exactly
    assert abs(fit.eta - 0.3) < 4 * fit.eta_err
    assert abs(fit.ndof - 1.7) < 4 * fit.ndof_err
    assert fit.ks_pvalue > 1e-3
    tail = fit_chi2_tail(ts, ts_fit_min=2.0)
    assert abs(tail.ndof - 1.7) < 4 * tail.ndof_err
    assert abs(tail.eta - 0.3) < 4 * tail.eta_err


def test_tail_fit_detects_a_wrong_model():
    rng = np.random.default_rng(3)
    ts = np.where(rng.random(20000) < 0.5, rng.exponential(3.0, 20000) ** 1.5, 0.0)
    assert fit_chi2_tail(ts).ks_pvalue < 1e-3


def test_combined_pvalue_uses_empirical_then_tail():
    ts = _mixture(5000, 0.45, 1.2, 4)
    r = pvalue([0.0, 1.0, 25.0], ts, min_above=20)
    assert list(r.method) == ["empirical", "empirical", "tail_fit"]
    assert r.pvalue[0] == 1.0
    truth = 0.45 * stats.chi2.sf(25.0, 1.2)
    assert abs(r.pvalue[2] - truth) < 4 * r.pvalue_err[2]
    assert r.sigma[2] == pytest.approx(sigma_from_pvalue(r.pvalue[2]))
    w = pvalue(25.0)
    assert w.method == "wilks" and w.pvalue == pytest.approx(0.5 * stats.chi2.sf(25.0, 1))


def test_ts_threshold_empirical_and_extrapolated():
    ts = _mixture(40000, 0.5, 1.0, 5)
    t3, how3 = ts_threshold(ts, sigma=3.0)
    assert how3 == "empirical"
    assert abs(t3 - 9.0) < 1.0  # half-chi2(1): 3 sigma at TS = 9
    t5, how5 = ts_threshold(ts, sigma=5.0)
    assert how5 == "tail_fit"
    assert abs(t5 - 25.0) < 1.5
    with pytest.raises(ConfigError):
        ts_threshold(ts)


def test_bad_background_samples():
    with pytest.raises(ConfigError, match="empty"):
        empirical_pvalue(1.0, [])
    with pytest.raises(ConfigError, match="non-finite"):
        pvalue(1.0, [0.0, np.nan, 1.0])
    with pytest.raises(ConfigError, match="too few"):
        fit_chi2_tail(np.zeros(100))


def test_wilks_agrees_with_background_trials_in_the_asymptotic_regime():
    """2000 background events, ~400 within one signal width: Chernoff's 1/2 chi2(1) holds."""
    problem = PeakProblem(n_background=2000.0, sigma=0.2, n_max=2304)
    res = run_trials(peak_trial, 6000, seed=12, inputs=(0.0, problem), batch_size=500)
    ts = res["ts"]
    assert not res["overflow"].any()
    grid = np.array([0.5, 1.0, 2.71, 4.0])
    emp = empirical_pvalue(grid, ts)
    z = (emp.pvalue - wilks_pvalue(grid)) / emp.pvalue_err
    assert np.all(np.abs(z) < 4), z
    fit = fit_chi2_tail(ts)
    assert abs(fit.eta - 0.5) < 4 * fit.eta_err
    assert abs(fit.ndof - 1.0) < 4 * fit.ndof_err
