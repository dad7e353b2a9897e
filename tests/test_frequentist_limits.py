"""Upper limits: profile-likelihood conventions, Neyman coverage, Bayesian credible limits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesnu.errors import ConfigError
from bayesnu.frequentist.conversion import FluxConversion
from bayesnu.frequentist.limits import (
    credible_interval,
    credible_upper_limit,
    delta_stat,
    neyman_upper_limit,
    profile_interval,
    profile_upper_limit,
)
from bayesnu.frequentist.passing import PassingFraction, fit_passing_curve, strength_from_curve
from bayesnu.frequentist.testproblems import PeakProblem, counting_trial, peak_trial
from bayesnu.frequentist.trials import run_trials

PROBLEM = PeakProblem(n_background=100.0, sigma=0.05, n_max=192)


def test_delta_stat_conventions():
    assert delta_stat(0.95, one_sided=True) == pytest.approx(2.705543, abs=1e-6)
    assert delta_stat(0.90, one_sided=True) == pytest.approx(1.642374, abs=1e-6)
    assert delta_stat(0.90, one_sided=False) == pytest.approx(2.705543, abs=1e-6)
    assert delta_stat(0.6826894921370859, one_sided=False) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ConfigError):
        delta_stat(0.3, one_sided=True)


def test_profile_limits_of_a_gaussian_likelihood():
    prof = lambda m: (m - 1.3) ** 2 / 0.5**2  # noqa: E731
    ul = profile_upper_limit(prof, 0.95, conversion=FluxConversion(2.0e12, e0_gev=1000.0))
    assert ul.upper == pytest.approx(1.3 + 0.5 * stats.norm.ppf(0.95), rel=1e-9)
    assert ul.best_fit == pytest.approx(1.3, abs=1e-8) and not ul.at_boundary
    assert ul.flux["upper_phi0_per_gev_cm2_s"] == pytest.approx(ul.upper / 2.0e12)
    assert ul.flux["upper_e2dnde_gev_per_cm2_s"] == pytest.approx(1e6 * ul.upper / 2.0e12)
    two = profile_upper_limit(prof, 0.90, one_sided=False)
    assert two.upper == pytest.approx(1.3 + 0.5 * stats.norm.ppf(0.95), rel=1e-9)
    iv = profile_interval(prof)
    assert (iv.lower, iv.upper) == pytest.approx((0.8, 1.8), rel=1e-9)
    # a scan (x, -2logL) gives the same limit through the spline
    x = np.linspace(0, 5, 40)
    assert profile_upper_limit((x, prof(x)), 0.95).upper == pytest.approx(ul.upper, rel=1e-6)


def test_profile_limit_at_the_boundary():
    prof = lambda m: (m + 1.0) ** 2  # noqa: E731 (unconstrained best fit at -1)
    ul = profile_upper_limit(prof, 0.9)
    assert ul.at_boundary and ul.best_fit == pytest.approx(0.0, abs=1e-9)
    z2 = stats.norm.ppf(0.9) ** 2
    assert ul.upper == pytest.approx(-1.0 + np.sqrt(1.0 + z2), rel=1e-8)  # bounded likelihood
    iv = profile_interval(prof, 0.9)
    assert iv.lower == 0.0


def test_profile_upper_limit_coverage_gaussian():
    """x ~ N(mu, 1), mu >= 0: for mu >= z_CL the bounded-likelihood limit covers exactly CL."""
    rng = np.random.default_rng(1)
    mu_true, n = 2.0, 2000
    xs = rng.normal(mu_true, 1.0, n)
    uls = np.array([profile_upper_limit(lambda m, x=x: (x - m) ** 2, 0.9).upper for x in xs])
    cover = np.mean(uls >= mu_true)
    assert abs(cover - 0.9) < 3 * np.sqrt(0.09 / n), cover


def test_passing_curve_fits_recover_a_known_curve():
    rng = np.random.default_rng(2)
    mu = np.linspace(2, 10, 9)
    n = np.full(mu.size, 800)
    k = rng.binomial(n, stats.norm.cdf((mu - 5.0) / 1.5))
    data = PassingFraction(mu, k, n)
    truth = 5.0 + 1.5 * stats.norm.ppf(0.9)
    for model in ("chi2", "erf", "monotone"):
        res = strength_from_curve(fit_passing_curve(data, model), 0.9, 0.0, n_boot=20, seed=1)
        assert abs(res.strength - truth) < 4 * res.strength_err + 0.05, (
            model,
            res.strength,
            res.strength_err,
        )
        assert res.strength_err > 0


def test_neyman_upper_limit_coverage_continuous_ts():
    """A fraction CL of Neyman upper limits lie above the true strength (1-D peak search)."""
    grid = np.arange(0.0, 36.1, 1.5)
    signal = [
        run_trials(peak_trial, 400, seed=1000 + i, inputs=(m, PROBLEM), batch_size=400)["ts"]
        for i, m in enumerate(grid)
    ]
    mu_true, n_obs = 9.0, 800
    observed = run_trials(peak_trial, n_obs, seed=7, inputs=(mu_true, PROBLEM), batch_size=400)["ts"]
    uls = np.array(
        [
            neyman_upper_limit(t, strengths=grid, signal_ts=signal, cl=0.9, model="monotone", n_boot=0).upper
            for t in observed
        ]
    )
    cover = np.mean(uls >= mu_true)  # a NaN limit (beyond the grid) counts as not covering
    assert abs(cover - 0.9) < 3 * np.sqrt(0.09 / n_obs) + 0.01, cover


def test_neyman_upper_limit_overcovers_for_discrete_ts():
    b = 4.0
    grid = np.arange(0.0, 30.1, 1.0)
    signal = [
        run_trials(counting_trial, 400, seed=2000 + i, inputs=(m, b), batch_size=400)["ts"]
        for i, m in enumerate(grid)
    ]
    observed = run_trials(counting_trial, 400, seed=9, inputs=(6.0, b), batch_size=400)["ts"]
    uls = np.array(
        [
            neyman_upper_limit(t, strengths=grid, signal_ts=signal, cl=0.9, model="monotone", n_boot=0).upper
            for t in observed
        ]
    )
    assert np.mean(uls >= 6.0) >= 0.9 - 3 * np.sqrt(0.09 / 400)


def test_neyman_adaptive_matches_the_exact_counting_limit():
    """Counting with b=3: P(TS > ts_obs | mu) = P(N > n_obs | mu+b) is a chi2 CDF in mu."""
    b, n_obs = 3.0, 6
    ts_obs = 2 * (n_obs * np.log(n_obs / b) - (n_obs - b))

    def sampler(mu: float, n: int, seed: int) -> np.ndarray:
        return run_trials(counting_trial, n, seed=seed, inputs=(mu, b), batch_size=400)["ts"]

    # P(N >= n_obs + 1 | lam) = chi2.cdf(2 lam, 2 (n_obs + 1)) = 0.9
    exact = stats.chi2.ppf(0.9, 2 * (n_obs + 1)) / 2 - b
    res = neyman_upper_limit(
        ts_obs, sampler=sampler, cl=0.9, seed=4, n_trials=1600, strength_init=3.0, n_boot=30
    )
    assert abs(res.upper - exact) < 4 * res.upper_err + 0.05, (res.upper, res.upper_err, exact)
    again = neyman_upper_limit(
        ts_obs, sampler=sampler, cl=0.9, seed=4, n_trials=1600, strength_init=3.0, n_boot=30
    )
    assert again.upper == res.upper and again.upper_err == res.upper_err


def test_credible_limits():
    rng = np.random.default_rng(3)
    s = np.abs(rng.normal(0.0, 1.0, 200000))  # half-normal posterior peaking at the boundary
    q = credible_upper_limit(s, 0.9, conversion=FluxConversion(10.0))
    assert q.upper == pytest.approx(stats.halfnorm.ppf(0.9), rel=0.01)
    assert q.flux["upper_phi0_per_gev_cm2_s"] == pytest.approx(q.upper / 10.0)
    h = credible_upper_limit(s, 0.9, method="hdi")
    assert h.upper == pytest.approx(q.upper, rel=0.01) and h.lower < 0.01
    g = rng.normal(5.0, 1.0, 200000)
    lo, hi = credible_interval(g, 0.6826894921370859)
    assert hi - lo == pytest.approx(2.0, abs=0.02)
    assert (lo, hi) == pytest.approx((4.0, 6.0), abs=0.05)
    assert credible_upper_limit(g, 0.9, method="hdi").upper == pytest.approx(
        5 + stats.norm.ppf(0.95), abs=0.02
    )


def test_credible_limit_from_a_datatree():
    xr = pytest.importorskip("xarray")
    post = xr.Dataset({"ns": (("chain", "draw"), np.abs(np.random.default_rng(0).normal(0, 2, (2, 5000))))})
    tree = xr.DataTree.from_dict({"posterior": post})
    lim = credible_upper_limit(tree, 0.9, var_name="ns")
    assert lim.n_samples == 10000
    assert lim.upper == pytest.approx(2 * stats.halfnorm.ppf(0.9), rel=0.03)
