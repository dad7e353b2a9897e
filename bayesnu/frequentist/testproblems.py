"""Small statistical problems with known answers, for validating the frequentist engines.

These are *reference problems*, not analyses: they exercise exactly the code paths of a
real analysis (a PRNG key in, a fitted TS out, fixed-size padded arrays, a bounded fit
of the signal strength inside ``vmap``) at a cost small enough for unit tests, coverage
checks and throughput benchmarks.

* :func:`counting_trial`: Poisson counting with known background ``b``; signal
  strength ``mu >= 0``. Closed-form MLE and TS, discrete TS distribution.
* :func:`peak_trial`: an unbinned "point source in one dimension": events on
  ``[-L, L]`` from a flat background plus a Gaussian signal at 0, fitted with the
  IceCube-style likelihood :math:`\\sum_i \\log(\\frac{n_s}{N} S_i + (1-\\frac{n_s}{N}) B_i)`
  over ``0 <= ns < N``. The TS is continuous with a point mass at 0, as in the
  point-source analysis, and approaches :math:`\\tfrac12\\delta(0)+\\tfrac12\\chi^2_1`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

__all__ = ["PeakProblem", "counting_trial", "fit_signal_fraction", "peak_trial"]


def counting_trial(key: jax.Array, mu: jax.Array, background: jax.Array) -> dict[str, jax.Array]:
    r"""One Poisson counting experiment with known background.

    :math:`n \sim \mathrm{Poisson}(\mu + b)`; :math:`\hat\mu = \max(n-b, 0)`;
    :math:`TS = 2[n\log(n/b) - (n-b)]` for :math:`n > b`, else 0.

    Returns ``{"n", "mu_hat", "ts"}``.
    """
    mu = jnp.asarray(mu, dtype=float)
    b = jnp.asarray(background, dtype=float)
    n = jax.random.poisson(key, mu + b).astype(float)
    above = n > b
    safe_n = jnp.where(n > 0, n, 1.0)
    ts = jnp.where(above, 2.0 * (n * jnp.log(safe_n / b) - (n - b)), 0.0)
    return {"n": n, "mu_hat": jnp.maximum(n - b, 0.0), "ts": jnp.maximum(ts, 0.0)}


@dataclass(frozen=True)
class PeakProblem:
    """The 1-D unbinned peak search of :func:`peak_trial`.

    Parameters
    ----------
    n_background
        Expected number of background events (Poisson mean).
    sigma
        Width of the Gaussian signal at x = 0.
    half_width
        The events lie in ``[-half_width, half_width]``.
    n_max
        Static size of the padded event arrays; a trial with more events sets
        ``overflow`` (choose ``n_max`` several standard deviations above the mean).
    """

    n_background: float = 200.0
    sigma: float = 0.05
    half_width: float = 1.0
    n_max: int = 512


jax.tree_util.register_dataclass(
    PeakProblem, data_fields=["n_background", "sigma", "half_width"], meta_fields=["n_max"]
)


def fit_signal_fraction(ratio: jax.Array, mask: jax.Array, n_iter: int = 40) -> tuple[jax.Array, jax.Array]:
    r"""Maximise :math:`f(x)=\sum_i m_i\log(1+x(R_i-1))` over :math:`0\le x<1`.

    ``R_i = S_i/B_i`` are signal-over-background ratios, ``m_i`` the event mask. The
    function is concave; a safeguarded Newton iteration (bisection when a Newton step
    leaves the bracket) with a fixed number of steps keeps it ``vmap``-able.

    Returns ``(x_hat, f(x_hat))``; ``TS = 2 f(x_hat)``.
    """
    r1 = jnp.where(mask, ratio - 1.0, 0.0)

    def grads(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        d = 1.0 + x * r1
        return jnp.sum(r1 / d), -jnp.sum((r1 / d) ** 2)

    g0 = jnp.sum(r1)
    hi0 = 1.0 - 1e-12

    def body(_: int, state: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
        x, lo, hi = state
        g, h = grads(x)
        lo = jnp.where(g > 0, x, lo)
        hi = jnp.where(g > 0, hi, x)
        newton = x - g / jnp.where(h < 0, h, -1.0)
        inside = (newton > lo) & (newton < hi)
        x_new = jnp.where(inside, newton, 0.5 * (lo + hi))
        return x_new, lo, hi

    x, _, _ = jax.lax.fori_loop(0, n_iter, body, (jnp.asarray(0.5), jnp.asarray(0.0), jnp.asarray(hi0)))
    x = jnp.where(g0 > 0, x, 0.0)
    f = jnp.sum(jnp.where(mask, jnp.log1p(x * r1), 0.0))
    return x, jnp.maximum(f, 0.0)


def peak_trial(key: jax.Array, ns: jax.Array, problem: PeakProblem) -> dict[str, jax.Array]:
    """One pseudo-experiment of the 1-D peak search with ``ns`` expected signal events.

    Returns ``{"ts", "ns", "n_events", "n_signal", "overflow"}``: the test statistic, the
    fitted number of signal events, the number of events, the injected number of signal
    events and whether the padded arrays overflowed.
    """
    k_n, k_sig, k_bkg = jax.random.split(key, 3)
    half = jnp.asarray(problem.half_width, dtype=float)
    sig = jnp.asarray(problem.sigma, dtype=float)
    # one Poisson draw for both counts (the Poisson sampler is the costliest part to compile)
    means = jnp.stack([jnp.asarray(problem.n_background, dtype=float), jnp.asarray(ns, dtype=float)])
    n_b, n_s = jax.random.poisson(k_n, means)
    slot = jnp.arange(problem.n_max)
    x_sig = sig * jax.random.truncated_normal(k_sig, -half / sig, half / sig, (problem.n_max,))
    x_bkg = jax.random.uniform(k_bkg, (problem.n_max,), minval=-half, maxval=half)
    x = jnp.where(slot < n_s, x_sig, x_bkg)
    mask = slot < n_s + n_b
    norm_s = 2.0 * ndtr(half / sig) - 1.0
    s_pdf = jnp.exp(-0.5 * (x / sig) ** 2) / (jnp.sqrt(2.0 * jnp.pi) * sig * norm_s)
    b_pdf = 1.0 / (2.0 * half)
    n_events = jnp.sum(mask)
    frac, f = fit_signal_fraction(s_pdf / b_pdf, mask)
    return {
        "ts": 2.0 * f,
        "ns": frac * n_events,
        "n_events": n_events,
        "n_signal": n_s,
        "overflow": n_s + n_b > problem.n_max,
    }
