"""Poisson and SAY binned likelihoods."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from scipy import integrate, special, stats

from bayesnu.likelihood.binned import bin_sums, binned_loglike, poisson_logpmf, say_logpmf


def test_say_is_poisson_marginalised_over_gamma():
    """SAY = integral of Poisson(k | lam) Gamma(lam | alpha, rate beta) d lam (arXiv:1901.04645)."""
    for k, mu, s2 in [(0, 0.7, 0.2), (3, 2.5, 0.9), (7, 4.0, 4.0), (1, 0.05, 0.01)]:
        alpha, beta = mu**2 / s2 + 1.0, mu / s2
        val, _ = integrate.quad(
            lambda lam, k=k, alpha=alpha, beta=beta: (
                stats.poisson.pmf(k, lam) * stats.gamma.pdf(lam, alpha, scale=1 / beta)
            ),
            0,
            np.inf,
            limit=200,
        )
        assert (
            abs(float(say_logpmf(jnp.asarray(float(k)), jnp.asarray(mu), jnp.asarray(s2))) - np.log(val))
            < 1e-8
        )


def test_say_tends_to_poisson():
    k, mu = jnp.asarray(4.0), jnp.asarray(3.2)
    assert abs(float(say_logpmf(k, mu, jnp.asarray(1e-6))) - float(poisson_logpmf(k, mu))) < 1e-5
    assert float(say_logpmf(k, mu, jnp.asarray(0.0))) == float(poisson_logpmf(k, mu))
    np.testing.assert_allclose(float(poisson_logpmf(k, mu)), stats.poisson.logpmf(4, 3.2), rtol=1e-13)


def test_special_cases_follow_release():
    k = jnp.asarray([0.0, 2.0, 0.0, 1.0])
    mu = jnp.asarray([0.0, 0.0, 1.0, 1.0])
    s2 = jnp.asarray([0.0, 0.0, 0.5, 0.5])
    vals = np.asarray(say_logpmf(k, mu, s2))
    assert vals[0] == 0.0 and vals[1] == -np.inf and np.isfinite(vals[2:]).all()
    # bins without MC are skipped whatever their count
    assert float(binned_loglike(k, mu, s2, jnp.asarray([False, False, True, True]))) == float(
        vals[2] + vals[3]
    )


def test_bin_sums():
    w = jnp.asarray([1.0, 2.0, 3.0, 4.0])
    mu, s2 = bin_sums(w, jnp.asarray([0, 0, 2, 2]), 3)
    np.testing.assert_allclose(mu, [3, 0, 7])
    np.testing.assert_allclose(s2, [5, 0, 25])
    assert abs(float(special.gammaln(5.0)) - np.log(24)) < 1e-12
