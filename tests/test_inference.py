"""Generic inference engines: bounded MAP, NUTS to ArviZ, summaries, netCDF."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from bayesnu.errors import BayesnuError, ConfigError
from bayesnu.inference import ParamSpec, load_netcdf, maximize, run_nuts, save_netcdf, summarize


def gauss2d(theta: dict, mu: jnp.ndarray, prec: jnp.ndarray) -> jnp.ndarray:
    x = jnp.stack([theta["a"], theta["b"]]) - mu
    return -0.5 * x @ prec @ x


def test_maximize_unbounded_and_covariance() -> None:
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    mu = jnp.array([1.5, -0.3])
    res = maximize(
        gauss2d, [ParamSpec("a", 0.0), ParamSpec("b", 0.0)], args=(mu, jnp.asarray(np.linalg.inv(cov)))
    )
    assert res.success
    assert res.params["a"] == pytest.approx(1.5, abs=1e-6) and res.params["b"] == pytest.approx(
        -0.3, abs=1e-6
    )
    np.testing.assert_allclose(res.cov, cov, rtol=1e-6)
    assert res.errors()["a"] == pytest.approx(np.sqrt(2.0), rel=1e-6)


def test_maximize_bound_active_and_fixed() -> None:
    mu = jnp.array([-1.0, 2.0])
    prec = jnp.eye(2)
    res = maximize(gauss2d, [ParamSpec("a", 1.0, lower=0.0), ParamSpec("b", 0.0)], args=(mu, prec))
    assert res.params["a"] == pytest.approx(0.0, abs=1e-10)
    assert res.cov is None  # on a bound: no Hessian covariance
    res2 = maximize(gauss2d, [ParamSpec("a", 1.0), ParamSpec("b", 0.0)], args=(mu, prec), fixed={"b": 5.0})
    assert res2.params["b"] == 5.0 and res2.free == ("a",)
    assert res2.logp == pytest.approx(-0.5 * 9.0)
    with pytest.raises(ConfigError, match="unknown parameter"):
        maximize(gauss2d, [ParamSpec("a", 1.0), ParamSpec("b", 0.0)], args=(mu, prec), fixed={"c": 1.0})


def double_well(theta: dict) -> jnp.ndarray:
    x = theta["x"]
    # Local maximum at x ~ -1 (height 1), global at x ~ +2 (height 2).
    return jnp.exp(-((x + 1.0) ** 2) / 0.1) + 2.0 * jnp.exp(-((x - 2.0) ** 2) / 0.1)


def test_multistart_finds_global_maximum() -> None:
    single = maximize(double_well, [ParamSpec("x", -1.2, lower=-3.0, upper=3.0)])
    assert single.params["x"] == pytest.approx(-1.0, abs=1e-3)
    multi = maximize(double_well, [ParamSpec("x", -1.2, lower=-3.0, upper=3.0)], n_random_starts=8, seed=3)
    assert multi.params["x"] == pytest.approx(2.0, abs=1e-3)
    assert len(multi.starts) == 9


def test_param_spec_validation() -> None:
    with pytest.raises(ConfigError, match="lower bound"):
        ParamSpec("g", 2.0, lower=4.0, upper=1.0)
    with pytest.raises(ConfigError, match="outside"):
        ParamSpec("g", 5.0, lower=1.0, upper=4.0)


def normal_model(y: jnp.ndarray) -> None:
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def test_nuts_datatree_summary_and_netcdf(tmp_path: Path) -> None:
    y = np.random.default_rng(0).normal(3.0, 2.0, size=200)
    dt = run_nuts(
        normal_model,
        model_args=(jnp.asarray(y),),
        chains=2,
        draws=400,
        warmup=300,
        seed=1,
        observed_data={"n_obs": 200},
        attrs={"analysis": "toy"},
    )
    assert {"posterior", "sample_stats", "observed_data"} <= set(dt.children)
    s = summarize(dt, ["mu", "sigma"])
    assert s["chains"] == 2 and s["draws"] == 400
    mu = s["params"]["mu"]
    assert mu["mean"] == pytest.approx(y.mean(), abs=4 * 2.0 / np.sqrt(200))
    assert mu["q05"] < mu["mean"] < mu["q95"]
    assert mu["r_hat"] < 1.05 and mu["ess_bulk"] > 100
    assert s["divergences"] == 0
    p = save_netcdf(dt, tmp_path / "post.nc")
    back = load_netcdf(p)
    np.testing.assert_array_equal(back["posterior"]["mu"].values, dt["posterior"]["mu"].values)
    assert back["posterior"].attrs["analysis"] == "toy"
    # Same seed, same draws.
    dt2 = run_nuts(normal_model, model_args=(jnp.asarray(y),), chains=2, draws=400, warmup=300, seed=1)
    np.testing.assert_array_equal(dt2["posterior"]["mu"].values, dt["posterior"]["mu"].values)


def nan_region_model() -> None:
    x = numpyro.sample("x", dist.Normal(0.0, 1.0))
    numpyro.factor("nan", jnp.where(x > 1.0, jnp.nan, 0.0))


def nan_derived_model() -> None:
    x = numpyro.sample("x", dist.Normal(0.0, 1.0))
    numpyro.deterministic("log_x", jnp.log(x))


def test_nuts_reports_divergences_and_refuses_nan() -> None:
    # A NaN log-density region is rejected by NUTS and shows up as divergences, never as NaN draws.
    with pytest.warns(UserWarning, match="divergent"):
        dt = run_nuts(nan_region_model, chains=1, draws=300, warmup=200, seed=0)
    assert summarize(dt)["divergences"] > 0
    assert np.all(dt["posterior"]["x"].values <= 1.0)
    # A derived quantity that becomes NaN is an error, not silently returned.
    with pytest.raises(BayesnuError, match="non-finite draws of 'log_x'"):
        run_nuts(nan_derived_model, chains=1, draws=100, warmup=100, seed=0)
