r"""Passing-fraction curves and the signal strength at which a given fraction passes.

Sensitivity, discovery potential and Neyman upper limits are all the same question:
for which injected signal strength :math:`\mu` does a fraction :math:`\beta` of signal
trials have :math:`TS > t` for a threshold :math:`t`?

=======================  ===============================  ===========
quantity                 threshold :math:`t`              :math:`\beta`
=======================  ===============================  ===========
sensitivity              median background TS             0.9
discovery potential      TS of a 3 or 5 sigma p-value     0.5
Neyman upper limit       observed TS                      CL
=======================  ===============================  ===========

The passing fraction :math:`f(\mu) = P(TS > t \mid \mu)` is estimated at injection
points :math:`\mu_j` from :math:`k_j` passing trials out of :math:`n_j`, and a curve is
fitted by maximising the binomial likelihood
:math:`\sum_j k_j\log f(\mu_j) + (n_j-k_j)\log(1-f(\mu_j))` (:func:`fit_passing_curve`):

* ``"chi2"``: :math:`f(\mu)=F_{\chi^2}((\mu-a)/s;\,d)` with free :math:`d>0`, :math:`a`,
  :math:`s>0` (the family csky fits);
* ``"erf"``: :math:`f(\mu)=\Phi((\mu-a)/s)`;
* ``"monotone"``: weighted isotonic regression of :math:`k_j/n_j` (pool adjacent
  violators) with monotone (PCHIP) interpolation, no shape assumption.

The strength :math:`\mu_\beta` solves :math:`f(\mu_\beta)=\beta`; its uncertainty is
the standard deviation over a seeded bootstrap in which every :math:`k_j` is redrawn
from :math:`\mathrm{Binomial}(n_j, k_j/n_j)` and the curve refitted.
:func:`find_strength` chooses the injection points adaptively: it brackets the root by
doubling / halving, then places points around the first estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import interpolate, optimize, special, stats

from bayesnu.errors import ConfigError
from bayesnu.parallel import progress_bar

__all__ = [
    "PassingCurve",
    "PassingFraction",
    "StrengthResult",
    "find_strength",
    "fit_passing_curve",
    "passing_fraction",
]

#: ``sampler(strength, n_trials, seed) -> TS array``: runs signal trials at one strength.
SignalSampler = Callable[[float, int, int], np.ndarray]

_EPS = 1e-12
#: Relative tolerance below which a TS equal to the threshold counts as a tie (not passing).
TIE_RTOL = 1e-9


@dataclass(frozen=True)
class PassingFraction:
    """Passing counts at injection points (sorted by strength)."""

    strength: np.ndarray
    n_pass: np.ndarray
    n_total: np.ndarray

    def __post_init__(self) -> None:
        if not (self.strength.shape == self.n_pass.shape == self.n_total.shape):
            raise ValueError("strength, n_pass and n_total must have the same shape")
        if np.any(self.n_total <= 0) or np.any(self.n_pass < 0) or np.any(self.n_pass > self.n_total):
            raise ValueError("need 0 <= n_pass <= n_total and n_total > 0")

    @property
    def fraction(self) -> np.ndarray:
        """Observed passing fractions ``n_pass / n_total``."""
        return self.n_pass / self.n_total

    @property
    def fraction_err(self) -> np.ndarray:
        """Binomial standard errors (with the fraction clipped to [1/2n, 1-1/2n])."""
        f = np.clip(self.fraction, 0.5 / self.n_total, 1 - 0.5 / self.n_total)
        return np.sqrt(f * (1 - f) / self.n_total)

    def merged(self, other: PassingFraction) -> PassingFraction:
        """Union of two sets of points; counts at equal strengths are added."""
        s = np.concatenate([self.strength, other.strength])
        k = np.concatenate([self.n_pass, other.n_pass])
        n = np.concatenate([self.n_total, other.n_total])
        u, inv = np.unique(s, return_inverse=True)
        return PassingFraction(
            u, np.bincount(inv, weights=k).astype(int), np.bincount(inv, weights=n).astype(int)
        )


def passing_fraction(
    strengths: Sequence[float] | np.ndarray, ts_samples: Sequence[np.ndarray], threshold: float
) -> PassingFraction:
    """Count signal trials with ``TS > threshold`` (strictly) at each injected strength.

    Values within a relative ``1e-9`` of the threshold count as ties (not passing), so
    that a discrete TS computed by two code paths (the observed value and the trials)
    does not pass on a last-bit rounding difference.
    """
    s = np.asarray(strengths, dtype=float)
    if len(ts_samples) != s.size:
        raise ValueError(f"{s.size} strengths but {len(ts_samples)} TS samples")
    cut = float(threshold) + TIE_RTOL * max(1.0, abs(float(threshold)))
    k = np.array([int(np.sum(np.asarray(t) > cut)) for t in ts_samples])
    n = np.array([np.asarray(t).size for t in ts_samples])
    order = np.argsort(s)
    return PassingFraction(s[order], k[order], n[order])


def _model_fn(model: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    if model == "chi2":
        # chi2 CDF with d dof at x: regularised lower incomplete gamma P(d/2, x/2)
        return lambda mu, p: special.gammainc(
            np.exp(p[0]) / 2, np.maximum((mu - p[1]) / np.exp(p[2]), 0.0) / 2
        )
    if model == "erf":
        return lambda mu, p: special.ndtr((mu - p[0]) / np.exp(p[1]))
    raise ConfigError(f"unknown passing-curve model {model!r}; use 'chi2', 'erf' or 'monotone'")


def _isotonic(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted non-decreasing least-squares fit (pool adjacent violators)."""
    vals: list[float] = []
    wts: list[float] = []
    cnt: list[int] = []
    for xi, wi in zip(x, w):
        vals.append(float(xi))
        wts.append(float(wi))
        cnt.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            c = cnt[-2] + cnt[-1]
            vals[-2:], wts[-2:], cnt[-2:] = [v], [wsum], [c]
    return np.repeat(vals, cnt)


@dataclass(frozen=True)
class PassingCurve:
    """A fitted passing-fraction curve :math:`f(\\mu)` (see :func:`fit_passing_curve`)."""

    model: str
    params: np.ndarray
    data: PassingFraction
    nll: float
    _mono: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __call__(self, strength: np.ndarray | float) -> np.ndarray:
        """Fitted passing fraction at ``strength``."""
        mu = np.asarray(strength, dtype=float)
        if self.model == "monotone":
            x, y = self._mono  # type: ignore[misc]
            if x.size == 1:
                return np.full(mu.shape, y[0])
            return np.clip(interpolate.PchipInterpolator(x, y, extrapolate=True)(mu), 0.0, 1.0)
        return _model_fn(self.model)(mu, self.params)

    def solve(self, beta: float) -> float:
        """The strength with passing fraction ``beta`` (NaN if the curve never reaches it)."""
        if self.model == "monotone":
            x, y = self._mono  # type: ignore[misc]
            above = np.nonzero(y >= beta)[0]
            if above.size == 0 or x.size < 2:
                return float("nan")
            j = above[0]
            if j == 0:
                if y[0] == beta:
                    return float(x[0])
                j = 1
            lo, hi = x[j - 1], x[j]
        else:
            lo = min(0.0, float(self.data.strength.min()))
            hi = float(self.data.strength.max())
            f = self
            grow = 0
            while f(hi) < beta and grow < 60:
                hi = hi * 2 if hi > 0 else 1.0
                grow += 1
            if f(hi) < beta:
                return float("nan")
            if f(lo) >= beta:
                return float(lo)
        g = lambda m: float(self(m)) - beta  # noqa: E731
        if g(lo) >= 0:
            return float(lo)
        return float(optimize.brentq(g, lo, hi, xtol=1e-10 * max(1.0, abs(hi)), rtol=1e-10))


def _binom_nll(f: np.ndarray, k: np.ndarray, n: np.ndarray) -> float:
    f = np.clip(f, _EPS, 1 - _EPS)
    return float(-np.sum(k * np.log(f) + (n - k) * np.log1p(-f)))


def fit_passing_curve(
    data: PassingFraction, model: str = "chi2", *, start: np.ndarray | None = None
) -> PassingCurve:
    """Fit a passing-fraction curve by binomial maximum likelihood (see module docstring).

    ``start``: parameters to start from (one start); by default a small grid of starts
    derived from the observed fractions.
    """
    mu, k, n = data.strength.astype(float), data.n_pass.astype(float), data.n_total.astype(float)
    if model == "monotone":
        y = _isotonic(k / n, n)
        return PassingCurve(model, np.array([]), data, _binom_nll(y, k, n), _mono=(mu, y))
    fn = _model_fn(model)
    frac = k / n
    span = float(np.ptp(mu)) or max(float(np.max(np.abs(mu))), 1.0)
    # rough location / width from the observed fractions
    ymono = _isotonic(frac, n)
    if ymono[-1] > ymono[0]:
        mid = float(np.interp(0.5, ymono + np.arange(ymono.size) * 1e-12, mu))
    else:
        mid = float(np.median(mu))
    width = span / 2
    starts: list[np.ndarray] = []
    if start is not None:
        starts.append(np.asarray(start, dtype=float))
    elif model == "chi2":
        for d in (2.0, 10.0):
            for w in (width / 2, 2 * width):
                s = w / np.sqrt(2 * d)
                starts.append(np.array([np.log(d), mid - s * stats.chi2.median(d), np.log(s)]))
    else:
        for w in (width / 2, 2 * width):
            starts.append(np.array([mid, np.log(w)]))
    best: optimize.OptimizeResult | None = None
    for p0 in starts:
        res = optimize.minimize(
            lambda p: _binom_nll(fn(mu, p), k, n),
            p0,
            method="Nelder-Mead",
            options={"xatol": 1e-7, "fatol": 1e-7, "maxiter": 4000, "maxfev": 8000},
        )
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    return PassingCurve(model, np.asarray(best.x), data, float(best.fun))


def _bootstrap(curve: PassingCurve, beta: float, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = curve.data
    out = np.empty(n_boot)
    for b in range(n_boot):
        k = rng.binomial(d.n_total, d.fraction)
        start = curve.params if curve.model != "monotone" else None
        c = fit_passing_curve(PassingFraction(d.strength, k, d.n_total), curve.model, start=start)
        out[b] = c.solve(beta)
    return out


@dataclass(frozen=True)
class StrengthResult:
    """The strength at which a fraction ``beta`` of signal trials pass ``threshold``.

    Attributes
    ----------
    strength
        :math:`\\mu_\\beta` from the fitted curve (in the sampler's strength unit, ns).
    strength_err
        Bootstrap standard deviation of :math:`\\mu_\\beta` (binomial errors propagated).
    beta, threshold
        Target fraction and TS threshold (passing means ``TS > threshold``).
    curve
        The fitted :class:`PassingCurve` (its ``data`` holds all injection points).
    seed, n_trials_total
        Seed of the search and number of signal trials it ran.
    bootstrap
        The bootstrap replicas of :math:`\\mu_\\beta` (NaN where a replica had no root).
    """

    strength: float
    strength_err: float
    beta: float
    threshold: float
    curve: PassingCurve
    seed: int
    n_trials_total: int
    bootstrap: np.ndarray = field(repr=False)


def strength_from_curve(
    curve: PassingCurve, beta: float, threshold: float, *, n_boot: int = 100, seed: int = 0
) -> StrengthResult:
    """Solve a fitted curve for ``beta`` and bootstrap the uncertainty (``seed``-reproducible)."""
    mu = curve.solve(beta)
    boot = _bootstrap(curve, beta, n_boot, seed) if n_boot > 0 else np.array([])
    good = boot[np.isfinite(boot)]
    # Half the 16-84% range: the standard deviation for Gaussian replicas, robust against
    # the rare replica whose refitted curve barely crosses beta (a huge solution).
    err = float(0.5 * np.diff(np.percentile(good, [15.865, 84.135]))[0]) if good.size > 1 else float("nan")
    return StrengthResult(
        strength=mu,
        strength_err=err,
        beta=beta,
        threshold=threshold,
        curve=curve,
        seed=seed,
        n_trials_total=int(curve.data.n_total.sum()),
        bootstrap=boot,
    )


def _window(data: PassingFraction, lo: float, hi: float) -> PassingFraction:
    """The injection points in [lo, hi] (all points if fewer than 3 fall inside)."""
    sel = (data.strength >= lo) & (data.strength <= hi)
    if sel.sum() < 3:
        return data
    return PassingFraction(data.strength[sel], data.n_pass[sel], data.n_total[sel])


def _child_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, i]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def find_strength(
    sampler: SignalSampler,
    threshold: float,
    beta: float,
    *,
    seed: int,
    n_trials: int = 1000,
    strength_init: float = 1.0,
    n_points: int = 6,
    model: str = "chi2",
    n_boot: int = 100,
    max_doublings: int = 40,
    progress: bool | None = None,
    desc: str = "strength search",
) -> StrengthResult:
    r"""Adaptive search of the strength with passing fraction ``beta`` for ``TS > threshold``.

    1. *Bracket*: run ``n_trials // 4`` trials at ``strength_init`` and double (or halve)
       the strength until the passing fraction crosses ``beta``.
    2. *Refine*: linear interpolation between the bracketing points gives
       :math:`\mu_0`; ``n_points`` strengths evenly spaced in
       :math:`[0.5\mu_0, 1.5\mu_0]` get ``n_trials`` trials each.
    3. *Fit* the curve (``model``) to the points within
       :math:`[0.4\mu_0, 1.6\mu_0]` and solve :math:`f(\mu_1)=\beta`.
    4. *Centre*: ``max(3, n_points // 2)`` more strengths in
       :math:`[0.8\mu_1, 1.2\mu_1]`, and the final fit to the points within
       :math:`[0.6\mu_1, 1.4\mu_1]`. Without this stage the design depends on how well
       the bracket located the root and the bootstrap error underestimated the
       seed-to-seed scatter by ~20%; with it the pulls have unit rms (40 seeds, Poisson
       counting with a known answer).
    5. *Bootstrap* (``n_boot`` replicas) for the uncertainty.

    The call ``i`` of the sampler gets the seed ``SeedSequence([seed, i])``, so the whole
    search is reproducible from ``seed``.

    Parameters
    ----------
    sampler
        ``sampler(strength, n_trials, seed) -> TS array`` (e.g.
        :func:`bayesnu.frequentist.trials.signal_sampler`).
    threshold
        TS threshold (strict: a trial passes if ``TS > threshold``).
    beta
        Target passing fraction in (0, 1).
    seed
        Seed of the search.
    n_trials
        Trials per refined injection point.
    strength_init
        First strength to try (a guess of the answer's order of magnitude, e.g. in ns).
    n_points
        Injection points of the refinement.
    model
        Passing-curve model, see :func:`fit_passing_curve`.
    n_boot
        Bootstrap replicas for the uncertainty (0: none).
    max_doublings
        Give up bracketing after this many doublings / halvings.
    progress, desc
        Progress bar (one step per sampler call).
    """
    if not 0 < beta < 1:
        raise ConfigError(f"beta must be in (0, 1), got {beta}")
    if strength_init <= 0:
        raise ConfigError(f"strength_init must be > 0, got {strength_init}")
    calls = 0
    data: PassingFraction | None = None
    bar = progress_bar(None, desc, enabled=progress, unit="point")

    def run(mu: float, n: int) -> float:
        nonlocal calls, data
        ts = np.asarray(sampler(float(mu), int(n), _child_seed(seed, calls)))
        calls += 1
        bar.update(1)
        pf = passing_fraction([mu], [ts], threshold)
        data = pf if data is None else data.merged(pf)
        return float(pf.fraction[0])

    n_bracket = max(n_trials // 4, 50)
    with bar:
        lo, hi = None, None
        mu = float(strength_init)
        f = run(mu, n_bracket)
        if f >= beta:
            hi = (mu, f)
            for _ in range(max_doublings):
                mu /= 2
                f = run(mu, n_bracket)
                if f < beta:
                    lo = (mu, f)
                    break
                hi = (mu, f)
            if lo is None:
                lo = (0.0, f)
        else:
            lo = (mu, f)
            for _ in range(max_doublings):
                mu *= 2
                f = run(mu, n_bracket)
                if f >= beta:
                    hi = (mu, f)
                    break
                lo = (mu, f)
            if hi is None:
                raise ConfigError(
                    f"no strength up to {mu:g} reaches a passing fraction of {beta} "
                    f"(threshold TS > {threshold:g}); check the signal injection or raise max_doublings"
                )
        (m0, f0), (m1, f1) = lo, hi
        mu0 = m0 + (beta - f0) * (m1 - m0) / (f1 - f0) if f1 > f0 else 0.5 * (m0 + m1)
        mu0 = max(mu0, 1e-3 * m1)
        for m in np.linspace(0.5 * mu0, 1.5 * mu0, n_points):
            run(float(m), n_trials)
        assert data is not None
        curve = fit_passing_curve(_window(data, 0.4 * mu0, 1.6 * mu0), model)
        root = curve.solve(beta)
        if np.isfinite(root) and root > 0:
            # second stage centred on the first estimate, so that the final design does
            # not depend on how well the bracket located the root
            for m in np.linspace(0.8 * root, 1.2 * root, max(3, n_points // 2)):
                run(float(m), n_trials)
            curve = fit_passing_curve(_window(data, 0.6 * root, 1.4 * root), model)
    return strength_from_curve(curve, beta, threshold, n_boot=n_boot, seed=seed)
