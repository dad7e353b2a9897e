r"""Sensitivity and discovery potential from background and signal pseudo-experiments.

* **Sensitivity** (IceCube convention): the signal strength for which a fraction
  :math:`\beta = 0.9` of signal trials have :math:`TS >` the median background TS.
* **Discovery potential** at :math:`n\sigma`: the strength for which :math:`\beta = 0.5`
  of signal trials have :math:`TS >` the TS whose background p-value is the one-sided
  :math:`n\sigma` p-value (:math:`1.35\times10^{-3}` for 3 sigma, :math:`2.87\times10^{-7}`
  for 5 sigma). That threshold is the empirical quantile of the background trials when
  they have statistics there, otherwise the fitted
  :math:`(1-\eta)\delta(0)+\eta\chi^2_k` tail (:func:`bayesnu.frequentist.pvalues.ts_threshold`).

Both use :func:`bayesnu.frequentist.passing.find_strength` (adaptive injection points,
fitted passing-fraction curve, bootstrap uncertainty; reproducible from ``seed``).
:func:`sensitivity_curve` repeats them over declinations from a per-declination
factory, for the usual sensitivity-versus-declination plot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table

from bayesnu.errors import ConfigError
from bayesnu.frequentist.conversion import FluxConversion
from bayesnu.frequentist.passing import SignalSampler, StrengthResult, find_strength
from bayesnu.frequentist.pvalues import Chi2TailFit, ts_threshold
from bayesnu.parallel import progress_bar

__all__ = [
    "SensitivityResult",
    "TrialSetup",
    "discovery_potential",
    "sensitivity",
    "sensitivity_curve",
    "trial_setup",
]


@dataclass(frozen=True)
class SensitivityResult:
    """A sensitivity or discovery potential.

    Attributes
    ----------
    kind
        ``"sensitivity"`` or ``"discovery"``.
    strength, strength_err
        The strength (ns) and its bootstrap standard error.
    beta
        Required passing fraction (0.9 / 0.5).
    threshold
        TS threshold (trials pass if ``TS > threshold``).
    threshold_method
        ``"median"`` (sensitivity), ``"empirical"`` or ``"tail_fit"`` (discovery).
    sigma
        Significance of a discovery potential (NaN for a sensitivity).
    n_background
        Number of background trials used for the threshold.
    search
        The full :class:`~bayesnu.frequentist.passing.StrengthResult` (curve, points).
    flux
        Flux columns of ``strength`` when a conversion was given.
    """

    kind: str
    strength: float
    strength_err: float
    beta: float
    threshold: float
    threshold_method: str
    sigma: float
    n_background: int
    search: StrengthResult = field(repr=False)
    flux: dict[str, Any] = field(default_factory=dict)


def _background(background_ts: np.ndarray) -> np.ndarray:
    bg = np.asarray(background_ts, dtype=float).ravel()
    if bg.size < 10:
        raise ConfigError(f"need at least 10 background trials, got {bg.size}")
    if not np.all(np.isfinite(bg)):
        raise ConfigError("the background TS sample has non-finite values; drop failed trials first")
    return bg


def sensitivity(
    sampler: SignalSampler,
    background_ts: np.ndarray,
    *,
    seed: int,
    beta: float = 0.9,
    conversion: FluxConversion | None = None,
    **search: Any,
) -> SensitivityResult:
    """Strength for which a fraction ``beta`` of signal trials exceed the median background TS.

    Parameters
    ----------
    sampler
        ``sampler(strength, n_trials, seed) -> TS array`` of signal trials (see
        :func:`bayesnu.frequentist.trials.signal_sampler`).
    background_ts
        Background-trial TS values.
    seed
        Seed of the search (same seed, same result).
    beta
        Passing fraction (0.9 by convention).
    conversion
        Optional ns -> flux conversion.
    **search
        Passed to :func:`~bayesnu.frequentist.passing.find_strength` (``n_trials``,
        ``strength_init``, ``n_points``, ``model``, ``n_boot``, ``progress``).
    """
    bg = _background(background_ts)
    thr = float(np.median(bg))
    res = find_strength(sampler, thr, beta, seed=seed, **search)
    return _result("sensitivity", res, "median", float("nan"), bg.size, conversion)


def discovery_potential(
    sampler: SignalSampler,
    background_ts: np.ndarray,
    *,
    seed: int,
    sigma: float = 5.0,
    beta: float = 0.5,
    min_above: int = 20,
    tail: Chi2TailFit | None = None,
    conversion: FluxConversion | None = None,
    **search: Any,
) -> SensitivityResult:
    """Strength for which a fraction ``beta`` of signal trials exceed the ``sigma`` threshold.

    The threshold is the TS with background p-value ``norm.sf(sigma)``: empirical when at
    least ``min_above`` background trials are expected above it, else from the fitted
    chi2-mixture tail (``tail``, or the default fit of ``background_ts``). Other
    parameters as in :func:`sensitivity`.
    """
    bg = _background(background_ts)
    thr, how = ts_threshold(bg, sigma=sigma, min_above=min_above, tail=tail)
    res = find_strength(sampler, thr, beta, seed=seed, **search)
    return _result("discovery", res, how, float(sigma), bg.size, conversion)


def _result(
    kind: str,
    res: StrengthResult,
    how: str,
    sigma: float,
    n_background: int,
    conversion: FluxConversion | None,
) -> SensitivityResult:
    return SensitivityResult(
        kind=kind,
        strength=res.strength,
        strength_err=res.strength_err,
        beta=res.beta,
        threshold=res.threshold,
        threshold_method=how,
        sigma=sigma,
        n_background=n_background,
        search=res,
        flux=conversion.columns(res.strength) if conversion is not None else {},
    )


@dataclass(frozen=True)
class TrialSetup:
    """Everything :func:`sensitivity_curve` needs at one declination.

    Parameters
    ----------
    background
        ``background(n_trials, seed) -> TS array`` of background trials.
    signal
        ``signal(strength, n_trials, seed) -> TS array`` of signal trials.
    conversion
        Optional ns -> flux conversion at this declination.
    strength_init
        A guess of the sensitivity (in ns) to start the search from.
    """

    background: Callable[[int, int], np.ndarray]
    signal: SignalSampler
    conversion: FluxConversion | None = None
    strength_init: float = 1.0


def trial_setup(
    trial_fn: Callable[..., Any],
    inputs: Sequence[Any],
    *,
    strength_index: int = 0,
    column: str = "ts",
    conversion: FluxConversion | None = None,
    strength_init: float = 1.0,
    **run: Any,
) -> TrialSetup:
    """A :class:`TrialSetup` from one trial function whose ``inputs[strength_index]`` is
    the injected strength: background trials are its trials at strength 0.

    ``run`` goes to :func:`~bayesnu.frequentist.trials.run_trials` (``batch_size``,
    ``backend``, ``scheduler``, ``n_workers``).
    """
    from bayesnu.frequentist.trials import signal_sampler

    signal = signal_sampler(trial_fn, inputs, strength_index=strength_index, column=column, **run)
    return TrialSetup(
        background=lambda n, seed: signal(0.0, n, seed),
        signal=signal,
        conversion=conversion,
        strength_init=strength_init,
    )


def _seed(seed: int, *path: int) -> int:
    return int(np.random.SeedSequence([seed, *path]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def sensitivity_curve(
    factory: Callable[[float], TrialSetup],
    declinations_deg: Sequence[float],
    *,
    seed: int,
    n_background: int = 10000,
    discovery_sigmas: Sequence[float] = (3.0, 5.0),
    sensitivity_beta: float = 0.9,
    discovery_beta: float = 0.5,
    progress: bool | None = None,
    **search: Any,
) -> Table:
    """Sensitivity and discovery potentials over a grid of declinations.

    Parameters
    ----------
    factory
        ``factory(dec_deg) -> TrialSetup``: the trial functions (and flux conversion)
        of a source at that declination. The analysis supplies it.
    declinations_deg
        Source declinations [deg].
    seed
        Master seed; declination ``i`` and quantity ``j`` use ``SeedSequence([seed, i, j])``.
    n_background
        Background trials per declination.
    discovery_sigmas
        Significances of the discovery potentials (empty for none).
    sensitivity_beta, discovery_beta
        Passing fractions.
    progress
        Progress bar over declinations.
    **search
        Passed to :func:`~bayesnu.frequentist.passing.find_strength`.

    Returns
    -------
    astropy.table.Table
        One row per declination: ``dec_deg``, ``ts_median``, ``sens_ns``,
        ``sens_ns_err`` and, with a conversion, ``sens_phi0`` [GeV-1 cm-2 s-1] and
        ``sens_e2dnde`` [GeV cm-2 s-1] (at the conversion's E0); the same with prefix
        ``disc{n}sigma_`` plus the threshold ``disc{n}sigma_ts`` and how it was found.
    """
    decs = [float(d) for d in declinations_deg]
    rows: list[dict[str, Any]] = []
    e0_gev: float | None = None
    with progress_bar(len(decs), "sensitivity curve", enabled=progress, unit="dec") as bar:
        for i, dec in enumerate(decs):
            setup = factory(dec)
            bg = np.asarray(setup.background(int(n_background), _seed(seed, i, 0)))
            kw = {"strength_init": setup.strength_init, "progress": False, **search}
            sens = sensitivity(setup.signal, bg, seed=_seed(seed, i, 1), beta=sensitivity_beta, **kw)
            row: dict[str, Any] = {
                "dec_deg": dec,
                "ts_median": sens.threshold,
                "sens_ns": sens.strength,
                "sens_ns_err": sens.strength_err,
            }
            conv = setup.conversion
            if conv is not None:
                e0_gev = float(conv.e0_gev)
                row["sens_phi0"] = float(conv.norm(sens.strength))
                row["sens_e2dnde"] = float(conv.e2dnde(sens.strength))
            for j, sig in enumerate(discovery_sigmas):
                disc = discovery_potential(
                    setup.signal, bg, seed=_seed(seed, i, 2 + j), sigma=sig, beta=discovery_beta, **kw
                )
                p = f"disc{sig:g}sigma_"
                row[p + "ts"] = disc.threshold
                row[p + "ts_method"] = disc.threshold_method
                row[p + "ns"] = disc.strength
                row[p + "ns_err"] = disc.strength_err
                if conv is not None:
                    row[p + "phi0"] = float(conv.norm(disc.strength))
                    row[p + "e2dnde"] = float(conv.e2dnde(disc.strength))
            rows.append(row)
            bar.update(1)
    table = Table(rows=rows)
    table["dec_deg"].unit = "deg"
    for name in table.colnames:
        if name.endswith("phi0"):
            table[name].unit = "GeV-1 cm-2 s-1"
        elif name.endswith("e2dnde"):
            table[name].unit = "GeV cm-2 s-1"
    table.meta["seed"] = int(seed)
    table.meta["n_background"] = int(n_background)
    table.meta["sensitivity_beta"] = float(sensitivity_beta)
    table.meta["discovery_beta"] = float(discovery_beta)
    if e0_gev is not None:
        table.meta["e0_gev"] = e0_gev
    return table
