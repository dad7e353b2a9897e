r"""Point-source signal injection through the release's effective area and smearing matrix (JAX).

Used by the release simulator (:mod:`bayesnu.data.simulate`) and by signal-injection
pseudo-experiments. A :class:`SignalInjector` is built once from loaded seasons, a
source position and a flux model; it holds every table as a JAX pytree
(:class:`InjectionTables`) so that :func:`sample_signal` is a pure function that can be
``jit``-ed and ``vmap``-ed over PRNG keys (and over the flux parameters or the mean
number of events), with a static maximum number of events.

Sampling scheme (per event; docs/simulator.rst has the formulas and the comparison
with SkyLLH's ``PDDatasetSignalGenerator``):

1. season :math:`k` with probability :math:`N_k / \sum_j N_j`, where
   :math:`N_k = T_k \sum_i A_{k,i}(\delta_s) \int_{E_i} \Phi\,dE` is the expected
   number of events (livetime x effective area in the source's declination bin x
   flux integral over each true-energy bin);
2. a true-energy sub-bin with probability :math:`\propto A\,\int\Phi\,dE`, restricted
   to true energies whose smearing block (in the source's smearing declination bin)
   is valid; inside the sub-bin :math:`E \propto E^{-\gamma}` (sub-bins are 1/8 of
   the union of effective-area and smearing bins, so a cut-off is resolved);
3. one (reco energy, PSF, AngErr) cell of that true bin's smearing block with
   probability ``Fractional_Counts`` (normalised), values uniform inside the cell;
4. the direction is the source rotated by the PSF angle at a uniform position angle;
   the time is uniform over the season's good runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesnu.data.ps_release import PSRelease, Season
from bayesnu.errors import ConfigError
from bayesnu.flux import PowerLaw

_EPS = 1e-12


@dataclass(frozen=True)
class InjectionTables:
    """All arrays the sampler needs, stacked over seasons (a JAX pytree).

    Shapes: ``K`` seasons, ``S`` true-energy sub-bins, ``NE`` smearing true-energy
    bins, ``R, P, A`` reco-energy, PSF and AngErr bins (padded to the largest season),
    ``M`` good runs (padded with zero-length runs).

    Attributes
    ----------
    src_ra_rad, src_dec_rad
        Source position [rad] (scalars).
    livetime_s
        ``(K,)`` livetime [s].
    sub_e_lo_gev, sub_e_hi_gev
        ``(K, S)`` true-energy sub-bin edges [GeV].
    sub_aeff_cm2
        ``(K, S)`` effective area at the source declination [cm^2] (0 for padding).
    sub_valid
        ``(K, S)`` 1 where the sub-bin's smearing block is valid, else 0.
    sub_sm_index
        ``(K, S)`` smearing true-energy bin of each sub-bin.
    cell_cdf
        ``(K, NE, R*P*A)`` cumulative probability over the 3D cells of each block.
    reco_lo, reco_hi
        ``(K, NE, R)`` reco-energy bin edges, log10(E/GeV).
    psf_lo_deg, psf_hi_deg
        ``(K, NE, R, P)`` PSF bin edges [deg].
    ang_lo_deg, ang_hi_deg
        ``(K, NE, R, P, A)`` AngErr bin edges [deg].
    run_start_mjd, run_length_days, run_cdf
        ``(K, M)`` good runs: start [MJD], length [days], cumulative livetime fraction.
    """

    src_ra_rad: jax.Array
    src_dec_rad: jax.Array
    livetime_s: jax.Array
    sub_e_lo_gev: jax.Array
    sub_e_hi_gev: jax.Array
    sub_aeff_cm2: jax.Array
    sub_valid: jax.Array
    sub_sm_index: jax.Array
    cell_cdf: jax.Array
    reco_lo: jax.Array
    reco_hi: jax.Array
    psf_lo_deg: jax.Array
    psf_hi_deg: jax.Array
    ang_lo_deg: jax.Array
    ang_hi_deg: jax.Array
    run_start_mjd: jax.Array
    run_length_days: jax.Array
    run_cdf: jax.Array


jax.tree_util.register_dataclass(
    InjectionTables,
    data_fields=[
        "src_ra_rad", "src_dec_rad", "livetime_s", "sub_e_lo_gev", "sub_e_hi_gev", "sub_aeff_cm2",
        "sub_valid", "sub_sm_index", "cell_cdf", "reco_lo", "reco_hi", "psf_lo_deg", "psf_hi_deg",
        "ang_lo_deg", "ang_hi_deg", "run_start_mjd", "run_length_days", "run_cdf",
    ],
    meta_fields=[],
)  # fmt: skip


class InjectedEvents(NamedTuple):
    """Injected events padded to a static length ``n_max`` (a JAX pytree).

    Only the first ``n`` rows are events (``valid``); the rest is padding.

    Attributes
    ----------
    ra_deg, dec_deg
        Reconstructed direction [deg].
    log10_energy
        Reconstructed energy, log10(E/GeV).
    ang_err_deg
        Estimated angular uncertainty [deg].
    psf_deg
        True angle between source and reconstructed direction [deg].
    log10_enu
        True neutrino energy, log10(E_nu/GeV).
    mjd
        Event time [MJD] inside a good run of its season.
    season
        Index of the season (order of :attr:`SignalInjector.season_names`).
    valid
        Which rows are events.
    n
        Number of events (``<= n_max``).
    n_requested
        Number drawn before clipping to ``n_max`` (``n_requested > n`` means events
        were dropped: raise ``n_max``).
    """

    ra_deg: jax.Array
    dec_deg: jax.Array
    log10_energy: jax.Array
    ang_err_deg: jax.Array
    psf_deg: jax.Array
    log10_enu: jax.Array
    mjd: jax.Array
    season: jax.Array
    valid: jax.Array
    n: jax.Array
    n_requested: jax.Array


# ---------------------------------------------------------------------------- pure functions


def injection_capacity(ns: float, n_sigma: float = 7.0) -> int:
    """Static number of injected events for a Poisson mean ``ns``.

    The mean plus ``n_sigma`` standard deviations plus 8, rounded up to a multiple of 32
    (few distinct sizes, so few compilations); a draw beyond it is reported as an overflow.
    """
    ns = max(float(ns), 0.0)
    return int(32 * math.ceil((ns + n_sigma * math.sqrt(max(ns, 1.0)) + 8) / 32))


def expected_counts(tables: InjectionTables, flux: PowerLaw) -> jax.Array:
    """Expected number of signal events per season, ``(K,)``.

    :math:`N_k = T_k \\sum_i A_{k,i}(\\delta_s) \\int_{E_i} \\Phi(E)\\,dE` over every
    effective-area bin inside the injector's true-energy range (the detector signal
    yield of SkyLLH's public-data analysis).
    """
    integ = flux.integral(tables.sub_e_lo_gev, tables.sub_e_hi_gev)
    return tables.livetime_s * jnp.sum(tables.sub_aeff_cm2 * integ, axis=1)


def _draw_rows(cdf: jax.Array, row: jax.Array, u: jax.Array) -> jax.Array:
    """Categorical draws: for each event, an index into its own row of cumulative probabilities.

    One ``searchsorted`` over the sorted keys ``row + cdf[row]`` instead of gathering
    a full row per event (memory O(events), not O(events x bins)).
    """
    n_rows, n = cdf.shape
    keys = (jnp.arange(n_rows, dtype=cdf.dtype)[:, None] + jnp.minimum(cdf, 1.0 - _EPS)).ravel()
    idx = jnp.searchsorted(keys, row + u * (1.0 - 2 * _EPS), side="right") - row * n
    return jnp.clip(idx, 0, n - 1)


def _normalised_cdf(w: jax.Array) -> jax.Array:
    total = jnp.sum(w, axis=-1, keepdims=True)
    n = w.shape[-1]
    cdf = jnp.cumsum(jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), 1.0 / n), axis=-1)
    return cdf.at[..., -1].set(1.0)


def _power_law_log_e(u: jax.Array, e_lo: jax.Array, e_hi: jax.Array, gamma: jax.Array) -> jax.Array:
    """ln E drawn from E^-gamma between e_lo and e_hi (inverse CDF, stable near gamma = 1)."""
    a = 1.0 - gamma
    ln_r = jnp.log(e_hi / e_lo)
    small = jnp.abs(a) < 1e-8
    safe_a = jnp.where(small, 1.0, a)
    pl = jnp.log1p(u * jnp.expm1(safe_a * ln_r)) / safe_a
    return jnp.log(e_lo) + jnp.where(small, u * ln_r, pl)


def _rotate(ra_s: jax.Array, dec_s: jax.Array, psi: jax.Array, phi: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Direction at angular distance ``psi`` and position angle ``phi`` from (ra_s, dec_s) [rad]."""
    sin_dec = jnp.sin(dec_s) * jnp.cos(psi) + jnp.cos(dec_s) * jnp.sin(psi) * jnp.cos(phi)
    sin_dec = jnp.clip(sin_dec, -1.0, 1.0)
    dec = jnp.arcsin(sin_dec)
    d_ra = jnp.arctan2(jnp.sin(phi) * jnp.sin(psi) * jnp.cos(dec_s), jnp.cos(psi) - jnp.sin(dec_s) * sin_dec)
    return jnp.mod(ra_s + d_ra, 2.0 * jnp.pi), dec


@partial(jax.jit, static_argnames=("n_max", "poisson"))
def sample_signal(
    tables: InjectionTables,
    flux: PowerLaw,
    key: jax.Array,
    ns: jax.Array | None = None,
    *,
    n_max: int,
    poisson: bool = True,
) -> InjectedEvents:
    """Draw signal events (pure; jit-compiled, vmap-able over ``key``, ``ns`` and ``flux``).

    Parameters
    ----------
    tables
        Tables of a :class:`SignalInjector`.
    flux
        Flux model (its ``norm`` sets the mean number of events when ``ns`` is None;
        its ``gamma`` always sets the energy distribution).
    key
        JAX PRNG key (same key -> same events).
    ns
        Mean number of signal events summed over seasons; ``None`` uses the flux's
        expectation :func:`expected_counts`.
    n_max
        Static number of rows of the output (events beyond it are dropped and
        reported in ``n_requested``).
    poisson
        Draw the number of events from a Poisson distribution of mean ``ns``
        (default), or inject exactly ``round(ns)``.

    Returns
    -------
    InjectedEvents
    """
    k_n, k_u = jax.random.split(key)
    # One block of uniforms (a single threefry call keeps compile time low).
    u = jax.random.uniform(k_u, (10, n_max))
    rates = expected_counts(tables, flux)
    mean = jnp.sum(rates) if ns is None else jnp.asarray(ns, dtype=float)
    if poisson:
        n_req = jax.random.poisson(k_n, mean).astype(jnp.int64)
    else:
        n_req = jnp.round(mean).astype(jnp.int64)
    n = jnp.minimum(n_req, n_max)
    n_seasons, n_sm_e, n_cells = tables.cell_cdf.shape
    n_p, n_a = tables.ang_lo_deg.shape[3:]

    # 1. season, in proportion to the expected counts.
    p_season = _normalised_cdf(rates)[None, :]
    season = _draw_rows(p_season, jnp.zeros(n_max, dtype=jnp.int64), u[0])
    # 2. true-energy sub-bin and energy.
    shape_int = flux.shape_integral(tables.sub_e_lo_gev, tables.sub_e_hi_gev)
    w_sub = tables.sub_aeff_cm2 * shape_int * tables.sub_valid
    sampleable = jnp.sum(w_sub, axis=1) > 0
    sub = _draw_rows(_normalised_cdf(w_sub), season, u[1])
    e_lo, e_hi = tables.sub_e_lo_gev[season, sub], tables.sub_e_hi_gev[season, sub]
    ln_e = _power_law_log_e(u[2], e_lo, e_hi, jnp.asarray(flux.gamma))
    # 3. smearing cell of that true bin, values uniform inside.
    ie = tables.sub_sm_index[season, sub]
    cell = _draw_rows(
        tables.cell_cdf.reshape(n_seasons * n_sm_e, n_cells),
        season * n_sm_e + ie,
        u[3],
    )
    ir, rem = jnp.divmod(cell, n_p * n_a)
    ip, ia = jnp.divmod(rem, n_a)
    reco_lo, reco_hi = tables.reco_lo[season, ie, ir], tables.reco_hi[season, ie, ir]
    log10_e = reco_lo + (reco_hi - reco_lo) * u[4]
    psf_lo, psf_hi = tables.psf_lo_deg[season, ie, ir, ip], tables.psf_hi_deg[season, ie, ir, ip]
    psf_deg = psf_lo + (psf_hi - psf_lo) * u[5]
    a_lo, a_hi = tables.ang_lo_deg[season, ie, ir, ip, ia], tables.ang_hi_deg[season, ie, ir, ip, ia]
    ang_err = a_lo + (a_hi - a_lo) * u[6]
    # 4. direction and time.
    phi = 2.0 * jnp.pi * u[7]
    ra, dec = _rotate(tables.src_ra_rad, tables.src_dec_rad, jnp.radians(psf_deg), phi)
    run = _draw_rows(tables.run_cdf, season, u[8])
    mjd = tables.run_start_mjd[season, run] + tables.run_length_days[season, run] * u[9]
    valid = (jnp.arange(n_max) < n) & sampleable[season]
    return InjectedEvents(
        ra_deg=jnp.degrees(ra),
        dec_deg=jnp.degrees(dec),
        log10_energy=log10_e,
        ang_err_deg=ang_err,
        psf_deg=psf_deg,
        log10_enu=ln_e / jnp.log(10.0),
        mjd=mjd,
        season=season,
        valid=valid,
        n=jnp.sum(valid),
        n_requested=n_req,
    )


# ---------------------------------------------------------------------------- table builder


def _season_list(seasons: PSRelease | Iterable[Season]) -> list[Season]:
    out = list(seasons.seasons.values()) if isinstance(seasons, PSRelease) else list(seasons)
    if not out:
        raise ConfigError("the signal injector needs at least one season")
    for s in out:
        if s.smearing is None:
            raise ConfigError(
                f"season {s.name} has no smearing matrix; signal injection samples the response from it "
                "(write one with 'bayesnu data simulate --complete-from DIR')"
            )
    return out


def _energy_grid(season: Season, lo: float, hi: float, n_sub: int) -> np.ndarray:
    """Sub-bin edges in log10 E: union of A_eff and smearing edges in [lo, hi], each split in n_sub."""
    a = season.effective_area.log10_enu_edges
    sm = season.smearing.log10_enu_edges  # type: ignore[union-attr]
    inner = np.unique(np.round(np.concatenate([a, sm]), 9))
    inner = inner[(inner > lo + 1e-9) & (inner < hi - 1e-9)]
    edges = np.concatenate([[lo], inner, [hi]])
    f = np.arange(n_sub) / n_sub
    fine = (edges[:-1, None] + np.diff(edges)[:, None] * f[None, :]).ravel()
    return np.append(fine, edges[-1])


def build_tables(
    seasons: PSRelease | Iterable[Season],
    ra_deg: float,
    dec_deg: float,
    *,
    e_range_gev: tuple[float, float] | None = None,
    n_sub: int = 8,
) -> tuple[tuple[str, ...], InjectionTables]:
    """Build the :class:`InjectionTables` of a source at (ra_deg, dec_deg) for the given seasons."""
    if not (-90.0 <= dec_deg <= 90.0) or not np.isfinite(ra_deg):
        raise ConfigError(f"source position (ra={ra_deg}, dec={dec_deg}) deg: dec must be within [-90, 90]")
    season_list = _season_list(seasons)
    grids, rows = [], []
    for s in season_list:
        aeff, sm = s.effective_area, s.smearing
        assert sm is not None
        lo, hi = aeff.log10_enu_edges[0], aeff.log10_enu_edges[-1]
        if e_range_gev is not None:
            e1, e2 = e_range_gev
            if not (0 < e1 < e2):
                raise ConfigError(
                    f"e_range_gev must be (E_min, E_max) with 0 < E_min < E_max, got {e_range_gev}"
                )
            lo, hi = max(lo, np.log10(e1)), min(hi, np.log10(e2))
        grid = _energy_grid(s, lo, hi, n_sub) if hi > lo else np.array([lo, lo])
        mid = 0.5 * (grid[1:] + grid[:-1])
        ia = np.clip(
            np.searchsorted(aeff.log10_enu_edges, mid, side="right") - 1, 0, aeff.aeff_cm2.shape[1] - 1
        )
        a_row = aeff.aeff_cm2[int(aeff.dec_index(dec_deg))][ia] * (hi > lo)
        ism = np.searchsorted(sm.log10_enu_edges, mid, side="right") - 1
        inside = (ism >= 0) & (ism < sm.shape[0])
        ism = np.clip(ism, 0, sm.shape[0] - 1)
        valid = inside & sm.block_valid[:, int(sm.dec_index(dec_deg))][ism]
        grids.append(grid)
        rows.append((a_row, valid, ism))
    n_k = len(season_list)
    n_s = max(len(g) - 1 for g in grids)
    n_e = max(s.smearing.shape[0] for s in season_list)  # type: ignore[union-attr]
    n_r = max(s.smearing.shape[2] for s in season_list)  # type: ignore[union-attr]
    n_p = max(s.smearing.shape[3] for s in season_list)  # type: ignore[union-attr]
    n_a = max(s.smearing.shape[4] for s in season_list)  # type: ignore[union-attr]
    n_m = max(len(s.uptime) for s in season_list)
    t = {
        "sub_e_lo_gev": np.ones((n_k, n_s)),
        "sub_e_hi_gev": np.ones((n_k, n_s)),
        "sub_aeff_cm2": np.zeros((n_k, n_s)),
        "sub_valid": np.zeros((n_k, n_s)),
        "sub_sm_index": np.zeros((n_k, n_s), dtype=np.int64),
        "cell_cdf": np.ones((n_k, n_e, n_r * n_p * n_a)),
        "reco_lo": np.zeros((n_k, n_e, n_r)),
        "reco_hi": np.zeros((n_k, n_e, n_r)),
        "psf_lo_deg": np.zeros((n_k, n_e, n_r, n_p)),
        "psf_hi_deg": np.zeros((n_k, n_e, n_r, n_p)),
        "ang_lo_deg": np.zeros((n_k, n_e, n_r, n_p, n_a)),
        "ang_hi_deg": np.zeros((n_k, n_e, n_r, n_p, n_a)),
        "run_start_mjd": np.zeros((n_k, n_m)),
        "run_length_days": np.zeros((n_k, n_m)),
        "run_cdf": np.ones((n_k, n_m)),
    }
    for k, (s, grid, (a_row, valid, ism)) in enumerate(zip(season_list, grids, rows)):
        m = len(grid) - 1
        t["sub_e_lo_gev"][k, :m] = 10.0 ** grid[:-1]
        t["sub_e_hi_gev"][k, :m] = 10.0 ** grid[1:]
        t["sub_aeff_cm2"][k, :m] = a_row
        t["sub_valid"][k, :m] = valid
        t["sub_sm_index"][k, :m] = ism
        sm = s.smearing
        assert sm is not None
        idec = int(sm.dec_index(dec_deg))
        e, r, p, a = sm.shape[0], sm.shape[2], sm.shape[3], sm.shape[4]
        frac = np.zeros((e, n_r, n_p, n_a))
        frac[:, :r, :p, :a] = sm.fractional_counts[:, idec]
        flat = frac.reshape(e, -1)
        tot = flat.sum(axis=1, keepdims=True)
        pr = np.where(tot > 0, flat / np.where(tot > 0, tot, 1.0), 1.0 / flat.shape[1])
        cdf = np.cumsum(pr, axis=1)
        cdf[:, -1] = 1.0
        t["cell_cdf"][k, :e] = cdf
        re = sm.reco_edges[:, idec]
        t["reco_lo"][k, :e, :r], t["reco_hi"][k, :e, :r] = re[..., :-1], re[..., 1:]
        pe = sm.psf_edges_deg[:, idec]
        t["psf_lo_deg"][k, :e, :r, :p], t["psf_hi_deg"][k, :e, :r, :p] = pe[..., :-1], pe[..., 1:]
        ae = sm.ang_err_edges_deg[:, idec]
        t["ang_lo_deg"][k, :e, :r, :p, :a], t["ang_hi_deg"][k, :e, :r, :p, :a] = ae[..., :-1], ae[..., 1:]
        up = s.uptime
        length = up.mjd_stop - up.mjd_start
        t["run_start_mjd"][k, : len(up)] = up.mjd_start
        t["run_length_days"][k, : len(up)] = length
        t["run_cdf"][k, : len(up)] = np.cumsum(length) / np.sum(length)
    tables = InjectionTables(
        src_ra_rad=jnp.asarray(np.radians(ra_deg % 360.0)),
        src_dec_rad=jnp.asarray(np.radians(dec_deg)),
        livetime_s=jnp.asarray([s.livetime_s for s in season_list]),
        **{k: jnp.asarray(v) for k, v in t.items()},
    )
    return tuple(s.name for s in season_list), tables


class SignalInjector:
    """Signal events of one point source, sampled through the release's response.

    Parameters
    ----------
    seasons
        Loaded seasons (a :class:`~bayesnu.data.ps_release.PSRelease` or a sequence of
        :class:`~bayesnu.data.ps_release.Season`), each with a smearing matrix.
    ra_deg, dec_deg
        Source position [deg].
    flux
        Flux model: :class:`~bayesnu.flux.PowerLaw` (muon neutrino + antineutrino,
        GeV^-1 cm^-2 s^-1 at ``e0_gev``), optionally with a cut-off.
    e_range_gev
        Optional true-energy range (E_min, E_max) [GeV] of the injected neutrinos.
    n_sub
        Sub-bins per true-energy bin for sampling the energy.

    Examples
    --------
    >>> inj = SignalInjector(release, 40.67, -0.01, PowerLaw(norm=1e-15, gamma=2.0))  # doctest: +SKIP
    >>> ev = inj.sample(jax.random.key(0), n_max=256)  # doctest: +SKIP
    >>> keys = jax.random.split(jax.random.key(1), 100)  # doctest: +SKIP
    >>> evs = jax.vmap(lambda k: inj.sample(k, n_max=256, ns=10.0))(keys)  # doctest: +SKIP
    """

    def __init__(
        self,
        seasons: PSRelease | Iterable[Season],
        ra_deg: float,
        dec_deg: float,
        flux: PowerLaw,
        *,
        e_range_gev: tuple[float, float] | None = None,
        n_sub: int = 8,
    ) -> None:
        self.ra_deg = float(ra_deg)
        self.dec_deg = float(dec_deg)
        self.flux = flux
        self.e_range_gev = e_range_gev
        self.season_names, self.tables = build_tables(
            seasons, ra_deg, dec_deg, e_range_gev=e_range_gev, n_sub=n_sub
        )

    def expected_counts(self, flux: PowerLaw | None = None) -> np.ndarray:
        """Expected number of events per season for ``flux`` (default: the injector's), ``(K,)``."""
        return np.asarray(expected_counts(self.tables, flux or self.flux))

    def expected_counts_per_unit_norm(self, flux: PowerLaw | None = None) -> np.ndarray:
        """Expected events per season for Phi0 = 1 GeV^-1 cm^-2 s^-1 at the flux's shape, ``(K,)``."""
        f = (flux or self.flux).with_params(norm=1.0)
        return np.asarray(expected_counts(self.tables, f))

    def sampleable_fraction(self, flux: PowerLaw | None = None) -> np.ndarray:
        """Fraction of each season's expected counts at true energies with a valid smearing block."""
        f = flux or self.flux
        integ = np.asarray(f.shape_integral(self.tables.sub_e_lo_gev, self.tables.sub_e_hi_gev))
        w = np.asarray(self.tables.sub_aeff_cm2) * integ
        tot = w.sum(axis=1)
        return np.where(
            tot > 0, (w * np.asarray(self.tables.sub_valid)).sum(axis=1) / np.where(tot > 0, tot, 1), 0
        )

    def sample(
        self,
        key: jax.Array,
        n_max: int,
        *,
        ns: float | jax.Array | None = None,
        poisson: bool = True,
        flux: PowerLaw | None = None,
    ) -> InjectedEvents:
        """Draw events (see :func:`sample_signal`); jit-compiled, usable inside ``jax.vmap``."""
        return sample_signal(self.tables, flux or self.flux, key, ns, n_max=int(n_max), poisson=poisson)

    def sample_many(
        self,
        keys: jax.Array,
        n_max: int,
        *,
        ns: float | jax.Array | None = None,
        poisson: bool = True,
        flux: PowerLaw | None = None,
    ) -> InjectedEvents:
        """``vmap`` of :meth:`sample` over a batch of keys (leading axis of every output)."""
        f = flux or self.flux
        return jax.vmap(lambda k: sample_signal(self.tables, f, k, ns, n_max=int(n_max), poisson=poisson))(
            keys
        )


def split_by_season(
    events: InjectedEvents, season_names: tuple[str, ...]
) -> dict[str, dict[str, np.ndarray]]:
    """Valid events of one draw as numpy columns per season name."""
    valid = np.asarray(events.valid)
    season = np.asarray(events.season)[valid]
    cols = {
        f: np.asarray(getattr(events, f))[valid]
        for f in ("ra_deg", "dec_deg", "log10_energy", "ang_err_deg", "psf_deg", "log10_enu", "mjd")
    }
    return {name: {k: v[season == i] for k, v in cols.items()} for i, name in enumerate(season_names)}


__all__ = [
    "InjectedEvents",
    "InjectionTables",
    "SignalInjector",
    "build_tables",
    "expected_counts",
    "sample_signal",
    "split_by_season",
]
