r"""Simulation-based calibration (SBC) of the diffuse posterior for (astro_norm, astro_gamma).

SBC (Talts et al. 2018, arXiv:1804.06788; statistics in :mod:`bayesnu.inference.sbc`):
draw the parameters from the prior, simulate counts from the likelihood's own
generative model, compute the posterior, and record where the true value falls in it.
For a correct posterior computation the ranks are uniform and central credible
intervals cover at their nominal rate.

Generative models (:func:`simulate_counts`), one per likelihood of
:mod:`bayesnu.likelihood.binned`, with :math:`\mu_b = \sum_{i\in b} w_i(\theta)` and
:math:`\sigma^2_b = \sum_{i\in b} w_i^2(\theta)` from the MC:

* Poisson: :math:`k_b \sim \mathrm{Poisson}(\mu_b)`;
* SAY: the SAY likelihood is the Poisson likelihood marginalised over a gamma-distributed
  rate, so :math:`\lambda_b \sim \mathrm{Gamma}(\alpha_b, \beta_b)` (shape
  :math:`\alpha = \mu^2/\sigma^2 + 1`, rate :math:`\beta = \mu/\sigma^2`) and
  :math:`k_b \sim \mathrm{Poisson}(\lambda_b)`; bins with :math:`\sigma_b^2 = 0` or
  :math:`\mu_b < 10^{-30}` are Poisson, as in the likelihood. Bins without MC events
  (skipped by the likelihood) get no events.

The MC itself is fixed: SBC checks that the posterior computation (priors, likelihood,
sampler or grid) is self-consistent, not that the MC describes the detector.

Posteriors:

* ``method="grid"``: (astro_norm, astro_gamma) free with uniform priors on bounded
  ranges, every other parameter fixed; the posterior is prior x likelihood on a regular
  grid (the likelihood of every grid point evaluated with the model's own
  :func:`~bayesnu.analyses.diffuse.model.event_weights` and
  :func:`~bayesnu.likelihood.binned.binned_loglike`), marginal CDFs by the trapezoidal
  rule; ranks are ``quantile * n_draws`` with a nominal ``n_draws``.
* ``method="nuts"``: any set of free parameters with proper priors, NUTS on the NumPyro
  model :func:`~bayesnu.analyses.diffuse.model.diffuse` (one chain per data set, one
  compiled sampler for all, every chain started at the same prior-centre values), ranks
  among the thinned draws.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from bayesnu.analyses.diffuse.analysis import DiffuseAnalysis
from bayesnu.analyses.diffuse.model import DiffuseInputs, diffuse, event_weights
from bayesnu.analyses.diffuse.params import PARAMETER_NAMES, Prior
from bayesnu.errors import ConfigError
from bayesnu.inference.repeated_nuts import RepeatedNUTS
from bayesnu.inference.sbc import (
    Coverage,
    GridMarginals,
    UniformityTest,
    interval_coverage,
    rank,
    rank_uniformity,
)
from bayesnu.likelihood.binned import TINY_EXPECTATION, bin_sums, binned_loglike
from bayesnu.parallel import progress_bar

#: The parameters whose calibration the SBC is about.
SBC_PARAMETERS: tuple[str, str] = ("astro_norm", "astro_gamma")


def _bin_sums_of(theta: Mapping[str, jax.Array], inputs: DiffuseInputs) -> tuple[jax.Array, jax.Array]:
    return bin_sums(event_weights(theta, inputs), inputs.bin_index, inputs.n_bins)


_bin_sums_jit = jax.jit(_bin_sums_of)


def _grid_loglike(kind: str):
    """Jitted log-likelihood of one count vector at every (norm, gamma) grid node."""

    def one(k: jax.Array, mu: jax.Array, s2: jax.Array, has_mc: jax.Array) -> jax.Array:
        return binned_loglike(k, mu, s2, has_mc, kind)

    return jax.jit(jax.vmap(jax.vmap(one, (None, 0, 0, None)), (None, 0, 0, None)))


def expected_bin_sums(inputs: DiffuseInputs, theta: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin :math:`\\mu_b = \\sum w_i` and :math:`\\sigma^2_b = \\sum w_i^2` at ``theta`` (all of them)."""
    th = {n: jnp.asarray(float(theta[n])) for n in PARAMETER_NAMES}
    mu, s2 = _bin_sums_jit(th, inputs)
    return np.asarray(mu), np.asarray(s2)


def draw_counts(
    mu: np.ndarray,
    sigma2: np.ndarray,
    has_mc: np.ndarray,
    likelihood: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Counts drawn from the generative model of ``likelihood`` given per-bin sums (module docstring).

    Parameters
    ----------
    mu, sigma2
        Per-bin :math:`\\sum w` and :math:`\\sum w^2` (any shape, broadcast together).
    has_mc
        Bins with MC events (others get 0 events).
    likelihood
        ``"say"`` or ``"poisson"``.
    rng
        Random generator (the only source of randomness).
    """
    mu, sigma2 = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(sigma2, dtype=float))
    has_mc = np.broadcast_to(np.asarray(has_mc, dtype=bool), mu.shape)
    rate = np.clip(mu, 0.0, None)
    if likelihood == "say":
        say = has_mc & (mu > TINY_EXPECTATION) & (sigma2 > 0)
        s2 = np.where(say, sigma2, 1.0)
        shape = np.where(say, mu**2 / s2 + 1.0, 1.0)
        beta = np.where(say, mu / s2, 1.0)
        rate = np.where(say, rng.gamma(shape, 1.0 / beta), rate)
    elif likelihood != "poisson":
        raise ConfigError(f"unknown likelihood {likelihood!r}; choose 'say' or 'poisson'")
    return np.where(has_mc, rng.poisson(rate), 0).astype(float)


def simulate_counts(
    inputs: DiffuseInputs, theta: Mapping[str, float], rng: np.random.Generator
) -> np.ndarray:
    """Counts per bin from the generative model of ``inputs.likelihood`` at ``theta`` (all parameters).

    The likelihood inputs' own ``counts`` are ignored.
    """
    mu, s2 = expected_bin_sums(inputs, theta)
    return draw_counts(mu, s2, np.asarray(inputs.has_mc), inputs.likelihood, rng)


def _check_proper(name: str, p: Prior) -> None:
    if not p.gaussian and not (math.isfinite(p.lower) and math.isfinite(p.upper)):
        raise ConfigError(
            f"SBC draws {name} from its prior, but its flat prior on [{p.lower}, {p.upper}] is improper; "
            f"give it finite bounds, e.g. priors={{'{name}': {{'lower': 0.0, 'upper': 5.0}}}}"
        )


def draw_from_prior(priors: Mapping[str, Prior], names: Sequence[str], rng: np.random.Generator) -> dict:
    """One draw of ``names`` from their (proper) priors: uniform, or normal truncated to the bounds."""
    out = {}
    for name in names:
        p = priors[name]
        _check_proper(name, p)
        if p.gaussian:
            a, b = (p.lower - p.mean) / p.sd, (p.upper - p.mean) / p.sd
            out[name] = float(stats.truncnorm.rvs(a, b, loc=p.mean, scale=p.sd, random_state=rng))
        else:
            out[name] = float(rng.uniform(p.lower, p.upper))
    return out


@dataclass(frozen=True)
class GridPosterior2D(GridMarginals):
    """Posterior density on a regular (astro_norm, astro_gamma) grid (uniform priors).

    Attributes
    ----------
    norm, gamma
        Grid nodes.
    density
        ``(len(norm), len(gamma))`` density normalised by the trapezoidal rule.
    """

    _AXES = (("astro_norm", "norm"), ("astro_gamma", "gamma"))
    norm: np.ndarray
    gamma: np.ndarray
    density: np.ndarray


class DiffuseGrid:
    """Bin sums on a (astro_norm, astro_gamma) grid, computed once; posteriors of any counts.

    Parameters
    ----------
    analysis
        An analysis whose only free parameters are astro_norm and astro_gamma, both with
        uniform priors on finite ranges (the grid spans them).
    n_norm, n_gamma
        Grid nodes per axis.
    """

    def __init__(self, analysis: DiffuseAnalysis, n_norm: int = 81, n_gamma: int = 81) -> None:
        free = set(analysis.free_parameters)
        if free != set(SBC_PARAMETERS):
            raise ConfigError(
                f"the grid posterior needs exactly astro_norm and astro_gamma free (free: {sorted(free)}); "
                "fix the others (fixed={...}) or use method='nuts'"
            )
        for name in SBC_PARAMETERS:
            p = analysis.priors[name]
            _check_proper(name, p)
            if p.gaussian:
                raise ConfigError(f"the grid posterior needs a uniform prior on {name}, not {p.describe()}")
        pn, pg = analysis.priors["astro_norm"], analysis.priors["astro_gamma"]
        self.norm = np.linspace(pn.lower, pn.upper, int(n_norm))
        self.gamma = np.linspace(pg.lower, pg.upper, int(n_gamma))
        self.inputs = analysis.inputs
        base = analysis.full_params({})
        theta = {n: jnp.full(self.norm.size, base[n]) for n in PARAMETER_NAMES}
        theta["astro_norm"] = jnp.asarray(self.norm)
        sums = jax.jit(jax.vmap(_bin_sums_of, in_axes=(0, None)))
        # bins without MC are skipped by the likelihood: keep only the others
        self._keep = np.flatnonzero(np.asarray(self.inputs.has_mc))
        mus, s2s = [], []
        for g in self.gamma:
            theta["astro_gamma"] = jnp.full(self.norm.size, g)
            mu, s2 = sums(theta, self.inputs)
            mus.append(np.asarray(mu)[:, self._keep])
            s2s.append(np.asarray(s2)[:, self._keep])
        # (n_norm, n_gamma, n_bins with MC)
        self.mu = jnp.asarray(np.stack(mus, axis=1))
        self.s2 = jnp.asarray(np.stack(s2s, axis=1))
        self._loglike = _grid_loglike(self.inputs.likelihood)

    def posterior(self, counts: np.ndarray) -> GridPosterior2D:
        """Posterior of ``counts`` (per bin) on the grid."""
        k = jnp.asarray(np.asarray(counts, dtype=float)[self._keep])
        ll = np.asarray(self._loglike(k, self.mu, self.s2, jnp.ones(self._keep.size, dtype=bool)))
        dens = np.exp(ll - np.max(ll))
        norm = np.trapezoid(np.trapezoid(dens, self.gamma, axis=1), self.norm)
        return GridPosterior2D(self.norm, self.gamma, dens / norm)


@dataclass(frozen=True)
class DiffuseSBCResult:
    """Result of :func:`run_diffuse_sbc`.

    Attributes
    ----------
    names
        Parameters with rank statistics (astro_norm and astro_gamma first).
    truths, quantiles, ranks
        ``(n, len(names))``: drawn values, posterior CDF at the truth, ranks.
    n_draws
        Draws behind each rank (nominal for the grid).
    uniformity, coverage
        Chi-square rank-uniformity test and 68% / 90% central-interval coverage per parameter.
    method, likelihood
        ``"grid"`` or ``"nuts"``; ``"say"`` or ``"poisson"``.
    fixed
        Parameters held fixed.
    wall_s
        Wall time [s] (simulation and posteriors, compilation included).
    divergences
        NUTS divergent transitions per data set (empty for the grid).
    """

    names: tuple[str, ...]
    truths: np.ndarray
    quantiles: np.ndarray
    ranks: np.ndarray
    n_draws: int
    uniformity: dict[str, UniformityTest]
    coverage: dict[str, list[Coverage]]
    method: str
    likelihood: str
    fixed: dict[str, float]
    wall_s: float
    divergences: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def table(self) -> str:
        """Text table: chi-square, dof, p-value and 68% / 90% coverage with binomial errors."""
        lines = [
            f"{'parameter':<16} {'chi2':>7} {'dof':>4} {'p':>7}   {'68% cover':>9} {'+-':>6}   "
            f"{'90% cover':>9} {'+-':>6}"
        ]
        for n in self.names:
            u = self.uniformity[n]
            c68, c90 = self.coverage[n]
            lines.append(
                f"{n:<16} {u.chi2:7.2f} {u.dof:4d} {u.pvalue:7.3f}   {c68.fraction:9.3f} "
                f"{c68.binomial_error:6.3f}   {c90.fraction:9.3f} {c90.binomial_error:6.3f}"
            )
        return "\n".join(lines)


def _centre(p: Prior) -> float:
    """Start value: the prior mean (Gaussian, moved inside the bounds) or the middle of the range."""
    if p.gaussian:
        return float(min(max(p.mean, p.lower + 0.1 * p.sd), p.upper - 0.1 * p.sd))
    return 0.5 * (p.lower + p.upper)


def run_diffuse_sbc(
    analysis: DiffuseAnalysis,
    n_datasets: int,
    *,
    seed: int = 0,
    method: str = "grid",
    n_grid: tuple[int, int] = (81, 81),
    grid_draws: int = 1000,
    draws: int = 400,
    warmup: int = 400,
    thin: int = 2,
    dense_mass: bool = True,
    progress: bool | None = None,
) -> DiffuseSBCResult:
    """Simulation-based calibration of the diffuse posterior.

    Parameters
    ----------
    analysis
        The analysis: its MC, binning, likelihood, priors (proper for every free
        parameter) and fixed parameters define the model. Its observed counts are not used.
    n_datasets
        Number of simulated data sets.
    seed
        Seed of the prior draws, the simulated counts and the samplers.
    method
        ``"grid"`` (astro_norm and astro_gamma free, uniform priors, others fixed) or
        ``"nuts"`` (any free parameters).
    n_grid
        Grid nodes (astro_norm, astro_gamma) of the grid posterior.
    grid_draws
        Nominal number of draws of the grid ranks (rank = quantile x grid_draws).
    draws, warmup, thin
        NUTS settings; ranks use ``draws // thin`` draws.
    dense_mass
        Dense NUTS mass matrix.
    progress
        Progress bar (default: only on a terminal).
    """
    if method not in ("grid", "nuts"):
        raise ConfigError(f"method must be 'grid' or 'nuts', not {method!r}")
    if n_datasets < 1:
        raise ConfigError("n_datasets must be >= 1")
    free = analysis.free_parameters
    for name in SBC_PARAMETERS:
        if name not in free:
            raise ConfigError(f"SBC of {SBC_PARAMETERS} needs {name} free; it is fixed")
    for name in free:
        _check_proper(name, analysis.priors[name])
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    base = analysis.full_params({})
    names = SBC_PARAMETERS + tuple(n for n in free if n not in SBC_PARAMETERS)
    grid = DiffuseGrid(analysis, *n_grid) if method == "grid" else None
    sampler: RepeatedNUTS | None = None
    truths, quants, ranks, divs = [], [], [], []
    n_draws = grid_draws if method == "grid" else draws // thin
    with progress_bar(n_datasets, "diffuse SBC", enabled=progress, unit="data set") as bar:
        for k in range(n_datasets):
            truth = dict(base)
            truth.update(draw_from_prior(analysis.priors, free, rng))
            counts = simulate_counts(analysis.inputs, truth, rng)
            truths.append([truth[n] for n in names])
            if grid is not None:
                post = grid.posterior(counts)
                q = [post.cdf(n, truth[n]) for n in names]
                quants.append(q)
                ranks.append([x * n_draws for x in q])
            else:
                if sampler is None:
                    sampler = _nuts(analysis, warmup, draws, thin, dense_mass)
                inputs = replace(analysis.inputs, counts=jnp.asarray(counts))
                out = sampler.run(jax.random.PRNGKey(seed * 1_000_003 + k), inputs=inputs)
                r = [rank(truth[n], out.samples[n], rng) for n in names]
                ranks.append(r)
                quants.append([x / n_draws for x in r])
                divs.append(int(np.sum(out.diverging)))
            bar.update(1)
    t_a, q_a, r_a = np.asarray(truths), np.asarray(quants), np.asarray(ranks)
    return DiffuseSBCResult(
        names=names,
        truths=t_a,
        quantiles=q_a,
        ranks=r_a,
        n_draws=n_draws,
        uniformity={n: rank_uniformity(r_a[:, i], n_draws) for i, n in enumerate(names)},
        coverage={n: interval_coverage(t_a[:, i], q_a[:, i]) for i, n in enumerate(names)},
        method=method,
        likelihood=analysis.likelihood,
        fixed=dict(analysis.fixed),
        wall_s=time.perf_counter() - t0,
        divergences=np.asarray(divs, dtype=int),
    )


def _nuts(analysis: DiffuseAnalysis, warmup: int, draws: int, thin: int, dense_mass: bool) -> RepeatedNUTS:
    """One NUTS sampler (compiled once, data passed as a model argument)."""
    init = {n: _centre(analysis.priors[n]) for n in analysis.free_parameters}
    model = partial(diffuse, fixed=dict(analysis.fixed))
    return RepeatedNUTS(model, init, warmup=warmup, draws=draws, thin=thin, dense_mass=dense_mass)
