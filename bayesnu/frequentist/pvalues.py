r"""p-values of a test statistic: Wilks, empirical from background trials, fitted tail.

Conventions (see ``docs/frequentist.rst``):

* The test statistic is :math:`TS = 2[\log L(\hat\theta) - \log L(\theta_0)]`, with the
  signal strength constrained to :math:`n_s \ge 0`, so :math:`TS \ge 0` and a finite
  fraction of background trials has :math:`TS = 0` exactly.
* A p-value is :math:`p = P(TS \ge ts_\mathrm{obs} \mid H_0)`; :math:`p = 1` for
  :math:`ts_\mathrm{obs} \le 0`.
* Significances are one-sided Gaussian: :math:`\sigma = \Phi^{-1}(1-p)`
  (:math:`p = 2.87\times10^{-7}` is :math:`5\sigma`).
* Wilks/Chernoff: with the single parameter of interest on its boundary,
  :math:`TS \sim \tfrac12\delta(0) + \tfrac12\chi^2_k` (:math:`k=1` for ``ns`` alone).
* Tail model: :math:`TS \sim (1-\eta)\,\delta(0) + \eta\,\chi^2_k` with :math:`\eta`
  and :math:`k` fitted by maximum likelihood to background trials (:func:`fit_chi2_tail`),
  used to extrapolate beyond the trial statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from bayesnu.errors import ConfigError

__all__ = [
    "Chi2TailFit",
    "EmpiricalPValue",
    "PValue",
    "chi2_mixture_isf",
    "chi2_mixture_sf",
    "empirical_pvalue",
    "fit_chi2_tail",
    "pvalue",
    "pvalue_from_sigma",
    "sigma_from_pvalue",
    "ts_threshold",
    "wilks_pvalue",
]


def sigma_from_pvalue(p: np.ndarray | float) -> np.ndarray:
    """One-sided Gaussian significance of a p-value: ``Phi^-1(1 - p)`` (``norm.isf``)."""
    return stats.norm.isf(np.asarray(p, dtype=float))


def pvalue_from_sigma(sigma: np.ndarray | float) -> np.ndarray:
    """p-value of a one-sided Gaussian significance: ``1 - Phi(sigma)`` (``norm.sf``)."""
    return stats.norm.sf(np.asarray(sigma, dtype=float))


def chi2_mixture_sf(ts: np.ndarray | float, eta: float, ndof: float) -> np.ndarray:
    r"""Survival function :math:`P(TS \ge ts)` of :math:`(1-\eta)\delta(0)+\eta\chi^2_k`.

    Equal to 1 for ``ts <= 0`` and to :math:`\eta\,\chi^2_k\mathrm{.sf}(ts)` above.
    """
    ts = np.asarray(ts, dtype=float)
    return np.where(ts > 0, eta * stats.chi2.sf(np.maximum(ts, 0.0), ndof), 1.0)


def chi2_mixture_isf(p: np.ndarray | float, eta: float, ndof: float) -> np.ndarray:
    r"""Inverse of :func:`chi2_mixture_sf`: the TS with :math:`P(TS\ge ts)=p` (0 if :math:`p\ge\eta`)."""
    p = np.asarray(p, dtype=float)
    ratio = np.clip(p / eta, 0.0, 1.0)
    return np.where(p >= eta, 0.0, stats.chi2.isf(ratio, ndof))


def wilks_pvalue(ts: np.ndarray | float, ndof: float = 1, *, boundary: bool = True) -> np.ndarray:
    r"""Asymptotic p-value of a likelihood-ratio TS.

    Parameters
    ----------
    ts
        Observed test statistic(s).
    ndof
        Degrees of freedom :math:`k` of the :math:`\chi^2` part.
    boundary
        ``True`` (default) when the tested parameter sits on the boundary of its
        allowed range under :math:`H_0` (``ns >= 0`` tested at ``ns = 0``): Chernoff's
        :math:`\tfrac12\delta(0)+\tfrac12\chi^2_k`, i.e. :math:`p=\tfrac12\chi^2_k.sf(ts)`.
        ``False``: plain Wilks, :math:`p=\chi^2_k.sf(ts)`.
    """
    if boundary:
        return chi2_mixture_sf(ts, 0.5, ndof)
    ts = np.asarray(ts, dtype=float)
    return np.where(ts > 0, stats.chi2.sf(np.maximum(ts, 0.0), ndof), 1.0)


@dataclass(frozen=True)
class EmpiricalPValue:
    r"""Empirical p-value :math:`\hat p = k/n` of :func:`empirical_pvalue`.

    Attributes
    ----------
    pvalue
        :math:`k/n`, with :math:`k` the number of background trials with :math:`TS\ge ts`.
    pvalue_err
        Binomial standard error :math:`\sqrt{\hat p(1-\hat p)/n}` (0 when :math:`k=0`).
    n_above, n_trials
        :math:`k` and :math:`n`.
    ci_low, ci_high
        Clopper-Pearson 68.27% interval of :math:`p` (well defined also for ``k = 0``).
    """

    pvalue: np.ndarray
    pvalue_err: np.ndarray
    n_above: np.ndarray
    n_trials: int
    ci_low: np.ndarray
    ci_high: np.ndarray


def _clean_background(background_ts: np.ndarray) -> np.ndarray:
    bg = np.asarray(background_ts, dtype=float).ravel()
    if bg.size == 0:
        raise ConfigError("the background TS sample is empty")
    if not np.all(np.isfinite(bg)):
        bad = int(np.sum(~np.isfinite(bg)))
        raise ConfigError(
            f"the background TS sample has {bad} non-finite values; drop failed trials explicitly first"
        )
    return bg


def empirical_pvalue(ts: np.ndarray | float, background_ts: np.ndarray) -> EmpiricalPValue:
    """Fraction of background trials with TS at least ``ts``, with binomial errors."""
    bg = np.sort(_clean_background(background_ts))
    n = bg.size
    ts = np.asarray(ts, dtype=float)
    k = n - np.searchsorted(bg, ts, side="left")
    p = k / n
    err = np.sqrt(p * (1.0 - p) / n)
    alpha = 1.0 - 0.6826894921370859
    lo = np.where(k > 0, stats.beta.ppf(alpha / 2, np.maximum(k, 1), n - k + 1), 0.0)
    hi = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)), 1.0)
    return EmpiricalPValue(pvalue=p, pvalue_err=err, n_above=k, n_trials=n, ci_low=lo, ci_high=hi)


@dataclass(frozen=True)
class Chi2TailFit:
    r"""Maximum-likelihood fit of :math:`TS \sim (1-\eta)\delta(0)+\eta\chi^2_k` (:func:`fit_chi2_tail`).

    Attributes
    ----------
    eta, eta_err
        Weight of the :math:`\chi^2` part and its standard error.
    ndof, ndof_err
        Fitted (real-valued) degrees of freedom :math:`k` and standard error.
    ts_fit_min
        The :math:`\chi^2` part was fitted to trials with :math:`TS > ts_{\rm fit,min}`.
    n_trials, n_fit
        All trials, and trials above ``ts_fit_min``.
    ks_pvalue
        Kolmogorov-Smirnov p-value of the fitted truncated :math:`\chi^2_k` against the
        trials above ``ts_fit_min`` (a goodness-of-fit diagnostic; small values mean the
        tail model is inadequate and its extrapolation should not be trusted).
    cov
        Covariance of :math:`(\eta, k)`.
    """

    eta: float
    eta_err: float
    ndof: float
    ndof_err: float
    ts_fit_min: float
    n_trials: int
    n_fit: int
    ks_pvalue: float
    cov: np.ndarray

    def sf(self, ts: np.ndarray | float) -> np.ndarray:
        r""":math:`P(TS \ge ts)` of the fitted mixture."""
        return chi2_mixture_sf(ts, self.eta, self.ndof)

    def pvalue(self, ts: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """p-value and its standard error (delta method over the covariance of (eta, k))."""
        ts = np.asarray(ts, dtype=float)
        p = self.sf(ts)
        h = max(1e-4, 1e-4 * self.ndof)
        dp_deta = np.where(ts > 0, stats.chi2.sf(np.maximum(ts, 0.0), self.ndof), 0.0)
        dp_dk = (
            chi2_mixture_sf(ts, self.eta, self.ndof + h) - chi2_mixture_sf(ts, self.eta, self.ndof - h)
        ) / (2 * h)
        dp_dk = np.where(ts > 0, dp_dk, 0.0)
        g = np.stack([dp_deta, dp_dk], axis=-1)
        var = np.einsum("...i,ij,...j->...", g, self.cov, g)
        return p, np.sqrt(np.maximum(var, 0.0))

    def isf(self, p: np.ndarray | float) -> np.ndarray:
        """The TS whose fitted p-value is ``p``."""
        return chi2_mixture_isf(p, self.eta, self.ndof)


def fit_chi2_tail(
    background_ts: np.ndarray,
    *,
    ts_fit_min: float = 0.0,
    ndof_bounds: tuple[float, float] = (0.05, 100.0),
) -> Chi2TailFit:
    r"""Fit :math:`TS \sim (1-\eta)\delta(0)+\eta\chi^2_k` to background trials by maximum likelihood.

    The trials split into :math:`n - m` with :math:`TS \le t_0` and :math:`m` above
    (:math:`t_0` = ``ts_fit_min``, default 0: the zero/non-zero split). The likelihood
    factorises into a binomial part for the split and the truncated density of the
    :math:`m` values above :math:`t_0`:

    .. math::

        \log L(\eta, k) = m\log q + (n-m)\log(1-q)
            + \sum_{TS_i > t_0}\left[\log f_{\chi^2_k}(TS_i) - \log S_{\chi^2_k}(t_0)\right],
        \qquad q = \eta\,S_{\chi^2_k}(t_0),

    so :math:`\hat k` maximises the truncated density and :math:`\hat\eta =
    (m/n)/S_{\chi^2_{\hat k}}(t_0)` (:math:`=m/n` for :math:`t_0=0`). A positive
    ``ts_fit_min`` fits only the tail, which is what the extrapolation uses.
    Errors come from the observed Fisher information.

    Parameters
    ----------
    background_ts
        Background-trial test statistics (finite).
    ts_fit_min
        Fit the :math:`\chi^2` shape to trials with TS above this value.
    ndof_bounds
        Search range of :math:`k`.
    """
    bg = _clean_background(background_ts)
    n = bg.size
    t0 = float(ts_fit_min)
    if t0 < 0:
        raise ConfigError(f"ts_fit_min must be >= 0, got {t0}")
    above = bg[bg > t0]
    m = above.size
    if m < 5:
        raise ConfigError(
            f"only {m} of {n} background trials have TS > {t0}: too few to fit the chi2 tail "
            "(run more trials or lower ts_fit_min)"
        )
    log_above = np.log(above)
    sum_above = np.sum(above)

    def nll_k(k: float) -> float:
        # chi2 log-pdf summed analytically, minus the truncation term
        logpdf = (
            (k / 2 - 1) * log_above.sum() - sum_above / 2 - m * (k / 2 * np.log(2) + special.gammaln(k / 2))
        )
        return -(logpdf - m * stats.chi2.logsf(t0, k)) if t0 > 0 else -logpdf

    res = optimize.minimize_scalar(nll_k, bounds=ndof_bounds, method="bounded", options={"xatol": 1e-8})
    k_hat = float(res.x)
    s0 = float(stats.chi2.sf(t0, k_hat)) if t0 > 0 else 1.0
    q = m / n
    eta = min(q / s0, 1.0)

    def nll_full(theta: np.ndarray) -> float:
        e, k = theta
        qq = e * (stats.chi2.sf(t0, k) if t0 > 0 else 1.0)
        qq = min(max(qq, 1e-300), 1 - 1e-16)
        return -(m * np.log(qq) + (n - m) * np.log1p(-qq)) + nll_k(k)

    cov = _numeric_cov(
        nll_full, np.array([eta, k_hat]), np.array([max(1e-6, 1e-4 * eta), 1e-4 * max(k_hat, 1)])
    )
    if eta >= 1.0 or m == n:
        cov[0, :] = cov[:, 0] = 0.0
        cov[0, 0] = eta * (1 - eta) / n
    cdf_trunc = (
        (lambda x: 1.0 - stats.chi2.sf(x, k_hat) / s0) if t0 > 0 else (lambda x: stats.chi2.cdf(x, k_hat))
    )
    ks = stats.kstest(above, cdf_trunc)
    return Chi2TailFit(
        eta=float(eta),
        eta_err=float(np.sqrt(max(cov[0, 0], 0.0))),
        ndof=k_hat,
        ndof_err=float(np.sqrt(max(cov[1, 1], 0.0))),
        ts_fit_min=t0,
        n_trials=n,
        n_fit=m,
        ks_pvalue=float(ks.pvalue),
        cov=cov,
    )


def _numeric_cov(nll: object, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Inverse of the finite-difference Hessian of ``nll`` at ``x`` (central differences)."""
    f = nll  # type: ignore[assignment]
    d = x.size
    hess = np.empty((d, d))
    for i in range(d):
        for j in range(i, d):
            ei, ej = np.eye(d)[i] * h[i], np.eye(d)[j] * h[j]
            val = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h[i] * h[j])  # type: ignore[operator]
            hess[i, j] = hess[j, i] = val
    try:
        return np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return np.full((d, d), np.nan)


@dataclass(frozen=True)
class PValue:
    """Result of :func:`pvalue` (arrays broadcast like ``ts``).

    Attributes
    ----------
    ts
        The test statistic(s).
    pvalue, pvalue_err
        p-value and its standard error.
    sigma
        One-sided Gaussian significance of ``pvalue``.
    method
        Per value: ``"empirical"`` (enough background trials above ``ts``),
        ``"tail_fit"`` (extrapolated with the fitted chi2 mixture) or ``"wilks"``.
    n_above, n_trials
        Background trials with TS >= ts, and in total (0 for Wilks).
    """

    ts: np.ndarray
    pvalue: np.ndarray
    pvalue_err: np.ndarray
    sigma: np.ndarray
    method: np.ndarray
    n_above: np.ndarray
    n_trials: int


def pvalue(
    ts: np.ndarray | float,
    background: np.ndarray | None = None,
    *,
    min_above: int = 20,
    tail: Chi2TailFit | None = None,
    ndof: float = 1,
) -> PValue:
    r"""p-value of ``ts``: empirical where the trials have statistics, the fitted tail beyond.

    Parameters
    ----------
    ts
        Observed test statistic(s).
    background
        Background-trial TS values. ``None``: Wilks/Chernoff with ``ndof`` (see
        :func:`wilks_pvalue`).
    min_above
        The empirical p-value is used when at least this many background trials have
        :math:`TS \ge ts` (relative error :math:`\lesssim 1/\sqrt{k}`); otherwise the
        fitted tail extrapolates.
    tail
        The tail fit used beyond the trial statistics; by default
        :func:`default_tail_fit` of ``background`` (the zero/non-zero split fit).
    ndof
        Degrees of freedom for the Wilks p-value.
    """
    ts_arr = np.asarray(ts, dtype=float)
    if background is None:
        p = wilks_pvalue(ts_arr, ndof)
        return PValue(
            ts=ts_arr,
            pvalue=p,
            pvalue_err=np.zeros_like(p),
            sigma=sigma_from_pvalue(p),
            method=np.full(ts_arr.shape, "wilks"),
            n_above=np.zeros(ts_arr.shape, dtype=int),
            n_trials=0,
        )
    emp = empirical_pvalue(ts_arr, background)
    use_emp = emp.n_above >= min_above
    p, err = emp.pvalue.astype(float), emp.pvalue_err.astype(float)
    method = np.where(use_emp, "empirical", "tail_fit")
    if not np.all(use_emp):
        if tail is None:
            tail = default_tail_fit(background)
        pt, et = tail.pvalue(ts_arr)
        p = np.where(use_emp, p, pt)
        err = np.where(use_emp, err, et)
    return PValue(
        ts=ts_arr,
        pvalue=p,
        pvalue_err=err,
        sigma=sigma_from_pvalue(p),
        method=method,
        n_above=emp.n_above,
        n_trials=emp.n_trials,
    )


def default_tail_fit(background: np.ndarray) -> Chi2TailFit:
    """The tail fit :func:`pvalue` and :func:`ts_threshold` use unless given one:
    :func:`fit_chi2_tail` with the zero/non-zero split (``ts_fit_min=0``)."""
    return fit_chi2_tail(background, ts_fit_min=0.0)


def ts_threshold(
    background: np.ndarray,
    *,
    sigma: float | None = None,
    pvalue: float | None = None,
    min_above: int = 20,
    tail: Chi2TailFit | None = None,
) -> tuple[float, str]:
    r"""The TS whose background p-value is ``pvalue`` (or that of ``sigma``), and how it was found.

    Empirical (the :math:`1-p` quantile of the trials, linear interpolation) when at
    least ``min_above`` trials are expected above it (:math:`np \ge` ``min_above``),
    otherwise from the fitted tail (:func:`default_tail_fit` unless ``tail`` is given).

    Returns
    -------
    (ts, method)
        ``method`` is ``"empirical"`` or ``"tail_fit"``.
    """
    if (sigma is None) == (pvalue is None):
        raise ConfigError("give exactly one of sigma= or pvalue=")
    p = float(pvalue_from_sigma(sigma)) if sigma is not None else float(pvalue)  # type: ignore[arg-type]
    if not 0 < p < 1:
        raise ConfigError(f"the p-value must be in (0, 1), got {p}")
    bg = _clean_background(background)
    if bg.size * p >= min_above:
        return float(np.quantile(bg, 1.0 - p)), "empirical"
    if tail is None:
        tail = default_tail_fit(bg)
    return float(tail.isf(p)), "tail_fit"
