"""Host-side construction of the point-source likelihood inputs from loaded seasons.

:class:`SeasonModel` holds, per season, everything the likelihood needs that does not
depend on the source: the data-driven background PDFs, the effective area and smearing
matrix, the livetime, and caches of the source-dependent tables (signal energy PDFs
per declination bin, yields). :func:`build_inputs` selects events around a source and
stacks all seasons into one padded :class:`~bayesnu.likelihood.pointsource.PSInputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from bayesnu.data.ps_formats import EventTable
from bayesnu.data.ps_release import PSRelease, Season
from bayesnu.errors import ConfigError, DataFormatError
from bayesnu.flux import E0_DEFAULT_GEV
from bayesnu.irf.background import (
    EnergyBackground,
    SpatialBackground,
    build_energy_background,
    build_spatial_background,
)
from bayesnu.irf.energy import GAMMA_GRID, SignalEnergyPDF, build_signal_energy_pdf
from bayesnu.irf.interp import array_namespace
from bayesnu.irf.yields import log_yield_vs_gamma
from bayesnu.likelihood.pointsource import PSEvents, PSInputs

_RESOLUTION = float(np.finfo(np.float64).resolution)
#: The detector yield is tabulated this many times finer in gamma than the energy PDFs.
YIELD_SUBDIVISION = 10
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class ResponseSettings:
    """Settings of the response tables (shared by all seasons of an analysis).

    Attributes
    ----------
    gamma_grid
        Uniform grid of spectral indices for the tables.
    e0_gev, e_cut_gev
        Reference and cut-off energy of the flux model [GeV].
    dec_axis
        Declination axis of the yield spline (``"sin_dec"``; ``"skyllh"`` reproduces
        SkyLLH's convention, see :mod:`bayesnu.irf.yields`).
    interp
        Interpolation along gamma: ``"hermite"`` (C1, default) or ``"parabola"`` (SkyLLH).
    """

    gamma_grid: tuple[float, ...] = tuple(GAMMA_GRID)
    e0_gev: float = E0_DEFAULT_GEV
    e_cut_gev: float | None = None
    dec_axis: str = "sin_dec"
    interp: str = "hermite"

    def __post_init__(self) -> None:
        g = np.asarray(self.gamma_grid)
        if g.ndim != 1 or len(g) < 4 or not np.allclose(np.diff(g), g[1] - g[0]):
            raise ConfigError("gamma_grid must be uniform with at least 4 nodes")
        if self.interp not in ("hermite", "parabola"):
            raise ConfigError("interp must be 'hermite' or 'parabola'")


class SeasonModel:
    """Source-independent part of the point-source likelihood for one season.

    Parameters
    ----------
    season
        A loaded season with events, effective area and smearing matrix.
    settings
        Response settings.
    """

    def __init__(self, season: Season, settings: ResponseSettings | None = None) -> None:
        if season.events is None:
            raise DataFormatError(
                f"season {season.name} has no events", fix="load the release with its events files"
            )
        if season.smearing is None:
            raise DataFormatError(
                f"the smearing matrix of season {season.name} is missing",
                path=season.spec.smearing_file,
                fix="the point-source likelihood needs it: download the full release or simulate one "
                f"with 'bayesnu data simulate --out DIR --complete-from <release> --seasons {season.name}'",
            )
        self.settings = settings or ResponseSettings()
        self.season = season
        self.name = season.name
        self.events: EventTable = season.events
        self.n_events = len(season.events)
        self.livetime_s = season.livetime_s
        self.log10_e_edges = np.asarray(season.spec.log10_energy_edges, dtype=float)
        self.sin_dec_edges = np.asarray(season.spec.sin_dec_edges, dtype=float)
        ev = season.events
        self.spatial_bkg: SpatialBackground = build_spatial_background(
            ev.sin_dec, self.sin_dec_edges, season.name
        )
        self.energy_bkg: EnergyBackground = build_energy_background(
            ev.log10_energy, ev.sin_dec, self.log10_e_edges, self.sin_dec_edges
        )
        self._energy_cache: dict[tuple[int, int], SignalEnergyPDF] = {}
        self._yield_cache: dict[float, np.ndarray] = {}

    def _dec_key(self, dec_rad: float) -> tuple[int, int]:
        aeff, sm = self.season.effective_area, self.season.smearing
        a = int(
            np.clip(np.digitize(dec_rad, np.deg2rad(aeff.dec_edges_deg)) - 1, 0, aeff.aeff_cm2.shape[0] - 1)
        )
        s = int(np.clip(np.digitize(dec_rad, np.deg2rad(sm.dec_edges_deg)) - 1, 0, len(sm.dec_edges_deg) - 2))
        return a, s

    def signal_energy(self, dec_rad: float) -> SignalEnergyPDF:
        """Signal energy PDF table for a source at ``dec_rad`` (cached per response bin)."""
        key = self._dec_key(dec_rad)
        if key not in self._energy_cache:
            st = self.settings
            self._energy_cache[key] = build_signal_energy_pdf(
                self.season.effective_area,
                self.season.smearing,
                dec_rad,
                self.log10_e_edges,
                np.asarray(st.gamma_grid),
                e0_gev=st.e0_gev,
                e_cut_gev=st.e_cut_gev,
            )
        return self._energy_cache[key]

    @property
    def yield_gamma_grid(self) -> np.ndarray:
        """Gamma grid of :meth:`log_yield` (the energy grid subdivided ``YIELD_SUBDIVISION`` times)."""
        g = np.asarray(self.settings.gamma_grid)
        return np.linspace(g[0], g[-1], (len(g) - 1) * YIELD_SUBDIVISION + 1)

    def log_yield(self, dec_rad: float) -> np.ndarray:
        """ln Y per unit Phi0 at ``dec_rad`` on :attr:`yield_gamma_grid`."""
        key = round(float(dec_rad), 12)
        if key not in self._yield_cache:
            st = self.settings
            self._yield_cache[key] = log_yield_vs_gamma(
                self.season.effective_area,
                self.livetime_s,
                dec_rad,
                np.asarray(st.gamma_grid),
                eval_gamma=self.yield_gamma_grid,
                dec_axis=st.dec_axis,
                e0_gev=st.e0_gev,
                e_cut_gev=st.e_cut_gev,
            )
        return self._yield_cache[key]

    def energy_ratio(self, sig: SignalEnergyPDF, log10_e: np.ndarray, sin_dec: np.ndarray) -> np.ndarray:
        """S_E/B_E on the gamma grid for events, ``(n, K)``, with SkyLLH's conventions.

        A zero background density gives S/(float64 resolution); infinities become the
        largest float32.
        """
        s = sig.pdf_grid(np.asarray(log10_e))
        b = self.energy_bkg.pdf(np.asarray(log10_e), np.asarray(sin_dec))
        return energy_ratio_values(s, b)


def energy_ratio_values(s_grid, b):
    """S_E/B_E with SkyLLH's conventions (numpy or JAX arrays).

    ``s_grid`` ``(n, K)`` signal densities on the gamma grid, ``b`` ``(n,)`` background
    densities. A zero background density gives S/(float64 resolution); infinities become
    the largest float32.
    """
    xp = array_namespace(s_grid, b)
    b = xp.asarray(b)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = xp.where(b > 0, s_grid / xp.where(b > 0, b, 1.0), s_grid / _RESOLUTION)
    return xp.where(xp.isposinf(r), _F32_MAX, r)


def box_selection(
    ev_ra: np.ndarray, ev_dec: np.ndarray, src_ra: float, src_dec: float, delta: float
) -> np.ndarray:
    """SkyLLH's spatial box around a source (all angles in radians).

    Events with dec in (dec_s - delta, dec_s + delta) and an RA difference smaller than
    delta / min(cos(dec_s - delta), cos(dec_s + delta)) (capped at 2 pi).
    """
    dmin = max(-np.pi / 2, src_dec - delta)
    dmax = min(np.pi / 2, src_dec + delta)
    cosfact = min(np.cos(dmin), np.cos(dmax))
    dra = min(2 * np.pi, abs(delta / cosfact)) if cosfact > 0 else 2 * np.pi
    diff = np.abs(ev_ra - src_ra)
    diff = np.where(diff >= np.pi, 2 * np.pi - diff, diff)
    return (diff < dra) & (ev_dec > dmin) & (ev_dec < dmax)


def selection_masks(
    events: Sequence[EventTable], src_ra_rad: float, src_dec_rad: float, selection_deg: float | None
) -> list[np.ndarray]:
    """Per season, the events :func:`build_inputs` keeps (in the order it stacks them)."""
    if selection_deg is None:
        return [np.ones(len(ev), dtype=bool) for ev in events]
    delta = np.deg2rad(selection_deg)
    return [box_selection(ev.ra_rad, ev.dec_rad, src_ra_rad, src_dec_rad, delta) for ev in events]


def build_inputs(
    models: Sequence[SeasonModel],
    src_ra_rad: float,
    src_dec_rad: float,
    *,
    selection_deg: float | None = 10.0,
    pad_to: int | None = None,
    events: Sequence[EventTable] | None = None,
) -> PSInputs:
    """Stack the selected events of all seasons into :class:`PSInputs` for one source.

    Parameters
    ----------
    models
        One :class:`SeasonModel` per season.
    src_ra_rad, src_dec_rad
        Source position [rad].
    selection_deg
        Half-size of SkyLLH's box selection [deg]; ``None`` keeps all events.
    pad_to
        Pad the event arrays to this length (static shapes across calls); default:
        the next power of two of the number of selected events.
    events
        Replace the seasons' events (e.g. pseudo-data); background PDFs still come
        from the season models.
    """
    if not models:
        raise ConfigError("no season given")
    if not -np.pi / 2 <= src_dec_rad <= np.pi / 2:
        raise ConfigError(f"source declination {np.rad2deg(src_dec_rad):g} deg is outside [-90, 90]")
    st = models[0].settings
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("ra", "dec", "sigma", "bsp", "er", "season")}
    n_total, n_out, log_yield = [], [], []
    tables = [m.events for m in models] if events is None else list(events)
    masks = selection_masks(tables, src_ra_rad, src_dec_rad, selection_deg)
    for s, m in enumerate(models):
        ev, sel = tables[s], masks[s]
        ra, dec = ev.ra_rad, ev.dec_rad
        sig = m.signal_energy(src_dec_rad)
        sin_dec = np.sin(dec[sel])
        cols["ra"].append(ra[sel])
        cols["dec"].append(dec[sel])
        cols["sigma"].append(ev.ang_err_rad[sel])
        cols["bsp"].append(m.spatial_bkg.pdf(sin_dec))
        cols["er"].append(m.energy_ratio(sig, ev.log10_energy[sel], sin_dec))
        cols["season"].append(np.full(int(sel.sum()), s, dtype=np.int32))
        n_total.append(len(ev))
        n_out.append(len(ev) - int(sel.sum()))
        log_yield.append(m.log_yield(src_dec_rad))
    n_sel = sum(len(a) for a in cols["ra"])
    if n_sel == 0:
        raise ConfigError(
            f"no event within {selection_deg} deg of the source at (RA, Dec) = "
            f"({np.rad2deg(src_ra_rad):.3f}, {np.rad2deg(src_dec_rad):.3f}) deg; the event selection is empty"
        )
    size = pad_to if pad_to is not None else int(2 ** np.ceil(np.log2(max(n_sel, 16))))
    if size < n_sel:
        raise ConfigError(f"pad_to={size} is smaller than the {n_sel} selected events")
    pad = size - n_sel
    k = len(st.gamma_grid)

    def cat(name: str, fill: float) -> np.ndarray:
        a = np.concatenate(cols[name])
        shape = (pad, *a.shape[1:]) if a.ndim > 1 else (pad,)
        return np.concatenate([a, np.full(shape, fill, dtype=a.dtype)])

    er = np.concatenate(cols["er"]) if n_sel else np.zeros((0, k))
    er = np.concatenate([er, np.zeros((pad, k))])
    events_arr = PSEvents(
        ra=jnp.asarray(cat("ra", 0.0)),
        dec=jnp.asarray(cat("dec", 0.0)),
        sigma=jnp.asarray(cat("sigma", 1.0)),
        bkg_spatial=jnp.asarray(cat("bsp", 1.0)),
        energy_ratio=jnp.asarray(er),
        season=jnp.asarray(cat("season", 0).astype(np.int32)),
        valid=jnp.asarray(np.arange(size) < n_sel),
    )
    g = np.asarray(st.gamma_grid)
    return PSInputs(
        events=events_arr,
        n_total=jnp.asarray(np.asarray(n_total, dtype=float)),
        n_outside=jnp.asarray(np.asarray(n_out, dtype=float)),
        log_yield=jnp.asarray(np.stack(log_yield)),
        src_ra=jnp.asarray(src_ra_rad, dtype=float),
        src_dec=jnp.asarray(src_dec_rad, dtype=float),
        gamma0=float(g[0]),
        dgamma=float(g[1] - g[0]),
        interp=st.interp,
        yield_g0=float(g[0]),
        yield_dg=float(g[1] - g[0]) / YIELD_SUBDIVISION,
        n_total_min=float(min(n_total)),
    )


def season_models(
    release: PSRelease | Sequence[Season], settings: ResponseSettings | None = None
) -> list[SeasonModel]:
    """Build one :class:`SeasonModel` per season of a release (or a list of seasons)."""
    seasons = list(release) if not isinstance(release, PSRelease) else list(release.seasons.values())
    return [SeasonModel(s, settings) for s in seasons]
