"""Flux models: integrals against quadrature, cut-off, gradients, conversions."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import integrate

from bayesnu.flux import PowerLaw, norm_from_ns, ns_from_norm


@pytest.mark.parametrize("gamma", [1.0, 1.5, 2.0, 2.7, 3.9])
def test_power_law_integral(gamma: float) -> None:
    pl = PowerLaw(norm=2e-12, gamma=gamma)
    for e1, e2 in [(100.0, 1000.0), (1e3, 1.6e3), (1e5, 1e8)]:
        ref = integrate.quad(
            lambda x: 2e-12 * (np.exp(x) / 1000.0) ** -gamma * np.exp(x), np.log(e1), np.log(e2)
        )[0]
        assert float(pl.integral(e1, e2)) == pytest.approx(ref, rel=1e-8)


def test_cutoff_integral_and_shape() -> None:
    pl = PowerLaw(norm=1e-11, gamma=2.2, e_cut_gev=5e4)
    for e1, e2 in [(100.0, 158.49), (1e4, 1e5), (1e3, 1e4)]:
        ref = integrate.quad(lambda x: float(pl.dnde(np.exp(x))) * np.exp(x), np.log(e1), np.log(e2))[0]
        assert float(pl.integral(e1, e2)) == pytest.approx(ref, rel=1e-9)
    assert float(pl.dnde(1000.0)) == pytest.approx(1e-11 * np.exp(-1000 / 5e4))
    assert float(pl.e2dnde(1000.0)) == pytest.approx(1e6 * float(pl.dnde(1000.0)))


def test_gradient_in_gamma_matches_finite_difference() -> None:
    def f(g: float) -> jax.Array:
        return PowerLaw(1.0, g).shape_integral(100.0, 1e6)

    g0 = 2.3
    fd = (f(g0 + 1e-6) - f(g0 - 1e-6)) / 2e-6
    assert float(jax.grad(f)(g0)) == pytest.approx(float(fd), rel=1e-6)
    # gamma = 1 is a removable singularity.
    assert np.isfinite(float(jax.grad(f)(1.0)))


def test_vmap_and_conversions() -> None:
    gammas = np.linspace(1.0, 4.0, 7)
    vals = jax.vmap(lambda g: PowerLaw(1.0, g).shape_integral(1e3, 1e4))(gammas)
    assert vals.shape == (7,) and np.all(np.diff(np.asarray(vals)) < 0)
    assert float(norm_from_ns(30.0, 1.5e13)) == pytest.approx(2e-12)
    assert float(ns_from_norm(2e-12, 1.5e13)) == pytest.approx(30.0)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="e0_gev"):
        PowerLaw(1.0, 2.0, e0_gev=-1.0)
    with pytest.raises(ValueError, match="e_cut_gev"):
        PowerLaw(1.0, 2.0, e_cut_gev=0.0)
