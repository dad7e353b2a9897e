r"""Upper limits and intervals: profile likelihood (Wilks), Neyman (trials), Bayesian.

All limits are on a signal strength :math:`\mu` (``ns`` for the point-source analysis)
and, when a :class:`~bayesnu.frequentist.conversion.FluxConversion` is given, also in
flux units (:math:`\Phi_0` at :math:`E_0` and :math:`E_0^2\,dN/dE`).

Profile likelihood
    With :math:`\lambda(\mu) = -2\log L(\mu,\hat{\hat\theta}) + 2\log L(\hat\mu,\hat\theta)`
    the profile ratio, the limit solves :math:`\lambda(\mu) = \Delta`:

    * one-sided upper limit at CL: :math:`\Delta = [\Phi^{-1}(\mathrm{CL})]^2 =
      \chi^2_{1}{}^{-1}(2\,\mathrm{CL}-1)`: 1.642 at 90%, 2.706 at 95%;
    * two-sided interval at CL: :math:`\Delta = \chi^2_{1}{}^{-1}(\mathrm{CL})`:
      1.000 at 68.27%, 2.706 at 90%, 3.841 at 95%.

    So ":math:`\Delta=2.71`" is a one-sided 95% limit, or the upper end of a two-sided
    90% interval. The boundary :math:`\mu\ge0` is handled by the *bounded likelihood*
    construction: :math:`\hat\mu` is the constrained maximum (0 when the unconstrained
    one is negative), and :math:`\lambda` is measured from it.

Neyman (as SkyLLH / csky)
    The upper limit at CL is the strength for which a fraction CL of signal trials
    have :math:`TS > TS_\mathrm{obs}`; the passing-fraction curve is fitted as in
    :mod:`bayesnu.frequentist.passing`.

Bayesian
    The CL quantile of the marginal posterior of :math:`\mu` (``method="quantile"``),
    or the upper end of the highest-density interval containing CL of the posterior
    mass (``method="hdi"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import interpolate, optimize, stats

from bayesnu.errors import ConfigError
from bayesnu.frequentist.conversion import FluxConversion
from bayesnu.frequentist.passing import (
    PassingCurve,
    SignalSampler,
    find_strength,
    fit_passing_curve,
    passing_fraction,
    strength_from_curve,
)

__all__ = [
    "CredibleLimit",
    "NeymanLimit",
    "ProfileInterval",
    "credible_interval",
    "credible_upper_limit",
    "delta_stat",
    "neyman_upper_limit",
    "profile_interval",
    "profile_upper_limit",
]

Profile = Callable[[float], float] | tuple[Sequence[float], Sequence[float]]


def delta_stat(cl: float, *, one_sided: bool) -> float:
    r"""The :math:`\Delta(-2\log L)` of a profile-likelihood limit at confidence ``cl``.

    ``one_sided=True``: :math:`[\Phi^{-1}(\mathrm{cl})]^2` (needs ``cl >= 0.5``);
    ``False``: :math:`\chi^2_1` quantile ``cl`` (two-sided interval).
    """
    if not 0 < cl < 1:
        raise ConfigError(f"the confidence level must be in (0, 1), got {cl}")
    if one_sided:
        if cl < 0.5:
            raise ConfigError(f"a one-sided upper limit needs cl >= 0.5, got {cl}")
        return float(stats.norm.ppf(cl) ** 2)
    return float(stats.chi2.ppf(cl, 1))


@dataclass(frozen=True)
class ProfileInterval:
    """A profile-likelihood upper limit or interval.

    Attributes
    ----------
    best_fit, stat_min
        Constrained best fit :math:`\\hat\\mu` and the minimum of -2 log L there.
    lower, upper
        Interval ends; ``lower`` equals ``lower_bound`` when the interval reaches the
        boundary (and for an upper limit).
    cl, delta, one_sided
        Confidence level, the :math:`\\Delta(-2\\log L)` used, the convention.
    at_boundary
        The best fit lies on the lower bound.
    flux
        Flux columns of ``upper`` (and ``lower``) when a conversion was given.
    """

    best_fit: float
    stat_min: float
    lower: float
    upper: float
    cl: float
    delta: float
    one_sided: bool
    at_boundary: bool
    flux: dict[str, Any] = field(default_factory=dict)


def _as_function(profile: Profile) -> tuple[Callable[[float], float], tuple[float, float] | None]:
    if callable(profile):
        return (lambda x: float(profile(x))), None  # type: ignore[operator]
    x, y = (np.asarray(a, dtype=float) for a in profile)
    if x.ndim != 1 or x.shape != y.shape or x.size < 4:
        raise ConfigError("a profile scan needs 1-D arrays (x, -2logL) of the same length >= 4")
    order = np.argsort(x)
    x, y = x[order], y[order]
    if np.any(np.diff(x) <= 0) or not np.all(np.isfinite(y)):
        raise ConfigError("the profile scan needs distinct x values and finite -2logL values")
    spline = interpolate.CubicSpline(x, y)
    return (lambda v: float(spline(v))), (float(x[0]), float(x[-1]))


def _minimise(f: Callable[[float], float], lb: float, ub: float, scale: float) -> tuple[float, float]:
    """Minimum of a unimodal profile on [lb, ub]; an infinite ``ub`` is bracketed by doubling."""
    hi = ub
    if not math.isfinite(hi):
        hi = lb + scale
        running = f(lb)
        for _ in range(200):
            f_hi = f(hi)
            if f_hi > running + 1.0:
                break
            running = min(running, f_hi)
            hi = lb + 2.0 * (hi - lb)
    grid = np.linspace(lb, hi, 65)
    vals = np.array([f(g) for g in grid])
    j = int(np.argmin(vals))
    a, b = float(grid[max(j - 1, 0)]), float(grid[min(j + 1, grid.size - 1)])
    res = optimize.minimize_scalar(
        f, bounds=(a, b), method="bounded", options={"xatol": 1e-10 * max(1.0, abs(b))}
    )
    x, v = float(res.x), float(res.fun)
    if vals[j] < v:
        x, v = float(grid[j]), float(vals[j])
    return x, v


def _root_up(g: Callable[[float], float], x0: float, ub: float, scale: float) -> float:
    step = scale
    x1 = x0 + step
    for _ in range(200):
        if x1 >= ub:
            x1 = ub
            break
        if g(x1) > 0:
            break
        step *= 2
        x1 = x0 + step
    if not g(x1) > 0:
        return float("nan")
    return float(optimize.brentq(g, x0, x1, xtol=1e-12 * max(1.0, abs(x1)), rtol=1e-12))


def _root_down(g: Callable[[float], float], x0: float, lb: float, scale: float) -> float:
    if math.isfinite(lb) and not g(lb) > 0:
        return lb
    step = scale
    x1 = x0 - step
    for _ in range(200):
        if x1 <= lb:
            x1 = lb
            break
        if g(x1) > 0:
            break
        step *= 2
        x1 = x0 - step
    if not g(x1) > 0:
        return float("nan") if not math.isfinite(lb) else lb
    return float(optimize.brentq(g, x1, x0, xtol=1e-12 * max(1.0, abs(x1)), rtol=1e-12))


def _profile_limits(
    profile: Profile,
    delta: float,
    *,
    lower_bound: float,
    upper_bound: float,
    best_fit: float | None,
    scale: float,
    want_lower: bool,
) -> tuple[float, float, float, float]:
    f, rng = _as_function(profile)
    lb, ub = lower_bound, upper_bound
    if rng is not None:
        lb, ub = max(lb, rng[0]), min(ub, rng[1])
    if best_fit is None:
        if not math.isfinite(lb):
            raise ConfigError("give a finite lower_bound or the best_fit of the profile")
        x_hat, f_min = _minimise(f, lb, ub, scale)
    else:
        x_hat, f_min = float(best_fit), f(float(best_fit))
    g = lambda x: f(x) - f_min - delta  # noqa: E731
    upper = _root_up(g, x_hat, ub, scale)
    lower = _root_down(g, x_hat, lb, scale) if want_lower else lb
    return x_hat, f_min, lower, upper


def profile_upper_limit(
    profile: Profile,
    cl: float = 0.9,
    *,
    one_sided: bool = True,
    lower_bound: float = 0.0,
    upper_bound: float = math.inf,
    best_fit: float | None = None,
    scale: float = 1.0,
    conversion: FluxConversion | None = None,
) -> ProfileInterval:
    r"""Profile-likelihood upper limit from a 1-D profile of -2 log L.

    Parameters
    ----------
    profile
        Either a callable ``mu -> -2 log L`` (profiled over nuisance parameters), or a
        scan ``(mu_values, minus_two_log_l_values)`` interpolated with a cubic spline.
    cl
        Confidence level.
    one_sided
        ``True``: :math:`\Delta=[\Phi^{-1}(\mathrm{CL})]^2` (one-sided limit);
        ``False``: the upper end of the two-sided CL interval
        (:math:`\Delta=\chi^2_1{}^{-1}(\mathrm{CL})`). See the module docstring.
    lower_bound, upper_bound
        Allowed range of :math:`\mu` (default :math:`[0,\infty)`: the ns >= 0 boundary).
    best_fit
        The constrained best fit if already known (otherwise found by a bounded search).
    scale
        Typical scale of :math:`\mu` for bracketing the roots (e.g. 1 for ns).
    conversion
        Optional ns -> flux conversion for the ``flux`` columns.
    """
    return _profile_result(
        profile, cl, one_sided, False, lower_bound, upper_bound, best_fit, scale, conversion
    )


def profile_interval(
    profile: Profile,
    cl: float = 0.6826894921370859,
    *,
    lower_bound: float = 0.0,
    upper_bound: float = math.inf,
    best_fit: float | None = None,
    scale: float = 1.0,
    conversion: FluxConversion | None = None,
) -> ProfileInterval:
    r"""Two-sided profile-likelihood interval :math:`\{\mu: \lambda(\mu)\le\chi^2_1{}^{-1}(\mathrm{CL})\}`.

    The default CL (68.27%) gives the :math:`\Delta=1` ("1 sigma") interval. Where the
    interval reaches ``lower_bound`` its lower end is the bound. Parameters as in
    :func:`profile_upper_limit`.
    """
    return _profile_result(profile, cl, False, True, lower_bound, upper_bound, best_fit, scale, conversion)


def _profile_result(
    profile: Profile,
    cl: float,
    one_sided: bool,
    want_lower: bool,
    lower_bound: float,
    upper_bound: float,
    best_fit: float | None,
    scale: float,
    conversion: FluxConversion | None,
) -> ProfileInterval:
    delta = delta_stat(cl, one_sided=one_sided)
    x_hat, f_min, lower, upper = _profile_limits(
        profile,
        delta,
        lower_bound=lower_bound,
        upper_bound=upper_bound,
        best_fit=best_fit,
        scale=scale,
        want_lower=want_lower,
    )
    flux: dict[str, Any] = {}
    if conversion is not None:
        if np.isfinite(upper):
            flux.update(conversion.columns(upper, prefix="upper_"))
        if want_lower and np.isfinite(lower):
            flux.update(conversion.columns(lower, prefix="lower_"))
    return ProfileInterval(
        best_fit=x_hat,
        stat_min=f_min,
        lower=lower,
        upper=upper,
        cl=cl,
        delta=delta,
        one_sided=one_sided,
        at_boundary=bool(math.isfinite(lower_bound) and x_hat <= lower_bound + 1e-12 * max(1.0, scale)),
        flux=flux,
    )


@dataclass(frozen=True)
class NeymanLimit:
    """A Neyman upper limit from signal trials.

    Attributes
    ----------
    upper, upper_err
        The strength (ns) at which a fraction ``cl`` of signal trials have TS above
        ``ts_obs``, and its bootstrap standard error.
    cl, ts_obs
        Confidence level and observed TS.
    curve
        The fitted passing-fraction curve :math:`P(TS > TS_{obs}\\mid\\mu)`.
    flux
        Flux columns of ``upper`` when a conversion was given.
    """

    upper: float
    upper_err: float
    cl: float
    ts_obs: float
    curve: PassingCurve
    flux: dict[str, Any] = field(default_factory=dict)


def neyman_upper_limit(
    ts_obs: float,
    *,
    cl: float = 0.9,
    sampler: SignalSampler | None = None,
    strengths: Sequence[float] | None = None,
    signal_ts: Sequence[np.ndarray] | None = None,
    seed: int = 0,
    model: str = "chi2",
    n_boot: int = 100,
    conversion: FluxConversion | None = None,
    **search: Any,
) -> NeymanLimit:
    r"""Neyman upper limit: the strength with :math:`P(TS > TS_\mathrm{obs}\mid\mu) = \mathrm{CL}`.

    Give either a ``sampler`` (``sampler(strength, n_trials, seed) -> TS``; the
    injection points are chosen adaptively by
    :func:`~bayesnu.frequentist.passing.find_strength`, extra keyword arguments go
    there, e.g. ``n_trials``, ``strength_init``) or precomputed signal trials
    (``strengths`` and one TS array per strength).

    Coverage: since :math:`P(TS > t\mid\mu)` increases with :math:`\mu`, the limit
    exceeds the true :math:`\mu` exactly when :math:`TS_\mathrm{obs}` is above the
    :math:`1-\mathrm{CL}` quantile of its distribution at the true :math:`\mu`, which
    happens with probability CL (at least CL for a discrete TS).
    """
    if not 0 < cl < 1:
        raise ConfigError(f"cl must be in (0, 1), got {cl}")
    if sampler is not None:
        if strengths is not None or signal_ts is not None:
            raise ConfigError("give either sampler= or strengths= with signal_ts=, not both")
        res = find_strength(sampler, float(ts_obs), cl, seed=seed, model=model, n_boot=n_boot, **search)
    else:
        if strengths is None or signal_ts is None:
            raise ConfigError("neyman_upper_limit needs sampler= or both strengths= and signal_ts=")
        data = passing_fraction(strengths, signal_ts, float(ts_obs))
        res = strength_from_curve(fit_passing_curve(data, model), cl, float(ts_obs), n_boot=n_boot, seed=seed)
    flux = conversion.columns(res.strength, prefix="upper_") if conversion is not None else {}
    return NeymanLimit(
        upper=res.strength,
        upper_err=res.strength_err,
        cl=cl,
        ts_obs=float(ts_obs),
        curve=res.curve,
        flux=flux,
    )


@dataclass(frozen=True)
class CredibleLimit:
    """A Bayesian credible upper limit or interval from posterior samples.

    Attributes
    ----------
    lower, upper
        Interval ends: for ``"hdi"`` the highest-density interval, for ``"quantile"``
        the smallest sample and the ``cl`` quantile.
    cl, method
        Credibility and ``"quantile"`` or ``"hdi"``.
    n_samples
        Number of posterior samples used.
    flux
        Flux columns of ``upper`` when a conversion was given.
    """

    lower: float
    upper: float
    cl: float
    method: str
    n_samples: int
    flux: dict[str, Any] = field(default_factory=dict)


def _samples(samples: Any, var_name: str | None) -> np.ndarray:
    obj = samples
    if var_name is not None:
        post = obj["posterior"] if _has_key(obj, "posterior") else obj
        obj = post[var_name]
    arr = np.asarray(getattr(obj, "values", obj), dtype=float).ravel()
    if arr.size < 2:
        raise ConfigError("need at least two posterior samples")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{int(np.sum(~np.isfinite(arr)))} posterior samples are not finite")
    return arr


def _has_key(obj: Any, key: str) -> bool:
    try:
        obj[key]
    except (KeyError, TypeError, IndexError, ValueError):
        return False
    return True


def credible_interval(
    samples: Any, cl: float = 0.9, *, method: str = "hdi", var_name: str | None = None
) -> tuple[float, float]:
    """Credible interval containing ``cl`` of the samples: shortest (``"hdi"``) or
    equal-tailed (``"eti"``)."""
    if not 0 < cl < 1:
        raise ConfigError(f"cl must be in (0, 1), got {cl}")
    x = np.sort(_samples(samples, var_name))
    n = x.size
    if method == "eti":
        return float(np.quantile(x, (1 - cl) / 2)), float(np.quantile(x, (1 + cl) / 2))
    if method != "hdi":
        raise ConfigError(f"method must be 'hdi' or 'eti', got {method!r}")
    m = max(1, math.ceil(cl * n))
    widths = x[m - 1 :] - x[: n - m + 1]
    j = int(np.argmin(widths))
    return float(x[j]), float(x[j + m - 1])


def credible_upper_limit(
    samples: Any,
    cl: float = 0.9,
    *,
    method: str = "quantile",
    var_name: str | None = None,
    conversion: FluxConversion | None = None,
) -> CredibleLimit:
    """Bayesian upper limit from posterior samples of the signal strength.

    Parameters
    ----------
    samples
        Posterior samples: an array, an ``xarray.DataArray``, or an ArviZ
        ``DataTree`` / dataset together with ``var_name``.
    cl
        Credibility (posterior probability below the limit for ``"quantile"``).
    method
        ``"quantile"``: the ``cl`` quantile of the marginal posterior.
        ``"hdi"``: the upper end of the highest-density interval with mass ``cl``
        (equal to the quantile when the posterior peaks at the boundary).
    var_name
        Variable (e.g. ``"ns"``) to take from a DataTree's ``posterior`` group.
    conversion
        Optional ns -> flux conversion for the ``flux`` columns (for a conversion that
        varies from sample to sample, convert the samples first).
    """
    x = _samples(samples, var_name)
    if method == "quantile":
        if not 0 < cl < 1:
            raise ConfigError(f"cl must be in (0, 1), got {cl}")
        lo, hi = float(x.min()), float(np.quantile(x, cl))
    elif method == "hdi":
        lo, hi = credible_interval(x, cl, method="hdi")
    else:
        raise ConfigError(f"method must be 'quantile' or 'hdi', got {method!r}")
    flux = conversion.columns(hi, prefix="upper_") if conversion is not None else {}
    return CredibleLimit(lower=lo, upper=hi, cl=cl, method=method, n_samples=x.size, flux=flux)
