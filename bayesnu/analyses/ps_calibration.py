"""Calibration checks of the point-source posterior: brute-force grid posterior and SBC.

* :func:`grid_posterior` evaluates prior x likelihood on a dense (ns, gamma) grid
  (uniform priors), the reference the NUTS posterior is compared with.
* :func:`run_sbc` runs simulation-based calibration: (ns, gamma) drawn from the prior,
  pseudo-data from :class:`~bayesnu.analyses.ps_simulate.ModelSampler`, the posterior
  by NUTS (one compiled sampler reused for every data set) or on the grid, and the
  rank statistics / interval coverage of :mod:`bayesnu.inference.sbc`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from bayesnu.analyses.point_source import PointSourceAnalysis, PSPriors, Source, point_source_model
from bayesnu.analyses.priors import Prior
from bayesnu.analyses.ps_inputs import SeasonModel
from bayesnu.analyses.ps_simulate import ModelSampler
from bayesnu.inference.repeated_nuts import RepeatedNUTS
from bayesnu.inference.sbc import (
    Coverage,
    GridMarginals,
    UniformityTest,
    interval_coverage,
    rank,
    rank_uniformity,
)
from bayesnu.likelihood.pointsource import PSInputs, log_lambda


@dataclass(frozen=True)
class GridPosterior(GridMarginals):
    """Posterior density on a regular (ns, gamma) grid (uniform priors).

    Attributes
    ----------
    ns, gamma
        Grid nodes.
    density
        ``(len(ns), len(gamma))`` normalised density (trapezoidal rule).
    """

    _AXES = (("ns", "ns"), ("gamma", "gamma"))
    ns: np.ndarray
    gamma: np.ndarray
    density: np.ndarray


@partial(jax.jit, static_argnames=())
def _loglike_grid(inputs: PSInputs, ns: jax.Array, gamma: jax.Array) -> jax.Array:
    f = jax.vmap(jax.vmap(lambda n, g: log_lambda({"ns": n, "gamma": g}, inputs), (None, 0)), (0, None))
    return f(ns, gamma)


def grid_posterior(
    inputs: PSInputs,
    ns_range: tuple[float, float],
    gamma_range: tuple[float, float],
    n_ns: int = 241,
    n_gamma: int = 151,
) -> GridPosterior:
    """Posterior with uniform priors on ``ns_range`` x ``gamma_range`` on a dense grid."""
    ns = np.linspace(*ns_range, n_ns)
    gamma = np.linspace(*gamma_range, n_gamma)
    ll = np.asarray(_loglike_grid(inputs, jnp.asarray(ns), jnp.asarray(gamma)))
    dens = np.exp(ll - ll.max())
    norm = np.trapezoid(np.trapezoid(dens, gamma, axis=1), ns)
    return GridPosterior(ns=ns, gamma=gamma, density=dens / norm)


@dataclass(frozen=True)
class SBCResult:
    """Result of :func:`run_sbc`.

    Attributes
    ----------
    truths
        ``(n, 2)`` drawn (ns, gamma).
    quantiles
        ``(n, 2)`` posterior CDF at the truth (rank / n_draws).
    ranks
        ``(n, 2)`` ranks (NUTS) or ``quantile * n_draws`` (grid).
    n_draws
        Draws per posterior used for the ranks.
    uniformity
        Chi-square rank-uniformity test per parameter.
    coverage
        68% / 90% central-interval coverage per parameter.
    """

    truths: np.ndarray
    quantiles: np.ndarray
    ranks: np.ndarray
    n_draws: int
    uniformity: dict[str, UniformityTest]
    coverage: dict[str, list[Coverage]]


def run_sbc(
    models: Sequence[SeasonModel],
    source: Source,
    n_datasets: int,
    *,
    seed: int = 0,
    ns_prior: tuple[float, float] = (0.0, 40.0),
    gamma_prior: tuple[float, float] = (1.0, 4.0),
    method: str = "nuts",
    draws: int = 400,
    warmup: int = 400,
    thin: int = 1,
    pad_to: int = 2048,
    progress: bool | None = None,
) -> SBCResult:
    """Simulation-based calibration of the point-source posterior for one source.

    Parameters
    ----------
    models
        Season models (one season keeps the check focused; several work too).
    source
        Source position.
    n_datasets
        Number of simulated data sets.
    seed
        Seed of the prior draws, pseudo-data and samplers.
    ns_prior, gamma_prior
        Uniform prior ranges (data are simulated from them).
    method
        ``"nuts"`` (one chain per data set, a single compiled sampler) or ``"grid"``.
    draws, warmup, thin
        NUTS settings (ranks use ``draws // thin`` draws).
    pad_to
        Static event-array length (avoids recompilation between data sets).
    progress
        Progress bar (default: only on a terminal).
    """
    rng = np.random.default_rng(seed)
    samplers = [ModelSampler(m, source.ra_rad, source.dec_rad) for m in models]
    priors = PSPriors(gamma=Prior("uniform", low=gamma_prior[0], high=gamma_prior[1]),
                      ns=Prior("uniform", low=ns_prior[0], high=ns_prior[1]))  # fmt: skip
    sampler: RepeatedNUTS | None = None
    truths, quants, ranks = [], [], []
    n_draws = draws // thin
    it = range(n_datasets)
    bar = tqdm(it, desc="SBC", disable=not progress if progress is not None else None)
    for k in bar:
        ns_t = rng.uniform(*ns_prior)
        g_t = rng.uniform(*gamma_prior)
        events = []
        for s in samplers:
            # Each season gets its yield share of the signal at the true gamma.
            events.append(s.sample(rng, ns_t * _share(models, s.model, source, g_t), g_t))
        ana = PointSourceAnalysis(list(models), source, events=events, pad_to=pad_to,
                                  gamma_bounds=gamma_prior, priors=priors)  # fmt: skip
        truths.append((ns_t, g_t))
        if method == "grid":
            gp = grid_posterior(ana.inputs, ns_prior, gamma_prior)
            q = (gp.cdf("ns", ns_t), gp.cdf("gamma", g_t))
            quants.append(q)
            ranks.append((q[0] * n_draws, q[1] * n_draws))
            continue
        if sampler is None:
            model = partial(point_source_model, priors=priors, e0_gev=ana.e0_gev,
                            season_names=ana.season_names, yield_grid=None)  # fmt: skip
            init = {"ns": 0.5 * sum(ns_prior), "gamma": 0.5 * sum(gamma_prior)}
            sampler = RepeatedNUTS(model, init, warmup=warmup, draws=draws, thin=thin)
        s = sampler.run(jax.random.PRNGKey(seed * 100003 + k), inputs=ana.inputs).samples
        r = (rank(ns_t, np.asarray(s["ns"]), rng), rank(g_t, np.asarray(s["gamma"]), rng))
        ranks.append(r)
        quants.append((r[0] / n_draws, r[1] / n_draws))
    truths_a, quants_a, ranks_a = np.asarray(truths), np.asarray(quants), np.asarray(ranks)
    names = ("ns", "gamma")
    return SBCResult(
        truths=truths_a,
        quantiles=quants_a,
        ranks=ranks_a,
        n_draws=n_draws,
        uniformity={n: rank_uniformity(ranks_a[:, i], n_draws) for i, n in enumerate(names)},
        coverage={n: interval_coverage(truths_a[:, i], quants_a[:, i]) for i, n in enumerate(names)},
    )


def _share(models: Sequence[SeasonModel], model: SeasonModel, source: Source, gamma: float) -> float:
    """Yield share of one season at ``gamma`` (1 for a single season)."""
    if len(models) == 1:
        return 1.0
    from bayesnu.irf.interp import hermite_uniform

    g = model.yield_gamma_grid
    ly = np.array(
        [float(hermite_uniform(m.log_yield(source.dec_rad), g[0], g[1] - g[0], gamma)) for m in models]
    )
    w = np.exp(ly - ly.max())
    return float(w[list(models).index(model)] / w.sum())
