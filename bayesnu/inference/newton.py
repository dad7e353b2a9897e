r"""Box-constrained Newton minimisation in pure JAX (jit- and vmap-able).

For small parameter vectors (a handful of nuisance parameters) and expensive objectives
(sums over 1e4-1e6 MC events), an exact-Hessian Newton iteration converges in a few
steps from a warm start, and many independent problems (the points of a profile scan)
run as one ``vmap``-ed computation without Python in the loop.

Each iteration (:func:`box_newton`):

1. value, gradient :math:`g` and Hessian :math:`H` of the objective at :math:`x`;
2. active set: coordinates on a bound whose gradient pushes outward are held;
3. step :math:`p = -|H_F|^{-1} g_F` on the free coordinates, with :math:`|H_F|` the
   eigen-decomposition of the free block with eigenvalues replaced by their absolute
   values, floored at ``1e-10`` of the largest (a descent direction also where the
   objective is not convex);
4. projected backtracking line search: the largest :math:`t \in \{1, 1/2, \dots\}`
   with :math:`f(P(x + t p)) \le f(x) + 10^{-4} g^\top (P(x + tp) - x)`, where
   :math:`P` clips onto the box.

With ``hessian0`` given, step 1 computes no Hessian: :math:`H` starts at ``hessian0``
and is updated by BFGS from each step's change of the gradient (a quasi-Newton
iteration whose warm start is the Hessian of a neighbouring problem, as in a profile
scan, or the exact Hessian at the start point, as in a MAP fit).

It stops when the Newton decrement :math:`g_F^\top |H_F|^{-1} g_F / 2` (the predicted
decrease) falls below ``tol`` (converged), when the line search finds no decrease
(stalled at rounding level; converged if the decrement is below ``100 tol``), or
after ``max_iter`` iterations (not converged). Callers check ``converged`` and fall
back to a general optimiser where it is false.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

#: Backtracking halvings before a line search gives up.
_MAX_HALVINGS = 30


class NewtonResult(NamedTuple):
    """Result of :func:`box_newton` (leading batch axes when vmapped).

    Attributes
    ----------
    x
        Minimiser found.
    fun
        Objective at ``x``.
    decrement
        Last Newton decrement (predicted remaining decrease of the objective).
    n_iter
        Iterations taken.
    converged
        Decrement below tolerance and finite objective.
    hessian
        The last Hessian used (exact mode) or the BFGS approximation at ``x``
        (quasi-Newton mode): a warm start for a neighbouring problem.
    """

    x: jax.Array
    fun: jax.Array
    decrement: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    hessian: jax.Array


def box_newton(
    fun: Callable[..., jax.Array],
    x0: jax.Array,
    lower: jax.Array,
    upper: jax.Array,
    args: tuple[Any, ...] = (),
    *,
    hessian0: jax.Array | None = None,
    max_iter: int = 30,
    tol: float = 1e-11,
) -> NewtonResult:
    """Minimise ``fun(x, *args)`` over the box ``lower <= x <= upper``.

    Parameters
    ----------
    fun
        Scalar JAX function of a 1-D parameter vector (twice differentiable inside the box).
    x0
        Start point (clipped onto the box).
    lower, upper
        Bounds (``-inf`` / ``inf`` for none).
    args
        Extra arguments of ``fun`` (arrays; not differentiated).
    hessian0
        ``None``: exact Hessian at every iteration (``jax.hessian``). A matrix: a
        quasi-Newton iteration that starts from it and applies BFGS updates (no
        Hessian evaluations: for a sequence of neighbouring problems, pass the
        previous problem's ``hessian``).
    max_iter
        Iterations at most.
    tol
        Convergence threshold on the Newton decrement (objective units).
    """
    x0 = jnp.clip(jnp.asarray(x0, dtype=jnp.float64), lower, upper)
    n = x0.shape[0]
    f = lambda x: fun(x, *args)  # noqa: E731
    vg = jax.value_and_grad(f)
    exact = hessian0 is None
    hess = jax.hessian(f)
    eye = jnp.eye(n, dtype=bool)

    def direction(x: jax.Array, g: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        at_lo = (x <= lower) & (g > 0)
        at_hi = (x >= upper) & (g < 0)
        free = ~(at_lo | at_hi)
        mask = free[:, None] & free[None, :]
        h = jnp.where(mask, h, jnp.where(eye, 1.0, 0.0))
        h = jnp.where(jnp.isfinite(h), h, 0.0)
        ev, vec = jnp.linalg.eigh(0.5 * (h + h.T))
        aev = jnp.abs(ev)
        aev = jnp.maximum(aev, 1e-10 * jnp.max(aev) + 1e-300)
        gf = jnp.where(free, g, 0.0)
        coef = (vec.T @ gf) / aev
        p = jnp.where(free, -(vec @ coef), 0.0)
        dec = 0.5 * jnp.sum((vec.T @ gf) * coef)
        return p, dec

    def line_search(x: jax.Array, fx: jax.Array, g: jax.Array, p: jax.Array) -> tuple[jax.Array, ...]:
        def try_t(t: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
            xt = jnp.clip(x + t * p, lower, upper)
            ft = f(xt)
            ok = jnp.isfinite(ft) & (ft <= fx + 1e-4 * jnp.dot(g, xt - x))
            return xt, ft, ok

        def cond(s):
            k, _, _, ok = s
            return (~ok) & (k < _MAX_HALVINGS)

        def body(s):
            k, _, _, _ = s
            xt, ft, ok = try_t(0.5 ** (k + 1.0))
            return k + 1, xt, ft, ok

        xt, ft, ok = try_t(jnp.asarray(1.0))
        _, xt, ft, ok = jax.lax.while_loop(cond, body, (jnp.asarray(0), xt, ft, ok))
        return jnp.where(ok, xt, x), jnp.where(ok, ft, fx), ok

    def bfgs(h: jax.Array, s: jax.Array, y: jax.Array) -> jax.Array:
        sy = jnp.dot(s, y)
        hs = h @ s
        shs = jnp.dot(s, hs)
        good = (sy > 1e-12 * jnp.sqrt(jnp.dot(s, s) * jnp.dot(y, y))) & (shs > 0)
        upd = h + jnp.outer(y, y) / jnp.where(good, sy, 1.0) - jnp.outer(hs, hs) / jnp.where(good, shs, 1.0)
        return jnp.where(good, upd, h)

    def cond(s):
        i, _, _, _, _, _, dec, stalled = s
        return (i < max_iter) & (dec > tol) & ~stalled

    def body(s):
        i, x, fx, g, h, p, dec, _ = s
        xn, fn, ok = line_search(x, fx, g, p)
        _, gn = vg(xn)
        hn = hess(xn) if exact else bfgs(h, xn - x, gn - g)
        pn, decn = direction(xn, gn, hn)
        # a failed line search leaves x unchanged: stop there (rounding level reached)
        return i + 1, xn, fn, gn, hn, pn, jnp.where(ok, decn, dec), ~ok

    f0, g0 = vg(x0)
    h0 = hess(x0) if exact else jnp.asarray(hessian0, dtype=jnp.float64)
    p0, dec0 = direction(x0, g0, h0)
    init = (jnp.asarray(0), x0, f0, g0, h0, p0, dec0, jnp.asarray(False))
    i, x, fx, _, h, _, dec, stalled = jax.lax.while_loop(cond, body, init)
    converged = jnp.isfinite(fx) & ((dec <= tol) | (stalled & (dec <= 100.0 * tol)))
    return NewtonResult(x=x, fun=fx, decrement=dec, n_iter=i, converged=converged, hessian=h)
