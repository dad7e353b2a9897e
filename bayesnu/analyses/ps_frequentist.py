"""Frequentist products of the point-source analysis: trials, p-values, limits, sensitivity, flux points.

Thin wiring of :class:`~bayesnu.analyses.point_source.PointSourceAnalysis` to the
analysis-independent engines of :mod:`bayesnu.frequentist`, all driven by the same
likelihood (:mod:`bayesnu.likelihood.pointsource`) through the trial function
:func:`bayesnu.analyses.ps_trials.ps_trial`::

    bg = background_trials(ana, 10000, seed=1)            # scrambled RA
    p = pvalue(ana, fit.ts, bg)                           # empirical / tail fit / Wilks
    ul = upper_limit(ana, method="neyman", cl=0.9)        # ns, Phi0(E0), E0^2 Phi0
    sens = sensitivity(ana, bg, gamma=2.0)                # 90% over the median background TS
    curve = sensitivity_curve(ana, [-60, -30, 0, 30, 60], gamma=2.0, seed=1)  # versus declination
    table = flux_points(ana, [1e2, 1e3, 1e4, 1e5, 1e6])   # gammapy / GADF SED table
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table

from bayesnu.analyses.point_source import PointSourceAnalysis, Source
from bayesnu.analyses.ps_trials import (
    PSTrialInputs,
    build_trial_inputs,
    ps_trial,
    with_buffer_sigma,
    with_injection_capacity,
)
from bayesnu.errors import ConfigError
from bayesnu.flux import PowerLaw
from bayesnu.frequentist.conversion import FluxConversion
from bayesnu.frequentist.flux_points import FluxPointBin, FluxPointsProblem, estimate_flux_points
from bayesnu.frequentist.limits import credible_upper_limit, neyman_upper_limit, profile_upper_limit
from bayesnu.frequentist.pvalues import PValue
from bayesnu.frequentist.pvalues import pvalue as _pvalue
from bayesnu.frequentist.sensitivity import TrialSetup
from bayesnu.frequentist.sensitivity import discovery_potential as _discovery
from bayesnu.frequentist.sensitivity import sensitivity as _sensitivity
from bayesnu.frequentist.sensitivity import sensitivity_curve as _sensitivity_curve
from bayesnu.frequentist.trials import TrialResults, run_trials, signal_sampler
from bayesnu.irf.energy import build_signal_energy_pdf
from bayesnu.irf.injection import injection_capacity
from bayesnu.irf.yields import log_yield_vs_gamma
from bayesnu.likelihood.pointsource import PSInputs, log_lambda


def trial_inputs(ana: PointSourceAnalysis, *, inject: bool = True, n_inj_max: int = 256) -> PSTrialInputs:
    """Trial inputs of an analysis, cached (see :func:`bayesnu.analyses.ps_trials.build_trial_inputs`).

    The band and the injection tables are built once per analysis; other ``n_inj_max``
    values only resize the static buffers (:func:`~bayesnu.analyses.ps_trials.with_injection_capacity`).
    """
    cache = ana.__dict__.setdefault("_trial_inputs", {})
    if inject not in cache:
        cache[inject] = build_trial_inputs(
            ana.models,
            ana.source,
            inject=inject,
            n_inj_max=n_inj_max,
            ns_max=ana.ns_max,
            gamma_bounds=ana.gamma_bounds,
        )
    data = cache[inject]
    if inject and data.n_inj_max != int(n_inj_max):
        data = with_injection_capacity(data, n_inj_max)
    return data


#: Selection buffer of the trials' first pass: mean + this many sd of the events within
#: reach (0.13% of trials overflow and are rerun with the 7-sd buffer).
TIGHT_BUFFER_SIGMA = 3.0


def _with_retry(inputs: tuple[Any, ...]) -> dict[str, tuple[Any, ...]]:
    """``run_trials`` keywords: tight-buffer inputs, and the given (7-sd) ones for overflowing trials."""
    data, *rest = inputs
    return {"inputs": (with_buffer_sigma(data, TIGHT_BUFFER_SIGMA), *rest), "retry_inputs": inputs}


def default_batch_size(data: PSTrialInputs, max_elements: float = 2e6) -> int:
    """Trials per vmapped batch (and device): 4 to 512, fewer when a trial's working set is large.

    A trial works on its selection buffer: per event a row of the energy-ratio table
    and a few columns, so a batch holds about ``batch x buffer x (n_gamma + 8)``
    numbers; this keeps that near ``max_elements`` (cache-friendly; measured best on
    IC40, 128, and on 10 seasons, 8).
    """
    per_trial = int(data.buffer) * (int(data.band.events.energy_ratio.shape[-1]) + 8)
    size = 2 ** math.floor(math.log2(max(1.0, max_elements / max(per_trial, 1))))
    return int(min(512, max(4, size)))


def conversion(ana: PointSourceAnalysis, gamma: float) -> FluxConversion:
    """ns -> flux conversion at spectral index ``gamma`` (Phi0 at the analysis' E0)."""
    return FluxConversion(ns_per_norm=math.exp(ana.log_yield_total(gamma)), e0_gev=ana.e0_gev)


def _trial_fn(key: jax.Array, data: PSTrialInputs, ns_inj: jax.Array, gamma_inj: jax.Array) -> dict:
    return ps_trial(key, data, ns_inj, gamma_inj)


def background_trials(
    ana: PointSourceAnalysis,
    n_trials: int,
    *,
    seed: int = 0,
    batch_size: int | None = None,
    backend: str = "local",
    scheduler: Any = None,
    progress: bool | None = None,
) -> TrialResults:
    """Background pseudo-experiments (RA scrambled); columns ts, ns, gamma, converged, overflow.

    ``batch_size`` defaults to :func:`default_batch_size` (bounded by memory).
    """
    data = replace(trial_inputs(ana, inject=False), injection=None)
    batch_size = batch_size or default_batch_size(data)
    res = run_trials(
        _trial_fn,
        n_trials,
        seed=seed,
        **_with_retry((data, jnp.asarray(0.0), jnp.asarray(2.0))),
        batch_size=batch_size,
        backend=backend,
        scheduler=scheduler,
        progress=progress,
        desc="background trials",
    )
    _check_overflow(res)
    return res


def signal_trials(
    ana: PointSourceAnalysis,
    n_trials: int,
    *,
    ns: float | None = None,
    flux_norm: float | None = None,
    gamma: float = 2.0,
    seed: int = 0,
    batch_size: int | None = None,
    backend: str = "local",
    scheduler: Any = None,
    progress: bool | None = None,
    n_inj_max: int | None = None,
) -> TrialResults:
    """Signal-injection pseudo-experiments: scrambled data plus signal drawn through the response.

    Give the mean injected signal either as ``ns`` (events, all seasons) or as
    ``flux_norm`` (Phi0 at E0 [GeV^-1 cm^-2 s^-1], converted with the injector's yield).
    ``n_inj_max`` (static number of injected events per trial) defaults to the Poisson
    mean plus seven standard deviations (:func:`~bayesnu.irf.injection.injection_capacity`);
    an overflow raises.
    """
    if (ns is None) == (flux_norm is None):
        raise ConfigError("give exactly one of ns= or flux_norm=")
    if flux_norm is not None:
        from bayesnu.irf.injection import expected_counts

        tables = trial_inputs(ana, inject=True).injection
        ns = float(jnp.sum(expected_counts(tables, PowerLaw(flux_norm, gamma, e0_gev=ana.e0_gev))))
    data = trial_inputs(ana, inject=True, n_inj_max=n_inj_max or injection_capacity(float(ns)))
    batch_size = batch_size or default_batch_size(data)
    res = run_trials(
        _trial_fn,
        n_trials,
        seed=seed,
        **_with_retry((data, jnp.asarray(float(ns)), jnp.asarray(float(gamma)))),
        batch_size=batch_size,
        backend=backend,
        scheduler=scheduler,
        progress=progress,
        desc="signal trials",
    )
    _check_overflow(res)
    res.meta.update({"mean_ns_injected": float(ns), "gamma_injected": float(gamma)})
    return res


def _check_overflow(res: TrialResults) -> None:
    n_over = int(np.count_nonzero(res.columns["overflow"]))
    if n_over:
        raise ConfigError(
            f"{n_over} of {res.n_trials} trials overflowed their static buffers (selected events or injected "
            "signal); raise n_inj_max or report this: results would be biased"
        )


def pvalue(ana: PointSourceAnalysis, ts: float, background: TrialResults | np.ndarray) -> PValue:
    """p-value of an observed TS from background trials (empirical, tail fit beyond)."""
    bg = background.columns["ts"] if isinstance(background, TrialResults) else np.asarray(background)
    return _pvalue(ts, background=bg)


def _sampler(ana: PointSourceAnalysis, gamma: float, **run: Any):
    data = trial_inputs(ana, inject=True)
    retry = _with_retry((data, jnp.asarray(0.0), jnp.asarray(float(gamma))))
    return signal_sampler(
        _trial_fn, retry["inputs"], retry_inputs=retry["retry_inputs"], strength_index=1, column="ts", **run
    )


def sensitivity(
    ana: PointSourceAnalysis,
    background: TrialResults | np.ndarray,
    *,
    gamma: float = 2.0,
    seed: int = 0,
    beta: float = 0.9,
    **search: Any,
):
    """Sensitivity: the signal for which ``beta`` of signal trials exceed the median background TS.

    Returned in ns and in flux (Phi0 at E0, E0^2 Phi0) for the injected index ``gamma``.
    ``search`` goes to :func:`bayesnu.frequentist.passing.find_strength` (e.g. ``n_trials``).
    """
    bg = background.columns["ts"] if isinstance(background, TrialResults) else np.asarray(background)
    search.setdefault("strength_init", 5.0)
    return _sensitivity(
        _sampler(ana, gamma), bg, seed=seed, beta=beta, conversion=conversion(ana, gamma), **search
    )


def discovery_potential(
    ana: PointSourceAnalysis,
    background: TrialResults | np.ndarray,
    *,
    gamma: float = 2.0,
    sigma: float = 5.0,
    seed: int = 0,
    **search: Any,
):
    """Discovery potential: the signal for which 50% of signal trials exceed the ``sigma`` threshold."""
    bg = background.columns["ts"] if isinstance(background, TrialResults) else np.asarray(background)
    search.setdefault("strength_init", 10.0)
    return _discovery(
        _sampler(ana, gamma), bg, seed=seed, sigma=sigma, conversion=conversion(ana, gamma), **search
    )


def sensitivity_curve(
    ana: PointSourceAnalysis,
    dec_deg: Sequence[float],
    *,
    gamma: float = 2.0,
    n_background: int = 10000,
    n_signal: int = 500,
    discovery_sigmas: Sequence[float] = (3.0, 5.0),
    ra_deg: float | None = None,
    seed: int = 0,
    strength_init: float = 5.0,
    batch_size: int | None = None,
    backend: str = "local",
    scheduler: Any = None,
    progress: bool | None = None,
    **search: Any,
) -> Table:
    r"""Sensitivity and discovery potentials of the analysis versus source declination.

    At every declination the analysis is moved there with
    :meth:`~bayesnu.analyses.point_source.PointSourceAnalysis.with_source` (the season
    models, and so the data, response and background PDFs, are shared; only the event
    selection and the yields change), ``n_background`` scrambled-RA background trials give
    the thresholds, and :func:`bayesnu.frequentist.passing.find_strength` finds the
    signal strengths, as in :func:`sensitivity` and :func:`discovery_potential`. The
    background trials are the signal-injection trials with no signal injected (scrambled
    right ascensions, the same statistics as :func:`background_trials`, but the same
    compiled kernel as the signal trials: one compilation per declination). The loop
    is :func:`bayesnu.frequentist.sensitivity.sensitivity_curve`, with its seed scheme:
    declination ``i`` uses ``SeedSequence([seed, i, 0])`` for its background trials,
    ``[seed, i, 1]`` for the sensitivity and ``[seed, i, 2 + j]`` for the ``j``-th
    discovery potential: the same ``seed`` and grid give the same table, and row ``i``
    depends only on its declination, its position ``i`` and the trial settings (not on
    the other declinations).

    Parameters
    ----------
    ana
        The analysis (its seasons, response settings, selection and fit ranges are used).
    dec_deg
        Source declinations [deg], each in [-90, 90].
    gamma
        Spectral index of the injected signal and of the flux conversion.
    n_background
        Background trials per declination.
    n_signal
        Signal trials per refined injection point (``n_trials`` of ``find_strength``).
    discovery_sigmas
        Significances of the discovery potentials (empty for none).
    ra_deg
        Right ascension of the test sources [deg] (default: the analysis' source's; with
        scrambled right ascensions it does not matter for a time-integrated analysis).
    seed
        Master seed (see above).
    strength_init
        First injected ns of every search (brackets are then doubled or halved).
    batch_size, backend, scheduler
        Trial batching and backend, as in :func:`background_trials`.
    progress
        Progress bar over declinations.
    **search
        Passed to :func:`bayesnu.frequentist.passing.find_strength` (``n_points``,
        ``model``, ``n_boot``).

    Returns
    -------
    astropy.table.Table
        One row per declination: ``dec_deg`` [deg], ``sin_dec``, ``ts_median``;
        ``sens_ns``, ``sens_ns_err`` (bootstrap standard error), ``sens_phi0`` and
        ``sens_phi0_err`` (flux normalisation :math:`\Phi_0` at E0, GeV-1 cm-2 s-1),
        ``sens_e2dnde`` and ``sens_e2dnde_err`` (:math:`E_0^2\Phi_0`, GeV cm-2 s-1); the
        same with the prefix ``disc{n}sigma_`` for every discovery potential, plus its
        threshold ``disc{n}sigma_ts`` and how it was found (``..._ts_method``); and
        ``ns_per_phi0`` (the detector yield, events per GeV-1 cm-2 s-1). ``meta`` holds
        ``gamma``, ``e0_gev``, ``seasons``, ``ra_deg``, ``seed``, ``n_background`` and
        ``n_signal``.
    """
    decs = [float(d) for d in dec_deg]
    if not decs:
        raise ConfigError("dec_deg is empty: give at least one declination [deg]")
    ra = ana.source.ra_deg if ra_deg is None else float(ra_deg)
    for d in decs:
        Source(ra, d)  # the same checks (finite, inside the sky) as any source, before any trial runs
    run = {"backend": backend, "scheduler": scheduler}
    conversions: list[FluxConversion] = []

    def factory(dec: float) -> TrialSetup:
        at = ana.with_source(Source(ra, dec, f"{ana.source.name or 'source'} at dec {dec:g}"))
        conv = conversion(at, gamma)
        conversions.append(conv)
        data = trial_inputs(at, inject=True)
        # One static batch size for every call (the search's bracketing calls run
        # n_signal // 4 trials, at least 50) and background trials that are the signal
        # trials with nothing injected: one compiled kernel per declination.
        sig_batch = batch_size or min(default_batch_size(data), max(n_signal // 4, 50))
        sampler = _sampler(at, gamma, batch_size=sig_batch, **run)

        def background(n: int, seed: int) -> np.ndarray:
            inputs = _with_retry((data, jnp.asarray(0.0), jnp.asarray(float(gamma))))
            res = run_trials(_trial_fn, n, seed=seed, **inputs, batch_size=sig_batch, progress=False, **run)
            _check_overflow(res)
            return res.columns["ts"]

        return TrialSetup(background=background, signal=sampler, conversion=conv, strength_init=strength_init)

    table = _sensitivity_curve(
        factory,
        decs,
        seed=seed,
        n_background=n_background,
        discovery_sigmas=discovery_sigmas,
        progress=progress,
        n_trials=n_signal,
        **search,
    )
    table.add_column(np.sin(np.radians(np.asarray(decs))), name="sin_dec", index=1)
    prefixes = ["sens_"] + [f"disc{s:g}sigma_" for s in discovery_sigmas]
    for p in prefixes:
        err = np.asarray(table[p + "ns_err"], dtype=float)
        phi_err = np.array([float(c.norm(e)) for c, e in zip(conversions, err)])
        table.add_column(phi_err, name=p + "phi0_err", index=table.colnames.index(p + "phi0") + 1)
        table[p + "phi0_err"].unit = "GeV-1 cm-2 s-1"
        table.add_column(
            phi_err * ana.e0_gev**2, name=p + "e2dnde_err", index=table.colnames.index(p + "e2dnde") + 1
        )
        table[p + "e2dnde_err"].unit = "GeV cm-2 s-1"
    table["ns_per_phi0"] = [float(c.ns_per_norm) for c in conversions]
    table["ns_per_phi0"].unit = "GeV cm2 s"
    table.meta.update(
        {
            "analysis": "point source",
            "gamma": float(gamma),
            "e0_gev": float(ana.e0_gev),
            "seasons": ",".join(ana.season_names),
            "ra_deg": ra,
            "n_signal": int(n_signal),
        }
    )
    return table


def upper_limit(
    ana: PointSourceAnalysis,
    *,
    method: str = "wilks",
    cl: float = 0.9,
    gamma: float | None = None,
    seed: int = 0,
    posterior: Any = None,
    **kwargs: Any,
):
    """Upper limit on the signal, in ns and in flux (Phi0 at E0 and E0^2 Phi0).

    Parameters
    ----------
    method
        ``"wilks"``: profile likelihood in ns (gamma profiled, or fixed at ``gamma``),
        one-sided; ``"neyman"``: from signal trials at spectral index ``gamma``
        (default 2); ``"bayes"``: the ``cl`` quantile of the posterior of ns
        (``posterior``: an ArviZ DataTree; sampled with the analysis' priors if absent).
    cl
        Confidence / credibility level.
    gamma
        Spectral index for the flux conversion and the Neyman injection.
    """
    fit = ana.fit(gamma_fixed=gamma)
    g = fit.gamma if gamma is None else gamma
    conv = conversion(ana, g if g is not None else 2.0)
    if method == "wilks":

        def minus_two_log_l(ns: float) -> float:
            prof = ana.profile("ns", [ns]) if gamma is None else None
            if prof is not None:
                return float(-2.0 * prof["log_lambda"][0])
            return float(-2.0 * ana.log_lambda(ns, gamma))

        return profile_upper_limit(
            minus_two_log_l, cl, best_fit=fit.ns, scale=max(1.0, fit.ns), conversion=conv
        )
    if method == "neyman":
        gi = 2.0 if gamma is None else gamma
        conv = conversion(ana, gi)
        kwargs.setdefault("strength_init", max(3.0, fit.ns))
        return neyman_upper_limit(
            fit.ts, cl=cl, sampler=_sampler(ana, gi), seed=seed, conversion=conv, **kwargs
        )
    if method == "bayes":
        post = posterior if posterior is not None else ana.sample(seed=seed, **kwargs)
        ns = post["posterior"]["ns"].values.ravel()
        flux = post["posterior"]["flux_norm"].values.ravel()
        lim = credible_upper_limit(ns, cl)
        phi = float(np.quantile(flux, cl))
        return {
            "upper": lim.upper,
            "method": "bayes",
            "cl": cl,
            "upper_phi0_per_gev_cm2_s": phi,
            "upper_e2dnde_gev_per_cm2_s": phi * ana.e0_gev**2,
        }
    raise ConfigError(f"unknown upper-limit method {method!r}; choose wilks, neyman or bayes")


def _bin_inputs(ana: PointSourceAnalysis, e_lo: float, e_hi: float, gamma_ref: float) -> PSInputs:
    """The analysis inputs with the signal restricted to true energies in [e_lo, e_hi] GeV."""
    inp = ana.inputs
    ev = inp.events
    valid = np.asarray(ev.valid)
    season = np.asarray(ev.season)
    er = np.zeros_like(np.asarray(ev.energy_ratio))
    log_yield = []
    st = ana.settings
    for s, m in enumerate(ana.models):
        sig = build_signal_energy_pdf(
            m.season.effective_area, m.season.smearing, ana.source.dec_rad, m.log10_e_edges,
            np.asarray(st.gamma_grid), e0_gev=st.e0_gev, e_cut_gev=st.e_cut_gev, e_range_gev=(e_lo, e_hi),
        )  # fmt: skip
        rows = valid & (season == s)
        dec = np.asarray(ev.dec)[rows]
        er[rows] = m.energy_ratio(sig, ana.selected_log10_energy[s], np.sin(dec))
        log_yield.append(
            log_yield_vs_gamma(
                m.season.effective_area,
                m.livetime_s,
                ana.source.dec_rad,
                np.asarray(st.gamma_grid),
                eval_gamma=m.yield_gamma_grid,
                dec_axis=st.dec_axis,
                e0_gev=st.e0_gev,
                e_cut_gev=st.e_cut_gev,
                e_range_gev=(e_lo, e_hi),
            )
        )
    return replace(
        inp, events=replace(ev, energy_ratio=jnp.asarray(er)), log_yield=jnp.asarray(np.stack(log_yield))
    )


def _fp_stat(norm: jax.Array, nuisance: jax.Array, data: tuple[PSInputs, jax.Array, jax.Array]) -> jax.Array:
    inputs, ns_ref, gamma_ref = data
    return -2.0 * log_lambda({"ns": norm * ns_ref, "gamma": gamma_ref}, inputs)


def _fp_npred_signal(
    norm: jax.Array, nuisance: jax.Array, data: tuple[PSInputs, jax.Array, jax.Array]
) -> jax.Array:
    return norm * data[1]


def _fp_npred(norm: jax.Array, nuisance: jax.Array, data: tuple[PSInputs, jax.Array, jax.Array]) -> jax.Array:
    # Unbinned likelihood with the background profiled: the expected total is the observed total.
    return jnp.sum(data[0].n_total) + 0.0 * norm


def flux_points(
    ana: PointSourceAnalysis,
    energy_edges_gev: Sequence[float],
    *,
    gamma_ref: float = 2.0,
    flux_ref: float | None = None,
    n_sigma_ul: float = 2.0,
    progress: bool | None = None,
) -> Table:
    """Flux points in true neutrino energy: per bin, the norm of the reference power law restricted to it.

    Parameters
    ----------
    energy_edges_gev
        True-energy bin edges [GeV].
    gamma_ref
        Spectral index of the reference model inside every bin (fixed).
    flux_ref
        Phi0 of the reference model at E0 [GeV^-1 cm^-2 s^-1]; default: the ML flux
        at ``gamma_ref`` (or that of one signal event if the fit gives ns = 0).
    n_sigma_ul
        Upper limits at Delta(-2 ln L) = n_sigma_ul^2 (gammapy's convention).

    Returns
    -------
    astropy.table.Table
        gammapy / GADF likelihood SED table (see :mod:`bayesnu.frequentist.flux_points`).
    """
    edges = np.asarray(energy_edges_gev, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0) or edges[0] <= 0:
        raise ConfigError("energy_edges_gev must be at least two increasing positive energies [GeV]")
    if flux_ref is None:
        fit = ana.fit(gamma_fixed=gamma_ref)
        flux_ref = ana.flux_norm(max(fit.ns, 1.0), gamma_ref)
    ref = PowerLaw(flux_ref, gamma_ref, e0_gev=ana.e0_gev, e_cut_gev=ana.settings.e_cut_gev)
    bins = []
    for lo, hi in itertools.pairwise(edges):
        inp = _bin_inputs(ana, float(lo), float(hi), gamma_ref)
        from bayesnu.likelihood.pointsource import log_yield_total

        ns_ref = flux_ref * float(jnp.exp(log_yield_total(inp, jnp.asarray(gamma_ref))))
        # Every event enters each bin's (unbinned) likelihood: counts = the total event count.
        bins.append(
            FluxPointBin(
                float(lo),
                float(hi),
                (inp, jnp.asarray(ns_ref), jnp.asarray(gamma_ref)),
                counts=float(np.sum(np.asarray(inp.n_total))),
            )
        )
    problem = FluxPointsProblem(
        stat=_fp_stat, bins=bins, reference=ref, npred=_fp_npred, npred_signal=_fp_npred_signal
    )
    table = estimate_flux_points(
        problem, n_sigma_ul=n_sigma_ul, norm_bounds=(0.0, math.inf), progress=progress
    )
    table.meta.update({"source": ana.source.name, "ra_deg": ana.source.ra_deg, "dec_deg": ana.source.dec_deg,
                       "seasons": ",".join(ana.season_names), "gamma_ref": gamma_ref,
                       "energy": "true neutrino energy"})  # fmt: skip
    return table
