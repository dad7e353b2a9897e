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

from bayesnu.errors import ConfigError


class GridMarginals:
    """Marginal summaries of a posterior density tabulated on a regular 2-D grid.

    Subclasses (frozen dataclasses) hold the two node arrays and ``density`` of shape
    ``(len(first), len(second))``, and name them in ``_AXES``: ``((parameter, attribute),
    (parameter, attribute))``. Integrals use the trapezoidal rule; the CDF is linear
    between nodes.
    """

    _AXES: tuple[tuple[str, str], tuple[str, str]]
    density: np.ndarray

    def marginal(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Nodes and normalised marginal density of parameter ``name``."""
        names = [a[0] for a in self._AXES]
        if name not in names:
            raise ConfigError(f"the grid posterior has {' and '.join(names)}, not {name!r}")
        axis = names.index(name)
        x = getattr(self, self._AXES[axis][1])
        other = getattr(self, self._AXES[1 - axis][1])
        m = np.trapezoid(self.density, other, axis=1 - axis)
        return x, m / np.trapezoid(m, x)

    def mean(self, name: str) -> float:
        """Posterior mean."""
        x, m = self.marginal(name)
        return float(np.trapezoid(x * m, x))

    def sd(self, name: str) -> float:
        """Posterior standard deviation."""
        x, m = self.marginal(name)
        mu = np.trapezoid(x * m, x)
        return float(np.sqrt(np.trapezoid((x - mu) ** 2 * m, x)))

    def cdf(self, name: str, value: float) -> float:
        """Marginal posterior CDF at ``value``."""
        x, m = self.marginal(name)
        c = np.concatenate([[0.0], np.cumsum(0.5 * (m[1:] + m[:-1]) * np.diff(x))])
        return float(np.interp(value, x, c / c[-1]))


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
