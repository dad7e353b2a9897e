"""Simulation-based calibration of the diffuse posterior for (astro_norm, astro_gamma), small and fast.

The fast version: every nuisance parameter fixed at the release's start value, uniform
priors astro_norm ~ U(0, 15), astro_gamma ~ U(2, 3.5), counts simulated from the
likelihood's own generative model (SAY: Poisson-gamma; Poisson), and the exact posterior
on a 61 x 61 grid (prior x likelihood, trapezoidal marginals). The full version with
the nuisances free and NUTS is benchmarks/bench_sbc_diffuse.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesnu.analyses.diffuse import DiffuseAnalysis
from bayesnu.analyses.diffuse.calibration import (
    DiffuseGrid,
    draw_counts,
    expected_bin_sums,
    run_diffuse_sbc,
    simulate_counts,
)
from bayesnu.analyses.diffuse.card import read_hese_data_placeholder
from bayesnu.analyses.diffuse.params import PARAMETERS
from bayesnu.data.hese_simulate import HESESimulationConfig, simulate_hese_mc
from bayesnu.errors import ConfigError
from bayesnu.likelihood.binned import say_logpmf

pytestmark = pytest.mark.xdist_group("diffuse_sbc")

PRIORS = {"astro_norm": {"lower": 0.0, "upper": 15.0}, "astro_gamma": {"lower": 2.0, "upper": 3.5}}
NUISANCE_FIXED = {n: p.init for n, p in PARAMETERS.items() if n not in ("astro_norm", "astro_gamma")}


@pytest.fixture(scope="module")
def mc():
    return simulate_hese_mc(HESESimulationConfig(n_neutrino=12000, n_muon=400, seed=2))


def _analysis(mc, likelihood: str, **kw) -> DiffuseAnalysis:
    kw.setdefault("fixed", NUISANCE_FIXED)
    kw.setdefault("priors", PRIORS)
    return DiffuseAnalysis(read_hese_data_placeholder(), mc, likelihood=likelihood, **kw)


def test_say_generative_model_matches_the_say_likelihood() -> None:
    """Counts drawn as Poisson(Gamma(alpha, beta)) have exactly the SAY probabilities."""
    rng = np.random.default_rng(3)
    mu, s2 = 4.0, 6.0  # large MC variance: far from Poisson
    k = draw_counts(np.full(40000, mu), np.full(40000, s2), True, "say", rng)
    kmax = 20
    observed = np.bincount(np.minimum(k.astype(int), kmax), minlength=kmax + 1)
    p = np.exp(np.asarray(say_logpmf(np.arange(kmax, dtype=float), mu, s2)))
    expected = 40000 * np.append(p, 1.0 - p.sum())
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    assert stats.chi2.sf(chi2, kmax) > 0.001, chi2
    assert k.mean() == pytest.approx(mu + s2 / mu, rel=0.02)  # gamma mean alpha / beta
    # no MC: no events; sigma2 = 0: Poisson
    assert draw_counts(5.0, 1.0, False, "say", rng) == 0.0
    k0 = draw_counts(np.full(20000, 3.0), 0.0, True, "say", rng)
    assert k0.mean() == pytest.approx(3.0, rel=0.03) and k0.var() == pytest.approx(3.0, rel=0.05)


def test_grid_uses_the_model_bin_sums(mc) -> None:
    ana = _analysis(mc, "say")
    grid = DiffuseGrid(ana, 5, 4)
    theta = ana.full_params({"astro_norm": grid.norm[3], "astro_gamma": grid.gamma[2]})
    mu, s2 = expected_bin_sums(ana.inputs, theta)
    keep = np.asarray(ana.inputs.has_mc)
    np.testing.assert_allclose(np.asarray(grid.mu[3, 2]), mu[keep], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grid.s2[3, 2]), s2[keep], rtol=1e-12)
    counts = simulate_counts(ana.inputs, theta, np.random.default_rng(0))
    assert counts.shape == (ana.binning.n_bins,) and np.all(counts[~keep] == 0)


@pytest.mark.parametrize(("likelihood", "n"), [("say", 150), ("poisson", 200)])
def test_sbc_grid_astro_norm_gamma(mc, likelihood: str, n: int) -> None:
    """Ranks uniform (chi-square p > 0.01); 68% / 90% intervals cover within 3 binomial sigma."""
    res = run_diffuse_sbc(_analysis(mc, likelihood), n, seed=11, method="grid", n_grid=(61, 61))
    assert res.names == ("astro_norm", "astro_gamma") and res.truths.shape == (n, 2)
    for name in res.names:
        assert res.uniformity[name].pvalue > 0.01, (name, res.table())
        for cov in res.coverage[name]:
            assert cov.consistent(3.0), (name, cov, res.table())


def test_sbc_nuts_path_runs(mc) -> None:
    """The NUTS variant (nuisances free) runs and ranks every free parameter (no statistics here)."""
    fixed = {k: v for k, v in NUISANCE_FIXED.items() if k not in ("conv_norm", "muon_norm")}
    ana = _analysis(mc, "poisson", fixed=fixed)
    res = run_diffuse_sbc(ana, 2, seed=1, method="nuts", draws=40, warmup=40, thin=2)
    assert res.names == ("astro_norm", "astro_gamma", "conv_norm", "muon_norm")
    assert res.n_draws == 20 and np.all((res.ranks >= 0) & (res.ranks <= 20))
    assert res.divergences.shape == (2,)
    assert "astro_gamma" in res.table()


def test_sbc_configuration_errors(mc) -> None:
    with pytest.raises(ConfigError, match=r"prompt_norm .* improper"):
        run_diffuse_sbc(_analysis(mc, "say", fixed={}), 1, method="nuts")
    with pytest.raises(ConfigError, match="exactly astro_norm and astro_gamma free"):
        fixed = {k: v for k, v in NUISANCE_FIXED.items() if k != "conv_norm"}
        run_diffuse_sbc(_analysis(mc, "say", fixed=fixed), 1, method="grid")
    with pytest.raises(ConfigError, match="needs astro_gamma free"):
        run_diffuse_sbc(_analysis(mc, "say", fixed={**NUISANCE_FIXED, "astro_gamma": 2.5}), 1)
