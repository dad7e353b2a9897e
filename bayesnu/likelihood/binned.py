"""Binned likelihoods of weighted Monte Carlo: Poisson and the SAY effective likelihood.

Both take per-bin observed counts :math:`k_b` and the per-event expected weights
:math:`w_i` (expected number of events contributed by MC event :math:`i`) with the
bin index of each event, and sum over bins. Pure JAX: jit-, grad- and vmap-able.

Poisson
    :math:`\\ln L_b = k_b \\ln\\mu_b - \\mu_b - \\ln k_b!`, :math:`\\mu_b = \\sum_{i\\in b} w_i`.

SAY (Argüelles, Schneider, Yuan, arXiv:1901.04645, eq. 3.15)
    The Poisson rate is marginalised over a gamma-distributed MC expectation with
    mean :math:`\\mu_b` and variance :math:`\\sigma_b^2 = \\sum_{i\\in b} w_i^2`:
    with :math:`\\alpha = \\mu^2/\\sigma^2 + 1` and :math:`\\beta = \\mu/\\sigma^2`,

    .. math::

       \\ln L_b = \\alpha\\ln\\beta + \\ln\\Gamma(k + \\alpha) - \\ln k! - (k + \\alpha)\\ln(1 + \\beta)
                 - \\ln\\Gamma(\\alpha).

    It tends to the Poisson likelihood as :math:`\\sigma^2/\\mu \\to 0`. Bins with
    :math:`\\mu_b < 10^{-30}` use the Poisson term (a difference below :math:`10^{-29}`
    in :math:`\\ln L`; the SAY gradient overflows there).

Special cases follow the HESE release's implementation: a bin without MC events is
skipped (``has_mc`` false: it contributes 0 whatever :math:`k_b`); a bin whose
:math:`\\mu_b \\le 0` contributes 0 if :math:`k_b = 0` and :math:`-\\infty` otherwise;
a bin with :math:`\\sigma_b^2 = 0` and :math:`\\mu_b > 0` uses the Poisson term.
Both include :math:`-\\ln k!`, so they are normalised probabilities of the counts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

LIKELIHOODS: tuple[str, ...] = ("say", "poisson")

#: Below this expected count a bin's SAY term is replaced by the Poisson term (see :func:`say_logpmf`).
TINY_EXPECTATION = 1e-30


def poisson_logpmf(k: jax.Array, mu: jax.Array) -> jax.Array:
    """Per-bin Poisson log-probability (``mu <= 0``: 0 for ``k = 0``, else ``-inf``)."""
    pos = mu > 0
    safe = jnp.where(pos, mu, 1.0)
    val = k * jnp.log(safe) - safe - gammaln(k + 1.0)
    return jnp.where(pos, val, jnp.where(k == 0, 0.0, -jnp.inf))


def say_logpmf(k: jax.Array, mu: jax.Array, sigma2: jax.Array) -> jax.Array:
    """Per-bin SAY effective log-likelihood (arXiv:1901.04645), release special cases included."""
    # Bins with a negligible expectation (mu < 1e-30, e.g. only Earth-absorbed MC events) use
    # the Poisson term: it differs from SAY by ~mu there (< 1e-29 in ln L) while the SAY
    # gradient would overflow (d alpha / d sigma2 = -mu^2 / sigma2^2).
    pos = mu > TINY_EXPECTATION
    has_var = sigma2 > 0
    ok = pos & has_var
    mu_s = jnp.where(ok, mu, 1.0)
    s2_s = jnp.where(ok, sigma2, 1.0)
    alpha = mu_s**2 / s2_s + 1.0
    beta = mu_s / s2_s
    val = (
        alpha * jnp.log(beta)
        + gammaln(alpha + k)
        - gammaln(k + 1.0)
        - (alpha + k) * jnp.log1p(beta)
        - gammaln(alpha)
    )
    return jnp.where(ok, val, poisson_logpmf(k, mu))


def bin_sums(w: jax.Array, bin_index: jax.Array, n_bins: int) -> tuple[jax.Array, jax.Array]:
    """Per-bin :math:`\\sum w` and :math:`\\sum w^2` (``bin_index`` sorted, in ``[0, n_bins)``)."""
    mu = jax.ops.segment_sum(w, bin_index, num_segments=n_bins, indices_are_sorted=True)
    s2 = jax.ops.segment_sum(w * w, bin_index, num_segments=n_bins, indices_are_sorted=True)
    return mu, s2


def binned_loglike(
    counts: jax.Array, mu: jax.Array, sigma2: jax.Array, has_mc: jax.Array, kind: str = "say"
) -> jax.Array:
    """Total log-likelihood over bins.

    Parameters
    ----------
    counts
        Observed counts per bin.
    mu, sigma2
        Per-bin sum of weights and of squared weights.
    has_mc
        Bins holding at least one MC event (others are skipped, as the release does).
    kind
        ``"say"`` or ``"poisson"``.
    """
    # Materialise the per-bin sums: without the barrier XLA fuses the per-bin gradient of the
    # SAY term (digamma) into the per-event gather of the backward pass, recomputing it for
    # every MC event (10x slower gradients).
    mu, sigma2 = jax.lax.optimization_barrier((mu, sigma2))
    if kind == "say":
        per_bin = say_logpmf(counts, mu, sigma2)
    elif kind == "poisson":
        per_bin = poisson_logpmf(counts, mu)
    else:
        raise ValueError(f"unknown likelihood {kind!r}; choose one of {LIKELIHOODS}")
    return jnp.sum(jnp.where(has_mc, per_bin, 0.0))
