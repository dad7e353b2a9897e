"""Neyman and Bayesian upper limits of the point-source analysis on a simulated release.

The toy problems of ``tests/test_frequentist_limits.py`` check coverage and exact
answers; here the same engines run through :func:`bayesnu.analyses.ps_frequentist.upper_limit`
on a small simulated IC40 release (6000 events) with a weak E^-2 source injected at
(150, 20) deg (Phi0 = 8e-15 GeV^-1 cm^-2 s^-1 at 1 TeV, 6.6 expected events), and the
limits must be sane: above the best fit, increasing with CL, in flux exactly the
analysis' own ns -> Phi0 conversion, and close to the profile-likelihood (Wilks) limit.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesnu.analyses import ps_frequentist as pf
from bayesnu.analyses.point_source import PointSourceAnalysis, Source
from bayesnu.data.ps_release import load_ps_release
from bayesnu.errors import ConfigError

SRC = (150.0, 20.0)
PHI0_TRUE = 8e-15
NEYMAN = {"n_trials": 512, "n_boot": 10}  # 512 // 4 = 128 = the sampler's batch: one compilation
NUTS = {"chains": 2, "draws": 300, "warmup": 300}


@pytest.fixture(scope="module")
def ana(tmp_path_factory: pytest.TempPathFactory) -> PointSourceAnalysis:
    from bayesnu.data.simulate import SourceSpec, simulate_release

    out = tmp_path_factory.mktemp("pslim") / "rel"
    simulate_release(
        out, seasons=["IC40"], seed=11, n_events=6000, sources=[SourceSpec(*SRC, PHI0_TRUE, 2.0)]
    )
    return PointSourceAnalysis(load_ps_release(out, "IC40"), Source(*SRC, "sim"))


def test_neyman_upper_limit(ana: PointSourceAnalysis) -> None:
    fit = ana.fit(gamma_fixed=2.0)  # measured: TS 23.5, ns 4.46
    assert fit.ts > 10 and fit.ns > 1
    ul90 = pf.upper_limit(ana, method="neyman", cl=0.9, gamma=2.0, seed=1, **NEYMAN)
    ul95 = pf.upper_limit(ana, method="neyman", cl=0.95, gamma=2.0, seed=1, **NEYMAN)
    # measured: 7.33 +- 0.19 (90%) and 8.62 +- 0.17 (95%)
    assert ul90.ts_obs == fit.ts and ul90.cl == 0.9 and ul95.cl == 0.95
    assert ul90.upper > fit.ns
    assert ul95.upper > ul90.upper + 2 * np.hypot(ul90.upper_err, ul95.upper_err)
    for ul in (ul90, ul95):
        assert np.isfinite(ul.upper_err) and 0 < ul.upper_err < 0.2 * ul.upper
        # the passing-fraction curve the limit was solved on: P(TS > TS_obs | upper) = CL
        assert float(ul.curve(ul.upper)) == pytest.approx(ul.cl, abs=1e-6)
        phi0 = ul.flux["upper_phi0_per_gev_cm2_s"]
        assert phi0 == pytest.approx(ana.flux_norm(ul.upper, 2.0), rel=1e-9)
        assert ul.flux["upper_e2dnde_gev_per_cm2_s"] == pytest.approx(ana.e0_gev**2 * phi0, rel=1e-12)
        assert ana.ns_from_flux(phi0, 2.0) == pytest.approx(ul.upper, rel=1e-9)
    # with this much signal the asymptotic (Wilks) limit is close: measured 7.96 vs 7.33
    wilks = pf.upper_limit(ana, method="wilks", cl=0.9, gamma=2.0)
    assert ul90.upper == pytest.approx(wilks.upper, rel=0.25)
    # this dataset's injected signal (6.6 expected events) lies below both 90% limits
    assert ana.ns_from_flux(PHI0_TRUE, 2.0) < min(ul90.upper, wilks.upper)


def test_bayesian_upper_limit(ana: PointSourceAnalysis) -> None:
    fit = ana.fit()  # measured: ns 3.98, gamma 1.34
    ul90 = pf.upper_limit(ana, method="bayes", cl=0.9, seed=1, **NUTS)  # samples with the analysis' priors
    post = ana.sample(seed=1, **NUTS)
    again = pf.upper_limit(ana, method="bayes", cl=0.9, posterior=post)
    assert again == ul90  # the same seed gives the same posterior and limit
    ul95 = pf.upper_limit(ana, method="bayes", cl=0.95, posterior=post)
    ul68 = pf.upper_limit(ana, method="bayes", cl=0.68, posterior=post)
    # measured: 8.36 (90%), 9.81 (95%)
    assert ul90["method"] == "bayes" and ul90["cl"] == 0.9
    assert fit.ns < ul68["upper"] < ul90["upper"] < ul95["upper"]
    ns = post["posterior"]["ns"].values.ravel()
    gamma = post["posterior"]["gamma"].values.ravel()
    flux = post["posterior"]["flux_norm"].values.ravel()
    assert ul90["upper"] == pytest.approx(np.quantile(ns, 0.9), rel=1e-12)
    # flux limits: the CL quantile of the posterior flux, each sample converted with the
    # analysis' own yield at its gamma
    for i in np.linspace(0, ns.size - 1, 7).astype(int):
        assert flux[i] == pytest.approx(ana.flux_norm(ns[i], gamma[i]), rel=1e-8)
    for ul in (ul68, ul90, ul95):
        assert ul["upper_phi0_per_gev_cm2_s"] == pytest.approx(np.quantile(flux, ul["cl"]), rel=1e-12)
        assert ul["upper_e2dnde_gev_per_cm2_s"] == pytest.approx(
            ana.e0_gev**2 * ul["upper_phi0_per_gev_cm2_s"], rel=1e-12
        )
    assert (
        ul68["upper_phi0_per_gev_cm2_s"] < ul90["upper_phi0_per_gev_cm2_s"] < ul95["upper_phi0_per_gev_cm2_s"]
    )
    # a flat prior on ns: the 90% credible limit is near the profile-likelihood one (7.16)
    wilks = pf.upper_limit(ana, method="wilks", cl=0.9)
    assert ul90["upper"] == pytest.approx(wilks.upper, rel=0.3)


def test_unknown_method(ana: PointSourceAnalysis) -> None:
    with pytest.raises(ConfigError, match="unknown upper-limit method 'cls'"):
        pf.upper_limit(ana, method="cls")
