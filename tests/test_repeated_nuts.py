"""RepeatedNUTS: one compiled NUTS chain reused across data sets."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from bayesnu.errors import ConfigError
from bayesnu.inference.repeated_nuts import RepeatedNUTS


def _model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def test_one_executable_for_many_data_sets_and_correct_posterior():
    rng = np.random.default_rng(3)
    sampler = RepeatedNUTS(_model, {"mu": 0.0, "sigma": 1.0}, warmup=300, draws=600, thin=2)
    for k, true_mu in enumerate((-2.0, 0.5, 4.0)):
        y = jnp.asarray(rng.normal(true_mu, 1.5, size=200))
        out = sampler.run(jax.random.PRNGKey(k), y=y)
        assert out.samples["mu"].shape == (300,)
        assert out.diverging.shape == (300,)
        # Conjugate-ish check: posterior mean of mu is the sample mean within a few MC errors.
        se = float(np.std(y)) / np.sqrt(200)
        assert abs(out.samples["mu"].mean() - float(y.mean())) < 0.5 * se
        assert abs(out.samples["mu"].std() - se) < 0.25 * se
        assert np.all(out.samples["sigma"] > 0)
    assert sampler.n_compiled == 1


def test_same_key_same_draws():
    y = jnp.linspace(-1.0, 1.0, 50)
    s = RepeatedNUTS(_model, {"mu": 0.0, "sigma": 1.0}, warmup=50, draws=50)
    a = s.run(jax.random.PRNGKey(7), y=y).samples["mu"]
    b = s.run(jax.random.PRNGKey(7), y=y).samples["mu"]
    np.testing.assert_array_equal(a, b)


def test_bad_settings():
    with pytest.raises(ConfigError, match="thin"):
        RepeatedNUTS(_model, {"mu": 0.0, "sigma": 1.0}, warmup=10, draws=5, thin=10)
