"""The frequentist adapter: pseudo-experiments, p-values, limits, sensitivities, flux points.

The engines here are analysis-independent; an analysis plugs in through

* a per-trial function ``trial_fn(key, *inputs) -> {"ts": ..., ...}`` (jit/vmap-able)
  for :func:`~bayesnu.frequentist.trials.run_trials`, from which
  :func:`~bayesnu.frequentist.trials.signal_sampler` builds the
  ``sampler(strength, n_trials, seed)`` used by sensitivities and Neyman limits;
* a 1-D profile of -2 log L for profile-likelihood limits;
* posterior samples for Bayesian limits;
* a per-bin -2 log L (JAX) for flux points
  (:class:`~bayesnu.frequentist.flux_points.FluxPointsProblem`).

See ``docs/frequentist.rst`` for every formula.
"""

from __future__ import annotations

from bayesnu.frequentist.conversion import FluxConversion
from bayesnu.frequentist.limits import (
    credible_interval,
    credible_upper_limit,
    delta_stat,
    neyman_upper_limit,
    profile_interval,
    profile_upper_limit,
)
from bayesnu.frequentist.passing import find_strength, fit_passing_curve, passing_fraction
from bayesnu.frequentist.pvalues import (
    empirical_pvalue,
    fit_chi2_tail,
    pvalue,
    pvalue_from_sigma,
    sigma_from_pvalue,
    ts_threshold,
    wilks_pvalue,
)
from bayesnu.frequentist.sensitivity import discovery_potential, sensitivity, sensitivity_curve, trial_setup
from bayesnu.frequentist.trials import TrialResults, run_trials, signal_sampler

__all__ = [
    "FluxConversion",
    "TrialResults",
    "credible_interval",
    "credible_upper_limit",
    "delta_stat",
    "discovery_potential",
    "empirical_pvalue",
    "find_strength",
    "fit_chi2_tail",
    "fit_passing_curve",
    "neyman_upper_limit",
    "passing_fraction",
    "profile_interval",
    "profile_upper_limit",
    "pvalue",
    "pvalue_from_sigma",
    "run_trials",
    "sensitivity",
    "sensitivity_curve",
    "sigma_from_pvalue",
    "signal_sampler",
    "trial_setup",
    "ts_threshold",
    "wilks_pvalue",
]
