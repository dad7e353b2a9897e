"""Maximum-likelihood / MAP fits of a JAX log-density with box bounds.

:func:`maximize` wraps scipy's L-BFGS-B around a jitted ``value_and_grad`` of the
negative log-density in the *constrained* parameter space (no Jacobian terms: the
optimum is the MLE/MAP of the given function itself, not of its unconstrained
re-parametrisation), with optional multi-start to guard against several minima.
It works for any analysis: the function takes a dict of parameter values and extra
array arguments. Small fixed-size problems that must run inside ``jit``/``vmap``
(trials, sky scans) use :mod:`bayesnu.inference.newton` instead.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits

from bayesnu.errors import ConfigError

LogDensity = Callable[..., jax.Array]


@dataclass(frozen=True)
class ParamSpec:
    """A fit parameter: name, starting value and box bounds.

    Parameters
    ----------
    name
        Parameter name (a key of the dict passed to the log-density).
    init
        Starting value.
    lower, upper
        Bounds (``-inf``/``inf`` for none).
    scale
        Typical scale, used to draw random starts when a bound is infinite.
    """

    name: str
    init: float
    lower: float = -math.inf
    upper: float = math.inf
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ConfigError(
                f"parameter {self.name!r}: lower bound {self.lower} must be below upper {self.upper}"
            )
        if not self.lower <= self.init <= self.upper:
            raise ConfigError(
                f"parameter {self.name!r}: start value {self.init} outside [{self.lower}, {self.upper}]"
            )


@dataclass(frozen=True)
class FitResult:
    """Result of :func:`maximize`.

    Attributes
    ----------
    params
        Best-fit values of all parameters (free and fixed).
    logp
        Maximum of the log-density.
    success
        Whether the best start converged (scipy's success flag, finite values).
    message
        Optimiser message of the best start.
    free
        Names of the free parameters, in the order of ``cov``.
    cov
        Covariance of the free parameters from the inverse Hessian of -log p at the
        optimum (``None`` if not positive definite or a parameter sits on a bound).
    nfev
        Function evaluations summed over starts.
    starts
        Per start: (start values, final values, final log p, success).
    """

    params: dict[str, float]
    logp: float
    success: bool
    message: str
    free: tuple[str, ...]
    cov: np.ndarray | None
    nfev: int
    starts: list[tuple[dict[str, float], dict[str, float], float, bool]] = field(repr=False)

    def errors(self) -> dict[str, float]:
        """Symmetric 1-sigma errors from the covariance (NaN when unavailable)."""
        if self.cov is None:
            return {n: float("nan") for n in self.free}
        return {n: float(np.sqrt(self.cov[i, i])) for i, n in enumerate(self.free)}


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def negative_log_density(
    logp: LogDensity, free: tuple[str, ...], fixed: tuple[str, ...]
) -> Callable[[jax.Array, jax.Array, tuple], jax.Array]:
    """``negll(x, xfixed, args) = -logp(theta, *args)`` with ``theta`` assembled from the
    free vector ``x`` (names ``free``) and the fixed vector ``xfixed`` (names ``fixed``)."""

    def negll(x: jax.Array, xfixed: jax.Array, args: tuple) -> jax.Array:
        theta = {n: x[i] for i, n in enumerate(free)}
        theta.update({n: xfixed[i] for i, n in enumerate(fixed)})
        return -logp(theta, *args)

    return negll


def _compiled(logp: LogDensity, free: tuple[str, ...], fixed: tuple[str, ...]) -> tuple[Callable, Callable]:
    """Jitted (value_and_grad, hessian) of -log p over the free vector; cached per function."""
    per_fn = _CACHE.setdefault(logp, {})
    key = (free, fixed)
    if key not in per_fn:
        negll = negative_log_density(logp, free, fixed)
        per_fn[key] = (jax.jit(jax.value_and_grad(negll)), jax.jit(jax.hessian(negll)))
    return per_fn[key]


def _compiled_newton(logp: LogDensity, free: tuple[str, ...], fixed: tuple[str, ...]) -> Callable:
    """Jitted quasi-Newton solve (BFGS from the exact Hessian at the start); cached per function."""
    per_fn = _CACHE.setdefault(logp, {})
    key = ("newton", free, fixed)
    if key not in per_fn:
        from bayesnu.inference.newton import box_newton

        negll = negative_log_density(logp, free, fixed)

        def solve(x0, lower, upper, xfixed, args):
            h0 = jax.hessian(negll)(jnp.clip(x0, lower, upper), xfixed, args)
            return box_newton(negll, x0, lower, upper, (xfixed, args), hessian0=h0, max_iter=_NEWTON_MAX_ITER)

        per_fn[key] = jax.jit(solve)
    return per_fn[key]


#: Iterations of the quasi-Newton path of :func:`maximize` before it falls back to L-BFGS-B.
_NEWTON_MAX_ITER = 200


def maximize(
    logp: LogDensity,
    params: Sequence[ParamSpec],
    *,
    args: tuple[Any, ...] = (),
    fixed: Mapping[str, float] | None = None,
    starts: Sequence[Mapping[str, float]] | None = None,
    n_random_starts: int = 0,
    seed: int = 0,
    maxiter: int = 500,
    ftol: float = 1e-12,
    gtol: float = 1e-8,
    compute_cov: bool = True,
    method: str = "lbfgsb",
) -> FitResult:
    """Maximise ``logp(theta, *args)`` over box-bounded parameters.

    Parameters
    ----------
    logp
        JAX-traceable function ``logp(theta: dict[str, Array], *args) -> scalar``.
        Keep it a module-level function (compilations are cached per function).
    params
        Parameter specifications (all parameters ``logp`` reads).
    args
        Extra arguments passed to ``logp`` (arrays as jit arguments, not closures).
    fixed
        Values of parameters held fixed (they must be in ``params``).
    starts
        Extra start points (dicts of free-parameter values); the ``init`` values are
        always the first start.
    n_random_starts
        Additional starts drawn uniformly inside the bounds (seeded by ``seed``).
    maxiter, ftol, gtol
        L-BFGS-B settings.
    compute_cov
        Compute the covariance from the Hessian at the optimum.
    method
        ``"lbfgsb"``: scipy's L-BFGS-B from every start. ``"newton"``: a jitted
        box-constrained quasi-Newton iteration (:func:`bayesnu.inference.newton.box_newton`
        with BFGS updates from the exact Hessian at the start: no Python between
        iterations); a start where it does not converge is re-run with L-BFGS-B.

    Returns
    -------
    FitResult

    Raises
    ------
    ConfigError
        Unknown fixed parameter, or no start gives a finite log-density.
    """
    fixed = dict(fixed or {})
    names = [p.name for p in params]
    unknown = set(fixed) - set(names)
    if unknown:
        raise ConfigError(f"cannot fix unknown parameter(s) {sorted(unknown)}; parameters are {names}")
    free_specs = [p for p in params if p.name not in fixed]
    free = tuple(p.name for p in free_specs)
    fixed_names = tuple(fixed)
    xfixed = jnp.asarray([fixed[n] for n in fixed_names], dtype=float)
    if not free:
        theta = {n: jnp.asarray(v) for n, v in fixed.items()}
        val = float(logp(theta, *args))
        return FitResult(dict(fixed), val, math.isfinite(val), "all parameters fixed", free, None, 1, [])
    vg, hess = _compiled(logp, free, fixed_names)
    bounds = [(p.lower if math.isfinite(p.lower) else None, p.upper if math.isfinite(p.upper) else None)
              for p in free_specs]  # fmt: skip
    x0s = [np.array([p.init for p in free_specs], dtype=float)]
    for s in starts or ():
        x0s.append(np.array([s.get(p.name, p.init) for p in free_specs], dtype=float))
    rng = np.random.default_rng(seed)
    for _ in range(n_random_starts):
        x = []
        for p in free_specs:
            lo = p.lower if math.isfinite(p.lower) else p.init - 3 * p.scale
            hi = p.upper if math.isfinite(p.upper) else p.init + 3 * p.scale
            x.append(rng.uniform(lo, hi))
        x0s.append(np.array(x))

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = vg(jnp.asarray(x), xfixed, args)
        v, g = float(v), np.asarray(g, dtype=float)
        if not math.isfinite(v) or not np.all(np.isfinite(g)):
            # Steer the optimiser away from invalid regions rather than aborting.
            return 1e300, np.zeros_like(x)
        return v, g

    if method not in ("lbfgsb", "newton"):
        raise ConfigError(f"method must be 'lbfgsb' or 'newton', not {method!r}")
    lo_a = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
    hi_a = np.array([b[1] if b[1] is not None else np.inf for b in bounds])
    solve = _compiled_newton(logp, free, fixed_names) if method == "newton" else None
    results = []
    nfev = 0
    for x0 in x0s:
        x0 = np.clip(x0, lo_a, hi_a)
        if solve is not None:
            r = solve(jnp.asarray(x0), jnp.asarray(lo_a), jnp.asarray(hi_a), xfixed, args)
            nfev += int(r.n_iter) + 1
            if bool(r.converged):
                res = optimize.OptimizeResult(
                    x=np.asarray(r.x, dtype=float),
                    fun=float(r.fun),
                    success=True,
                    message="quasi-Newton converged",
                    nfev=int(r.n_iter) + 1,
                )
                results.append((x0, res, True))
                continue
        # L-BFGS-B's small BLAS calls are much slower with several OpenBLAS threads (they
        # spin against XLA's thread pool: 100x on a loaded 2-core machine), so run it on one.
        with threadpool_limits(1, user_api="blas"):
            res = optimize.minimize(
                fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                options={"maxiter": maxiter, "ftol": ftol, "gtol": gtol, "maxls": 50},
            )  # fmt: skip
        nfev += int(res.nfev)
        ok = bool(res.success) and res.fun < 1e299
        results.append((x0, res, ok))
    finite = [r for r in results if r[1].fun < 1e299]
    if not finite:
        raise ConfigError(
            "the log-density is not finite at any start point; check the starting values, bounds and data"
        )
    x0, best, ok = min(finite, key=lambda r: r[1].fun)
    theta_best = {n: float(v) for n, v in zip(free, best.x)}
    theta_best.update({n: float(v) for n, v in fixed.items()})
    cov = None
    if compute_cov:
        h = np.asarray(hess(jnp.asarray(best.x), xfixed, args), dtype=float)
        on_bound = [
            (lo is not None and abs(x - lo) < 1e-9) or (hi is not None and abs(x - hi) < 1e-9)
            for x, (lo, hi) in zip(best.x, bounds)
        ]
        if np.all(np.isfinite(h)) and not any(on_bound):
            try:
                np.linalg.cholesky(h)
                cov = np.linalg.inv(h)
            except np.linalg.LinAlgError:
                cov = None
    starts_out = [
        (
            {n: float(v) for n, v in zip(free, r[0])},
            {n: float(v) for n, v in zip(free, r[1].x)},
            float(-r[1].fun),
            r[2],
        )
        for r in results
    ]
    return FitResult(
        params=theta_best,
        logp=float(-best.fun),
        success=ok,
        message=str(best.message),
        free=free,
        cov=cov,
        nfev=nfev,
        starts=starts_out,
    )
