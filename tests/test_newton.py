"""Box-constrained Newton (bayesnu.inference.newton)."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from bayesnu.inference.newton import box_newton


def _rosen(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_unconstrained_rosenbrock_from_far():
    lo, hi = jnp.full(4, -jnp.inf), jnp.full(4, jnp.inf)
    r = jax.jit(lambda x0: box_newton(_rosen, x0, lo, hi, max_iter=200))(jnp.array([-1.2, 1.0, -0.5, 2.0]))
    assert bool(r.converged)
    np.testing.assert_allclose(np.asarray(r.x), 1.0, atol=1e-6)


def test_active_bounds_match_lbfgsb():
    # quadratic with its minimum outside the box: the solution sits on two bounds
    a = jnp.array([[3.0, 1.0, 0.2], [1.0, 2.0, 0.3], [0.2, 0.3, 1.0]])
    c = jnp.array([2.0, -3.0, 0.5])

    def f(x, shift):
        d = x - c - shift
        return 0.5 * d @ a @ d

    lo, hi = jnp.array([-1.0, 0.0, -5.0]), jnp.array([1.0, 5.0, 5.0])
    shifts = jnp.array([[0.0, 0.0, 0.0], [0.5, 4.0, -1.0], [-3.0, 1.0, 9.0]])
    res = jax.jit(jax.vmap(lambda s: box_newton(f, jnp.zeros(3), lo, hi, (s,))))(shifts)
    for k, s in enumerate(np.asarray(shifts)):
        ref = optimize.minimize(
            lambda x, s=s: float(f(jnp.asarray(x), s)),
            np.zeros(3),
            method="L-BFGS-B",
            bounds=list(zip(np.asarray(lo), np.asarray(hi))),
            options={"ftol": 1e-15, "gtol": 1e-12},
        )
        assert bool(res.converged[k])
        np.testing.assert_allclose(np.asarray(res.x[k]), ref.x, atol=1e-6)
        assert float(res.fun[k]) <= ref.fun + 1e-12


def test_nonconvex_start_finds_minimum_and_reports_failure():
    # double well: starting on the hump (negative curvature) still descends
    f = lambda x: jnp.sum((x**2 - 1.0) ** 2)  # noqa: E731
    r = box_newton(f, jnp.array([0.05, -0.1]), jnp.full(2, -3.0), jnp.full(2, 3.0))
    assert bool(r.converged)
    np.testing.assert_allclose(np.abs(np.asarray(r.x)), 1.0, atol=1e-7)
    # too few iterations: not converged, and says so
    r = box_newton(_rosen, jnp.array([-1.2, 1.0]), jnp.full(2, -jnp.inf), jnp.full(2, jnp.inf), max_iter=2)
    assert not bool(r.converged)
