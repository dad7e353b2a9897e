r"""Maximum-likelihood fit of (ns, gamma) for the point-source likelihood, inside ``jit``.

A fixed-iteration algorithm, so that the same code runs for one fit, under ``vmap``
for pseudo-experiments and over pixels for sky scans:

1. **Profile on the gamma nodes.** For fixed :math:`\gamma`, :math:`\ln\Lambda` is a sum
   of logarithms of functions linear in :math:`n_s`, hence concave in :math:`n_s`:
   its maximum on :math:`[0, n_{s,\max}]` is unique. A bracketed Newton iteration
   (bisection whenever a Newton step leaves the bracket) finds it for every node of
   the gamma grid at once (``vmap``). This is robust against the :math:`n_s = 0`
   boundary (the bracket collapses onto 0 when the slope there is negative) and
   against several local maxima in :math:`\gamma` (all nodes are tried).
2. **Polish.** From the best node, damped two-dimensional Newton steps with the
   exact Hessian (autodiff), projected onto the box, accepted only if they increase
   :math:`\ln\Lambda` (step halving otherwise); a gradient step when the Hessian is
   not negative definite.

``converged`` reports whether the projected gradient vanished (relative tolerance)
at the end.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesnu.likelihood.pointsource import (
    PSInputs,
    event_ratios,
    log_lambda,
    log_lambda_from_ratios,
    season_fractions,
)


class PSFit(NamedTuple):
    """Result of :func:`fit_ns_gamma` (all JAX scalars)."""

    ns: jax.Array
    gamma: jax.Array
    log_lambda: jax.Array
    ts: jax.Array
    converged: jax.Array
    grad_norm: jax.Array


def _newton_ns(f, ns_max: float, n_iter: int) -> tuple[jax.Array, jax.Array]:
    """Maximise a concave scalar function of ns on [0, ns_max] by bracketed Newton."""
    g1 = jax.grad(f)
    g2 = jax.grad(g1)

    def body(_, state):
        ns, lo, hi = state
        d1, d2 = g1(ns), g2(ns)
        lo = jnp.where(d1 > 0, ns, lo)
        hi = jnp.where(d1 > 0, hi, ns)
        step = jnp.where(d2 < 0, ns - d1 / jnp.where(d2 < 0, d2, -1.0), 0.5 * (lo + hi))
        inside = (step > lo) & (step < hi)
        new = jnp.where(inside, step, 0.5 * (lo + hi))
        # Bracket collapsed on a boundary: stay there.
        new = jnp.where(hi - lo < 1e-12 * (1.0 + hi), jnp.where(d1 > 0, hi, lo), new)
        return new, lo, hi

    d0 = g1(0.0)
    start = jnp.where(d0 > 0, jnp.minimum(1.0, ns_max), 0.0)
    ns, _, _ = jax.lax.fori_loop(0, n_iter, body, (start, jnp.asarray(0.0), jnp.asarray(ns_max)))
    ns = jnp.where(d0 <= 0, 0.0, ns)
    return ns, f(ns)


def fit_ns_gamma(
    inputs: PSInputs,
    *,
    ns_max: float = 1000.0,
    gamma_min: float = 1.0,
    gamma_max: float = 4.0,
    gamma_fixed: float | None = None,
    ra: jax.Array | None = None,
    dec: jax.Array | None = None,
    n_newton: int = 40,
    n_polish: int = 20,
) -> PSFit:
    """Maximise :math:`\\ln\\Lambda(n_s, \\gamma)` on the box of ns and gamma bounds.

    Parameters
    ----------
    inputs
        Likelihood inputs.
    ns_max
        Upper bound of ns (SkyLLH's default 1000).
    gamma_min, gamma_max
        Bounds of the spectral index (static).
    gamma_fixed
        Fit ns only, at this spectral index.
    ra, dec
        Source position [rad] (default: the inputs').
    n_newton, n_polish
        Iteration counts of the two stages (static).

    Returns
    -------
    PSFit
        ns, gamma, ln Lambda, TS, converged flag and final projected-gradient norm.
    """
    if gamma_fixed is not None:
        g = jnp.asarray(gamma_fixed, dtype=float)
        r = event_ratios(inputs, g, ra, dec)
        frac = season_fractions(inputs, g)
        ns, val = _newton_ns(lambda n: log_lambda_from_ratios(inputs, n, frac, r), ns_max, n_newton)
        d1 = jax.grad(lambda n: log_lambda_from_ratios(inputs, n, frac, r))(ns)
        proj = jnp.where(((ns <= 0) & (d1 < 0)) | ((ns >= ns_max) & (d1 > 0)), 0.0, d1)
        conv = jnp.abs(proj) < 1e-6 * (1.0 + jnp.abs(val))
        return PSFit(ns, g, val, 2.0 * val, conv, jnp.abs(proj))

    if not gamma_min < gamma_max:
        raise ValueError(f"gamma bounds inverted: gamma_min={gamma_min} >= gamma_max={gamma_max}")
    n_nodes = max(2, round((gamma_max - gamma_min) / inputs.dgamma) + 1)
    nodes = jnp.linspace(gamma_min, gamma_max, n_nodes)

    def profile(g):
        r = event_ratios(inputs, g, ra, dec)
        frac = season_fractions(inputs, g)
        return _newton_ns(lambda n: log_lambda_from_ratios(inputs, n, frac, r), ns_max, n_newton)

    ns_nodes, val_nodes = jax.vmap(profile)(nodes)
    k = jnp.argmax(val_nodes)
    x = jnp.stack([ns_nodes[k], nodes[k]])
    lo = jnp.array([0.0, gamma_min])
    hi = jnp.array([ns_max, gamma_max])

    def f(x):
        return log_lambda({"ns": x[0], "gamma": x[1], "ra": ra, "dec": dec}, inputs)

    grad = jax.grad(f)
    hess = jax.hessian(f)

    def projected(x, g):
        at_lo = (x <= lo) & (g < 0)
        at_hi = (x >= hi) & (g > 0)
        return jnp.where(at_lo | at_hi, 0.0, g)

    def body(_, state):
        x, fx = state
        g = grad(x)
        h = hess(x)
        free = ~(((x <= lo) & (g < 0)) | ((x >= hi) & (g > 0)))
        # Newton direction on the free coordinates; gradient direction as fallback.
        hm = jnp.where(free[:, None] & free[None, :], h, -jnp.eye(2))
        gm = jnp.where(free, g, 0.0)
        det = hm[0, 0] * hm[1, 1] - hm[0, 1] * hm[1, 0]
        neg_def = (hm[0, 0] < 0) & (det > 0)
        newton = -jnp.linalg.solve(jnp.where(neg_def, hm, -jnp.eye(2)), gm)
        scale = jnp.array([jnp.maximum(1.0, x[0]), 1.0])
        grad_step = gm * scale * scale / (jnp.linalg.norm(gm * scale) + 1e-300) * 0.1
        d = jnp.where(neg_def, newton, grad_step)

        def try_step(carry, _):
            t, best_x, best_f, done = carry
            cand = jnp.clip(x + t * d, lo, hi)
            fc = f(cand)
            ok = (~done) & (fc > best_f)
            return (t * 0.5, jnp.where(ok, cand, best_x), jnp.where(ok, fc, best_f), done | ok), None

        (_, x_new, f_new, _), _ = jax.lax.scan(try_step, (1.0, x, fx, False), None, length=12)
        return x_new, f_new

    # At ns = 0 ln Lambda is flat in gamma and the polish leaves x unchanged.
    xf, ff = jax.lax.fori_loop(0, n_polish, body, (x, f(x)))
    gfin = projected(xf, grad(xf))
    scale = jnp.array([jnp.maximum(1.0, xf[0]), 1.0])
    gnorm = jnp.linalg.norm(gfin * scale)
    conv = (gnorm < 1e-5 * (1.0 + jnp.abs(ff))) | (xf[0] <= 0)
    return PSFit(xf[0], xf[1], ff, 2.0 * jnp.sign(xf[0]) * ff, conv, gnorm)
