r"""Point-source pseudo-experiments in JAX: scrambled background plus injected signal.

One trial, as SkyLLH's ``FixedScrambledExpDataI3BkgGenMethod`` and
``PDDatasetSignalGenerator`` define it:

1. every event of every season gets a new right ascension, uniform in
   :math:`[0, 2\pi)` (time-integrated analysis: the background is uniform in RA);
2. optionally signal events are drawn through the instrument response
   (:mod:`bayesnu.irf.injection`: true energy from flux x effective area, reco energy,
   PSF and AngErr from the smearing matrix, seasons in proportion to their yield) and
   added to the data (:math:`N_s` grows by the injected count);
3. the likelihood of :mod:`bayesnu.likelihood.pointsource` is maximised with
   :func:`~bayesnu.likelihood.ps_fit.fit_ns_gamma`.

Event selection: an event enters the likelihood only through
:math:`\ln(1 + c_s(R_i - 1))` with :math:`c_s = n_{s,s}/N_s`; an event with
:math:`R_i(\gamma) < \tau` at every :math:`\gamma` can be counted with the unselected
events (:math:`R_i = 0`) at an error below :math:`c_s\tau` in :math:`\ln\Lambda`
(:math:`\tau = 10^{-6}`, i.e. below :math:`10^{-7}` for any realistic :math:`n_s`). That
criterion is tighter than SkyLLH's 10-degree box (which drops larger ratios) and far
cheaper: per event, the largest opening angle :math:`\psi_i` at which
:math:`R_i` can reach :math:`\tau` follows from its AngErr, background density and
largest energy ratio; only events within :math:`\psi_i` of the source's declination
are kept on the host (the band), each with the half-width :math:`\Delta_i` in right
ascension within which it reaches the source.

Scrambling and selecting without touching every band event: after scrambling, band
event :math:`i` is within reach with probability :math:`p_i = \Delta_i/\pi`,
independently of the others, and its right ascension given that is uniform on the arc
:math:`\alpha_s \pm \Delta_i`. The trial draws that subset directly: lay the events'
hazards :math:`h_i = -\ln(1 - p_i)` end to end, throw the points of a unit-rate Poisson
process on :math:`[0, \sum_i h_i]` (cumulative sums of exponential draws), and select
every event whose segment holds at least one point (probability
:math:`1 - e^{-h_i} = p_i`, independent over disjoint segments); events with
:math:`p_i = 1` are always selected. This has exactly the law of scrambling every
right ascension and keeping the events within reach, at a cost set by the number of
selected events instead of the band size (:func:`full_pseudo_data` completes a draw to
the whole scrambled band, for checks). The selected events (plus injected events
within reach in signal trials) are compacted (prefix sum, index scatter, gather; no
sort) into a static buffer sized from the exact expected count plus seven standard
deviations, plus room for every injected event in signal trials (an overflow, of the
buffer or of the static number of Poisson points, is reported).

Everything is one pure function of the PRNG
key, so a batch of trials is a ``vmap`` and
:func:`bayesnu.frequentist.trials.run_trials` runs them locally or on a
``dask.distributed`` cluster with identical results per seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesnu.analyses.point_source import Source
from bayesnu.analyses.ps_inputs import SeasonModel, build_inputs, energy_ratio_values
from bayesnu.errors import ConfigError
from bayesnu.flux import PowerLaw
from bayesnu.irf.background import EnergyBackground, SpatialBackground
from bayesnu.irf.energy import SignalEnergyPDF
from bayesnu.irf.injection import InjectionTables, build_tables, sample_signal
from bayesnu.irf.spatial import haversine, rayleigh_pdf_haversine
from bayesnu.likelihood.pointsource import PSEvents, PSInputs
from bayesnu.likelihood.ps_fit import fit_ns_gamma

#: Events whose signal-over-background ratio stays below this at every gamma are
#: counted with the unselected events (error below ns/N * TAU in ln Lambda).
TAU = 1e-6


@dataclass(frozen=True)
class PSTrialInputs:
    """Everything a point-source trial needs (a JAX pytree; settings are static).

    Attributes
    ----------
    band
        :class:`PSInputs` of the events that can reach the source after scrambling
        (``n_outside`` counts every other event).
    dra_reach
        Half-width in right ascension [rad] within which each band event, after
        scrambling, is within reach of the source (from its reach angle and declination).
    always_idx
        Band rows always within reach (:math:`\\Delta_i = \\pi`).
    cand_idx, hazard
        Band rows within reach with a probability :math:`0 < p_i < 1`, and the
        cumulative sum of their hazards :math:`-\\ln(1 - p_i)` (a zero-hazard dummy when
        there is none).
    spatial_bkg, energy_bkg, signal_energy
        Per-season response tables, used for injected events.
    injection
        Signal-injection tables (``None``: background trials only).
    buffer
        Static number of selected events per trial (overflow is reported).
    n_points
        Static number of Poisson points per trial (overflow is reported).
    n_inj_max
        Static maximum of injected events per trial.
    ns_max, gamma_min, gamma_max
        Fit ranges.
    e0_gev
        Reference energy of the injected flux.
    node_step
        Profile every ``node_step``-th gamma node before the polish (see
        :func:`~bayesnu.likelihood.ps_fit.fit_ns_gamma`).
    """

    band: PSInputs
    dra_reach: jax.Array
    always_idx: jax.Array
    cand_idx: jax.Array
    hazard: jax.Array
    spatial_bkg: tuple[SpatialBackground, ...]
    energy_bkg: tuple[EnergyBackground, ...]
    signal_energy: tuple[SignalEnergyPDF, ...]
    injection: InjectionTables | None
    buffer: int
    n_points: int
    n_inj_max: int
    ns_max: float
    gamma_min: float
    gamma_max: float
    e0_gev: float
    node_step: int = 2


jax.tree_util.register_dataclass(
    PSTrialInputs,
    data_fields=[
        "band",
        "dra_reach",
        "always_idx",
        "cand_idx",
        "hazard",
        "spatial_bkg",
        "energy_bkg",
        "signal_energy",
        "injection",
    ],
    meta_fields=[
        "buffer",
        "n_points",
        "n_inj_max",
        "ns_max",
        "gamma_min",
        "gamma_max",
        "e0_gev",
        "node_step",
    ],
)


def reach_angle(
    sigma: np.ndarray, bkg_spatial: np.ndarray, er_max: np.ndarray, tau: float = TAU
) -> np.ndarray:
    """Largest opening angle [rad] at which an event's ratio can still reach ``tau``.

    From :math:`\\frac{1}{2\\pi\\sigma^2}e^{-\\psi^2/2\\sigma^2}\\,r_E/B = \\tau` with a 2%
    margin for :math:`\\psi/\\sin\\psi`; zero when the ratio stays below ``tau`` even at
    the source.
    """
    arg = er_max / (tau * bkg_spatial * 2.0 * np.pi * sigma**2)
    psi = np.sqrt(2.0 * np.log(np.maximum(arg, 1.0))) * sigma
    return np.minimum(psi * 1.02 + 1e-9, np.pi)


def reach_half_width(dec: np.ndarray, psi: np.ndarray, dec_s: float) -> np.ndarray:
    """Half-width in RA [rad] within which events at ``dec`` are closer than ``psi`` to declination ``dec_s``.

    From :math:`\\cos\\psi = \\sin\\delta\\sin\\delta_s + \\cos\\delta\\cos\\delta_s\\cos\\Delta\\alpha`
    (all angles in radians; ``pi`` when every RA is within reach, 0 when none is).
    """
    cos_dra = (np.cos(psi) - np.sin(dec) * np.sin(dec_s)) / np.maximum(np.cos(dec) * np.cos(dec_s), 1e-300)
    return np.arccos(np.clip(cos_dra, -1.0, 1.0))


def build_trial_inputs(
    models: Sequence[SeasonModel],
    source: Source,
    *,
    inject: bool = True,
    n_inj_max: int = 256,
    e_range_gev: tuple[float, float] | None = None,
    ns_max: float = 1000.0,
    gamma_bounds: tuple[float, float] = (1.0, 4.0),
    node_step: int = 2,
    buffer_sigma: float = 7.0,
) -> PSTrialInputs:
    """Prepare the inputs of :func:`ps_trial` for one source.

    Parameters
    ----------
    models
        Season models (their events are the data that get scrambled).
    source
        Source position.
    inject
        Build the signal-injection tables (needed for signal trials).
    n_inj_max
        Static maximum number of injected events per trial.
    e_range_gev
        Optional true-energy range of the injected neutrinos [GeV].
    ns_max, gamma_bounds
        Fit ranges.
    node_step
        Gamma-node stride of the fit's profile stage.
    buffer_sigma
        Size of the selection buffer: expected count of scrambled events within reach
        + this many standard deviations (+ ``n_inj_max`` with injection).
    """
    if not gamma_bounds[0] < gamma_bounds[1]:
        raise ConfigError(f"gamma bounds inverted: {gamma_bounds}")
    dec_s = source.dec_rad
    band_events, dra_parts = [], []
    for m in models:
        ev = m.events
        sin_dec = ev.sin_dec
        er = m.energy_ratio(m.signal_energy(dec_s), ev.log10_energy, sin_dec)
        psi = reach_angle(ev.ang_err_rad, m.spatial_bkg.pdf(sin_dec), er.max(axis=1))
        keep = np.abs(ev.dec_rad - dec_s) < psi
        dra = reach_half_width(ev.dec_rad[keep], psi[keep], dec_s)
        dra_parts.append(dra)
        band_events.append(ev.select(keep))
    n_keep = sum(len(e) for e in band_events)
    band = build_inputs(models, source.ra_rad, dec_s, selection_deg=None, events=band_events,
                        pad_to=int(256 * math.ceil(max(n_keep, 1) / 256)))  # fmt: skip
    dra_reach = np.zeros(len(band.events))
    dra_reach[:n_keep] = np.concatenate(dra_parts)
    n_total = np.asarray([m.n_events for m in models], dtype=float)
    n_band = np.asarray([len(e) for e in band_events], dtype=float)
    band = replace(
        band,
        n_total=jnp.asarray(n_total),
        n_outside=jnp.asarray(n_total - n_band),
        n_total_min=float(n_total.min()),
    )
    always = dra_reach >= np.pi
    cand = (dra_reach > 0) & ~always
    hazard = -np.log1p(-dra_reach[cand] / np.pi)
    h_total = float(hazard.sum())
    # Poisson points on [0, h_total]: a Poisson(h_total) count; one more must lie beyond.
    n_points = int(32 * math.ceil((h_total + buffer_sigma * math.sqrt(h_total) + 8) / 32))
    cand_idx = np.flatnonzero(cand)
    if cand_idx.size == 0:  # a zero-length segment that no point can land in
        cand_idx, hazard = np.zeros(1, dtype=np.int64), np.zeros(1)
    injection = None
    if inject:
        _, injection = build_tables(
            [m.season for m in models], source.ra_deg, source.dec_deg, e_range_gev=e_range_gev
        )
    return PSTrialInputs(
        band=band,
        dra_reach=jnp.asarray(dra_reach),
        always_idx=jnp.asarray(np.flatnonzero(always), dtype=jnp.int32),
        cand_idx=jnp.asarray(cand_idx, dtype=jnp.int32),
        hazard=jnp.asarray(np.cumsum(hazard)),
        spatial_bkg=tuple(m.spatial_bkg for m in models),
        energy_bkg=tuple(m.energy_bkg for m in models),
        signal_energy=tuple(m.signal_energy(dec_s) for m in models),
        injection=injection,
        buffer=_selection_buffer(dra_reach, buffer_sigma, int(n_inj_max) if inject else 0),
        n_points=n_points,
        n_inj_max=int(n_inj_max),
        ns_max=float(ns_max),
        gamma_min=float(gamma_bounds[0]),
        gamma_max=float(gamma_bounds[1]),
        e0_gev=float(models[0].settings.e0_gev),
        node_step=int(node_step),
    )


def _selection_buffer(dra_reach: np.ndarray, n_sigma: float, n_inj: int) -> int:
    """Selection buffer: scrambled band events within reach, mean + ``n_sigma`` sd, plus ``n_inj``.

    A band event lands within reach with probability ``dra_reach / pi`` (independently
    of the others); every injected event may land within reach, so all get room.
    """
    p = np.asarray(dra_reach, dtype=float) / np.pi
    mean, var = float(p.sum()), float(np.sum(p * (1.0 - p)))
    bkg = min(int(32 * math.ceil((mean + n_sigma * math.sqrt(var)) / 32)), p.size)
    return max(bkg, 1) + int(n_inj)


def with_buffer_sigma(data: PSTrialInputs, n_sigma: float) -> PSTrialInputs:
    """The same trial inputs with the selection buffer sized at mean + ``n_sigma`` sd.

    Only the static buffer of the likelihood changes: every draw (Poisson points,
    right ascensions, injected events) is the same for a given key, and a trial that
    fits in both buffers gets the same fit up to float rounding. A tight buffer (e.g.
    3 sd: 0.13% of trials overflow) makes every fit cheaper; run it with the default
    7-sd inputs as ``retry_inputs`` of :func:`bayesnu.frequentist.trials.run_trials`.
    """
    n_inj = data.n_inj_max if data.injection is not None else 0
    return replace(data, buffer=_selection_buffer(np.asarray(data.dra_reach), float(n_sigma), n_inj))


def with_injection_capacity(data: PSTrialInputs, n_inj_max: int) -> PSTrialInputs:
    """The same trial inputs with room for ``n_inj_max`` injected events (buffer resized to match)."""
    if data.injection is None:
        raise ConfigError("these trial inputs have no injection tables (build them with inject=True)")
    n_inj_max = int(n_inj_max)
    return replace(data, n_inj_max=n_inj_max, buffer=data.buffer - data.n_inj_max + n_inj_max)


def _injected_columns(data: PSTrialInputs, key: jax.Array, ns: jax.Array, gamma: jax.Array):
    """Per-event arrays of injected signal events (padded to ``n_inj_max``)."""
    flux = PowerLaw(1.0, gamma, e0_gev=data.e0_gev)
    inj = sample_signal(data.injection, flux, key, ns, n_max=data.n_inj_max)
    ra, dec = jnp.radians(inj.ra_deg), jnp.radians(inj.dec_deg)
    sin_dec = jnp.sin(dec)
    season = inj.season.astype(jnp.int32)
    bsp = jnp.zeros_like(ra)
    er = jnp.zeros((data.n_inj_max, data.band.events.energy_ratio.shape[-1]))
    for s in range(len(data.spatial_bkg)):
        here = season == s
        bsp = jnp.where(here, data.spatial_bkg[s].pdf(sin_dec), bsp)
        sig = data.signal_energy[s].pdf_grid(inj.log10_energy)
        r = energy_ratio_values(sig, data.energy_bkg[s].pdf(inj.log10_energy, sin_dec))
        er = jnp.where(here[:, None], r, er)
    cols = {
        "ra": ra,
        "dec": dec,
        "sigma": jnp.radians(inj.ang_err_deg),
        "bsp": bsp,
        "er": er,
        "season": season,
    }
    h = haversine(ra, dec, data.band.src_ra, data.band.src_dec)
    r_sp = rayleigh_pdf_haversine(h, cols["sigma"]) / bsp
    cols["near"] = r_sp * jnp.max(er, axis=1) > TAU
    return cols, inj.valid, inj.n_requested


class TrialData(NamedTuple):
    """One pseudo-data set before compaction: per-row columns (``ra``, ``dec``, ``sigma``,
    ``bsp``, ``er``, ``season`` and the reach flag ``near``), row validity, events per
    season ``n_total``, injected count ``n_inj`` and an ``overflow`` flag."""

    cols: dict[str, jax.Array]
    valid: jax.Array
    n_total: jax.Array
    n_inj: jax.Array
    overflow: jax.Array


def _reach_draws(key: jax.Array, data: PSTrialInputs) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Band rows within reach after scrambling, with their right ascensions.

    Returns ``(rows, selected, ra, overflow)`` over ``len(always_idx) + n_points``
    candidate rows: the always-reachable rows, then one row per Poisson point (the
    first point of each hazard segment selects its event); ``ra`` is uniform on the
    event's reach arc. ``overflow``: the points did not cover the whole hazard range.
    """
    k_pts, k_ra = jax.random.split(key)
    s = jnp.cumsum(jax.random.exponential(k_pts, (data.n_points,), dtype=data.hazard.dtype))
    j = jnp.searchsorted(data.hazard, s, side="left")
    hit = j < data.hazard.shape[0]
    first = hit & (j != jnp.concatenate([jnp.full(1, -1, dtype=j.dtype), j[:-1]]))
    rows = jnp.concatenate([data.always_idx, data.cand_idx[jnp.minimum(j, data.hazard.shape[0] - 1)]])
    selected = jnp.concatenate([jnp.ones(data.always_idx.shape[0], dtype=bool), first])
    u = jax.random.uniform(k_ra, rows.shape, dtype=data.hazard.dtype, minval=-1.0, maxval=1.0)
    ra = jnp.mod(data.band.src_ra + u * data.dra_reach[rows], 2 * jnp.pi)
    return rows, selected, ra, s[-1] <= data.hazard[-1]


def pseudo_data(key: jax.Array, data: PSTrialInputs, ns_inj: jax.Array, gamma_inj: jax.Array) -> TrialData:
    """The scrambled band's events within reach plus injected signal events (before compaction).

    Only events within reach are drawn (see the module notes); ``cols["near"]`` marks
    the rows to keep. :func:`full_pseudo_data` gives the same draw with every band event.
    """
    k_ra, k_inj = jax.random.split(key)
    rows, selected, ra, overflow = _reach_draws(k_ra, data)
    ev = data.band.events
    cols = {"ra": ra, "dec": ev.dec[rows], "sigma": ev.sigma[rows], "bsp": ev.bkg_spatial[rows],
            "er": ev.energy_ratio[rows], "season": ev.season[rows], "near": selected}  # fmt: skip
    return _add_injection(data, k_inj, ns_inj, gamma_inj, cols, ev.valid[rows], overflow)


def full_pseudo_data(
    key: jax.Array, data: PSTrialInputs, ns_inj: jax.Array, gamma_inj: jax.Array
) -> TrialData:
    """:func:`pseudo_data` completed to the whole scrambled band (for checks).

    The events within reach are those of :func:`pseudo_data` for the same key, with the
    same right ascensions; every other band event gets a right ascension uniform outside
    its reach arc, which makes the whole a uniform scramble of the band.
    """
    k_ra, k_inj = jax.random.split(key)
    rows, selected, ra, overflow = _reach_draws(k_ra, data)
    ev = data.band.events
    n = ev.ra.shape[0]
    dest = jnp.where(selected, rows, n)  # unselected points go nowhere
    near = jnp.zeros(n, dtype=bool).at[dest].set(True, mode="drop")
    ra_near = jnp.zeros(n).at[dest].set(ra, mode="drop")
    # Outside the reach arc: |ra - src| uniform on (dra, pi], either side.
    u = jax.random.uniform(jax.random.fold_in(k_ra, 1), (n,), minval=-1.0, maxval=1.0)
    dra = data.dra_reach
    far = data.band.src_ra + jnp.sign(u) * (dra + jnp.abs(u) * (jnp.pi - dra))
    cols = {"ra": jnp.where(near, ra_near, jnp.mod(far, 2 * jnp.pi)), "dec": ev.dec, "sigma": ev.sigma,
            "bsp": ev.bkg_spatial, "er": ev.energy_ratio, "season": ev.season, "near": near}  # fmt: skip
    return _add_injection(data, k_inj, ns_inj, gamma_inj, cols, ev.valid, overflow)


def _add_injection(
    data: PSTrialInputs,
    key: jax.Array,
    ns_inj: jax.Array,
    gamma_inj: jax.Array,
    cols: dict[str, jax.Array],
    valid: jax.Array,
    overflow: jax.Array,
) -> TrialData:
    n_total = data.band.n_total
    n_inj = jnp.asarray(0)
    if data.injection is not None:
        inj_cols, inj_valid, n_req = _injected_columns(data, key, ns_inj, gamma_inj)
        cols = {k: jnp.concatenate([cols[k], inj_cols[k]]) for k in cols}
        valid = jnp.concatenate([valid, inj_valid])
        n_s = len(data.spatial_bkg)
        added = jnp.zeros(n_s).at[inj_cols["season"]].add(jnp.where(inj_valid, 1.0, 0.0))
        n_total = n_total + added
        n_inj = jnp.sum(inj_valid)
        overflow = overflow | (n_req > data.n_inj_max)
    return TrialData(cols, valid, n_total, n_inj, overflow)


def as_inputs(
    data: PSTrialInputs, pd: TrialData, size: int, select: bool = True
) -> tuple[PSInputs, jax.Array]:
    """Likelihood inputs of a pseudo-data set: events within reach compacted into ``size`` rows.

    With ``select=False`` every valid event is kept (the exact likelihood, for checks).
    Returns the inputs and an overflow flag.
    """
    cols = pd.cols
    sel = pd.valid & cols["near"] if select else pd.valid
    buf, n_sel, count = compact_events(cols, sel, size, pd.n_total.shape[0])
    inputs = replace(data.band, events=buf, n_total=pd.n_total, n_outside=pd.n_total - n_sel)
    return inputs, count > size


def compact_events(
    cols: dict[str, jax.Array], sel: jax.Array, size: int, n_seasons: int
) -> tuple[PSEvents, jax.Array, jax.Array]:
    """Compact the rows selected by ``sel`` into a static buffer of ``size`` events.

    ``cols`` holds per-event ``ra``, ``dec``, ``sigma``, ``bsp`` (background spatial
    PDF), ``er`` (energy-ratio table) and ``season``. The selected rows' indices (not
    the rows) are scattered into the buffer by a prefix sum, then gathered: no sort.

    Returns
    -------
    tuple
        The :class:`PSEvents` buffer, the selected count per season ``(S,)`` and the
        total selected count (an overflow when larger than ``size``).
    """
    pos = jnp.cumsum(sel) - 1
    count = jnp.sum(sel)
    src = (
        jnp.zeros(size, dtype=jnp.int32)
        .at[jnp.where(sel, pos, size)]
        .set(jnp.arange(sel.shape[0], dtype=jnp.int32), mode="drop")
    )
    in_buf = jnp.arange(size) < count

    def compact(a: jax.Array, fill: float) -> jax.Array:
        taken = a[src]
        mask = in_buf.reshape((-1,) + (1,) * (a.ndim - 1))
        return jnp.where(mask, taken, jnp.asarray(fill, dtype=a.dtype))

    buf = PSEvents(
        ra=compact(cols["ra"], 0.0),
        dec=compact(cols["dec"], 0.0),
        sigma=compact(cols["sigma"], 1.0),
        bkg_spatial=compact(cols["bsp"], 1.0),
        energy_ratio=compact(cols["er"], 0.0),
        season=compact(cols["season"], 0),
        valid=in_buf,
    )
    n_sel = jnp.zeros(n_seasons).at[cols["season"]].add(jnp.where(sel, 1.0, 0.0))
    return buf, n_sel, count


def ps_trial(
    key: jax.Array, data: PSTrialInputs, ns_inj: jax.Array, gamma_inj: jax.Array
) -> dict[str, jax.Array]:
    """One pseudo-experiment: scrambled data (+ injected signal), selection, ML fit.

    Parameters
    ----------
    key
        PRNG key of the trial.
    data
        :func:`build_trial_inputs` output.
    ns_inj
        Mean number of injected signal events (Poisson-fluctuated); ignored without
        injection tables.
    gamma_inj
        Spectral index of the injected signal.

    Returns
    -------
    dict
        ``ts``, ``ns``, ``gamma``, ``n_inj`` (injected events), ``converged``,
        ``overflow`` (selection buffer or ``n_inj_max`` too small: the trial is invalid).
    """
    pd = pseudo_data(key, data, ns_inj, gamma_inj)
    inputs, overflow = as_inputs(data, pd, data.buffer)
    fit = fit_ns_gamma(
        inputs,
        ns_max=data.ns_max,
        gamma_min=data.gamma_min,
        gamma_max=data.gamma_max,
        node_step=data.node_step,
    )
    return {
        "ts": fit.ts,
        "ns": fit.ns,
        "gamma": fit.gamma,
        "n_inj": pd.n_inj,
        "converged": fit.converged,
        "overflow": overflow | pd.overflow,
    }


def background_trial(key: jax.Array, data: PSTrialInputs) -> dict[str, jax.Array]:
    """A background-only trial (scrambled RA, no injection)."""
    return ps_trial(key, replace(data, injection=None), jnp.asarray(0.0), jnp.asarray(2.0))
