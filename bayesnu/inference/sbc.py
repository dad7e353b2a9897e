r"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788) statistics.

For parameters drawn from the prior, data simulated from the model and posterior
draws :math:`\theta^{(1..L)}` given that data, the rank
:math:`r = \#\{\ell: \theta^{(\ell)} < \theta_\mathrm{true}\}` is uniform on
:math:`\{0,\dots,L\}` when the inference is calibrated. :func:`rank_uniformity` tests
that with a chi-square test on a binned rank histogram; :func:`interval_coverage`
counts how often central credible intervals contain the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def rank(truth: float, draws: np.ndarray, rng: np.random.Generator | None = None) -> int:
    """Rank of ``truth`` among ``draws`` (ties, e.g. at a prior boundary, broken at random)."""
    draws = np.asarray(draws, dtype=float).ravel()
    below = int(np.count_nonzero(draws < truth))
    ties = int(np.count_nonzero(draws == truth))
    if ties and rng is not None:
        below += int(rng.integers(0, ties + 1))
    return below


@dataclass(frozen=True)
class UniformityTest:
    """Chi-square test of a rank histogram against the uniform distribution."""

    chi2: float
    dof: int
    pvalue: float
    counts: np.ndarray


def rank_uniformity(ranks: np.ndarray, n_draws: int, n_bins: int | None = None) -> UniformityTest:
    """Chi-square test that ranks in ``0..n_draws`` are uniform.

    Parameters
    ----------
    ranks
        One rank per simulated data set.
    n_draws
        Number of posterior draws each rank was computed from (ranks lie in 0..n_draws).
    n_bins
        Histogram bins (default: about ``len(ranks)/10``, at least 4, dividing
        ``n_draws + 1`` as evenly as possible).
    """
    ranks = np.asarray(ranks, dtype=float)
    n = ranks.size
    if n_bins is None:
        n_bins = max(4, min(20, n // 10))
    edges = np.linspace(0, n_draws + 1, n_bins + 1)
    counts, _ = np.histogram(ranks, bins=edges)
    expected = n * np.diff(edges) / (n_draws + 1)
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    dof = n_bins - 1
    return UniformityTest(chi2=chi2, dof=dof, pvalue=float(stats.chi2.sf(chi2, dof)), counts=counts)


@dataclass(frozen=True)
class Coverage:
    """Fraction of data sets whose central credible interval at ``level`` holds the truth."""

    level: float
    fraction: float
    n: int

    @property
    def binomial_error(self) -> float:
        """Standard error of the fraction for a calibrated method, sqrt(level (1 - level) / n)."""
        return float(np.sqrt(self.level * (1 - self.level) / self.n))

    def consistent(self, n_sigma: float = 3.0) -> bool:
        """Whether the fraction is within ``n_sigma`` binomial errors of the nominal level."""
        return abs(self.fraction - self.level) <= n_sigma * self.binomial_error


def interval_coverage(
    truths: np.ndarray, quantile_of_truth: np.ndarray, levels: Sequence[float] = (0.68, 0.9)
) -> list[Coverage]:
    """Coverage of central intervals from the posterior CDF evaluated at the truth.

    Parameters
    ----------
    truths
        True values (only their count is used).
    quantile_of_truth
        Posterior CDF at the true value for each data set (rank / n_draws).
    levels
        Credible levels of the central intervals.
    """
    q = np.asarray(quantile_of_truth, dtype=float)
    out = []
    for lev in levels:
        lo, hi = 0.5 * (1 - lev), 0.5 * (1 + lev)
        inside = (q >= lo) & (q <= hi)
        out.append(Coverage(level=float(lev), fraction=float(np.mean(inside)), n=int(np.size(truths))))
    return out
