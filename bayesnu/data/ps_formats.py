"""File formats of the IceCube point-source track releases (10-year and 14-year).

One reader and one writer per file type, each validating its input completely:

* ``events/<S>_exp.csv``: reconstructed events (MJD, log10 E, AngErr, RA, Dec, azimuth,
  zenith; the 14-year release adds run, event, subevent);
* ``uptime/<S>_exp.csv``: good-run list (MJD_start, MJD_stop);
* ``irfs/<R>_effectiveArea.csv``: muon-neutrino effective area in (log10 E_nu, Dec_nu);
* ``irfs/<R>_smearing.csv``: 5D smearing matrix (E_nu, Dec_nu) -> (log10 E_reco, PSF,
  AngErr) with per-block bin edges.

All angles are stored in degrees exactly as in the files (``*_deg`` attributes);
radian views are provided (``*_rad``). Energies are log10(E/GeV).
The containers are frozen dataclasses registered as JAX pytrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import jax
import numpy as np

from bayesnu.data.textio import Column, TableSchema, TextTable, read_table, write_table
from bayesnu.errors import DataFormatError

# ---------------------------------------------------------------------------- schemas

EVENTS_SCHEMA = TableSchema(
    kind="events",
    columns=(
        Column("mjd", "MJD[days]", ("MJD", "time", "MJD_days")),
        Column("log10_energy", "log10(E/GeV)", ("logE", "log_energy", "log10E")),
        Column("ang_err_deg", "AngErr[deg]", ("AngErr", "ang_err", "sigma")),
        Column("ra_deg", "RA[deg]", ("RA", "ra")),
        Column("dec_deg", "Dec[deg]", ("Dec", "dec")),
        Column("azimuth_deg", "Azimuth[deg]", ("Azimuth", "azi", "az")),
        Column("zenith_deg", "Zenith[deg]", ("Zenith", "zen")),
    ),
)

EVENTS14_SCHEMA = TableSchema(
    kind="events",
    columns=(
        Column("run", "Run", ("run", "RunID", "run_id"), integer=True),
        Column("event", "Event", ("event", "EventID", "event_id"), integer=True),
        Column("subevent", "SubEvent", ("subevent", "SubEventID", "subevent_id", "sub_event"), integer=True),
        *EVENTS_SCHEMA.columns,
    ),
)

UPTIME_SCHEMA = TableSchema(
    kind="uptime",
    columns=(
        Column("mjd_start", "MJD_start[days]", ("MJD_start", "start", "tstart")),
        Column("mjd_stop", "MJD_stop[days]", ("MJD_stop", "stop", "tstop")),
    ),
    optional=(
        Column("run", "Run", ("run", "RunID"), integer=True),
        Column("livetime_days", "livetime[days]", ("livetime",)),
    ),
)

AEFF_SCHEMA = TableSchema(
    kind="effective area",
    columns=(
        Column("log10_enu_min", "log10(E_nu/GeV)_min", ("logEmin_nu", "log10Enu_min", "logE_nu_min")),
        Column("log10_enu_max", "log10(E_nu/GeV)_max", ("logEmax_nu", "log10Enu_max", "logE_nu_max")),
        Column("dec_min_deg", "Dec_nu_min[deg]", ("decmin", "Dec_nu_min", "dec_min")),
        Column("dec_max_deg", "Dec_nu_max[deg]", ("decmax", "Dec_nu_max", "dec_max")),
        Column("aeff_cm2", "A_Eff[cm^2]", ("Aeff", "A_eff", "aeff_cm2")),
    ),
)

SMEARING_SCHEMA = TableSchema(
    kind="smearing matrix",
    columns=(
        Column("log10_enu_min", "log10(E_nu/GeV)_min", ("logEmin_nu", "log10Enu_min")),
        Column("log10_enu_max", "log10(E_nu/GeV)_max", ("logEmax_nu", "log10Enu_max")),
        Column("dec_min_deg", "Dec_nu_min[deg]", ("decmin", "Dec_nu_min")),
        Column("dec_max_deg", "Dec_nu_max[deg]", ("decmax", "Dec_nu_max")),
        Column("log10_ereco_min", "log10(E/GeV)_min", ("logEmin", "log10E_min")),
        Column("log10_ereco_max", "log10(E/GeV)_max", ("logEmax", "log10E_max")),
        Column("psf_min_deg", "PSF_min[deg]", ("psfmin", "PSF_min")),
        Column("psf_max_deg", "PSF_max[deg]", ("psfmax", "PSF_max")),
        Column("ang_err_min_deg", "AngErr_min[deg]", ("angerrmin", "AngErr_min")),
        Column("ang_err_max_deg", "AngErr_max[deg]", ("angerrmax", "AngErr_max")),
        Column("fractional_counts", "Fractional_Counts", ("fractional_count", "fraction", "counts")),
    ),
)

# Fixed-width formats that reproduce the release files byte for byte: every field is
# three spaces followed by a right-justified number (so wide numbers push the line).
EVENTS_FORMATS = ("   %14.8f", "   %11.2f", "   %11.2f", "   %11.3f", "   %11.3f", "   %11.3f", "   %11.3f")
EVENTS14_FORMATS = ("   %8d", "   %9d", "   %3d", *EVENTS_FORMATS)
UPTIME_FORMATS = ("   %14.8f", "   %14.8f")
AEFF_FORMATS = ("   %14.2f", "   %11.2f", "   %11.2f", "   %11.2f", "   %11.2f")
SMEARING_FORMATS = (
    "   %14.2f", "   %11.2f", "   %11.2f", "   %11.2f", "   %11.4f", "   %11.4f",
    "   %11.5f", "   %11.5f", "   %11.5f", "   %11.5f", "   %15.9e",
)  # fmt: skip

_EDGE_TOL = 1e-6


def _register(cls: type, data: list[str], meta: list[str]) -> type:
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True, eq=False)
class EventTable:
    """Reconstructed events of one season.

    Attributes
    ----------
    mjd
        Event time, MJD [days].
    log10_energy
        log10 of the reconstructed muon energy, log10(E/GeV).
    ang_err_deg
        Estimated angular uncertainty [deg] (release floor 0.2 deg).
    ra_deg, dec_deg
        Reconstructed equatorial direction, J2000 [deg].
    azimuth_deg, zenith_deg
        Reconstructed local direction [deg].
    run, event, subevent
        Identifiers (14-year release only; ``None`` for the 10-year release).
    source
        Path of the file the events came from (metadata).
    """

    mjd: np.ndarray
    log10_energy: np.ndarray
    ang_err_deg: np.ndarray
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    azimuth_deg: np.ndarray
    zenith_deg: np.ndarray
    run: np.ndarray | None = None
    event: np.ndarray | None = None
    subevent: np.ndarray | None = None
    source: str = ""

    def __len__(self) -> int:
        return int(np.shape(self.mjd)[0])

    @property
    def ra_rad(self) -> np.ndarray:
        """Right ascension [rad]."""
        return np.deg2rad(self.ra_deg)

    @property
    def dec_rad(self) -> np.ndarray:
        """Declination [rad]."""
        return np.deg2rad(self.dec_deg)

    @property
    def ang_err_rad(self) -> np.ndarray:
        """Angular uncertainty [rad]."""
        return np.deg2rad(self.ang_err_deg)

    @property
    def sin_dec(self) -> np.ndarray:
        """sin(declination)."""
        return np.sin(np.deg2rad(self.dec_deg))

    @property
    def has_ids(self) -> bool:
        """Whether run/event/subevent identifiers are present (14-year release)."""
        return self.run is not None

    def select(self, mask: np.ndarray) -> EventTable:
        """Return the events where ``mask`` is true (or at the given indices)."""

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.asarray(a)[mask]

        return EventTable(
            mjd=take(self.mjd),
            log10_energy=take(self.log10_energy),
            ang_err_deg=take(self.ang_err_deg),
            ra_deg=take(self.ra_deg),
            dec_deg=take(self.dec_deg),
            azimuth_deg=take(self.azimuth_deg),
            zenith_deg=take(self.zenith_deg),
            run=take(self.run),
            event=take(self.event),
            subevent=take(self.subevent),
            source=self.source,
        )  # type: ignore[arg-type]

    @staticmethod
    def concatenate(tables: list[EventTable]) -> EventTable:
        """Concatenate several tables (identifiers kept only if all have them)."""
        ids = all(t.has_ids for t in tables)

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(t, name) for t in tables])

        return EventTable(
            mjd=cat("mjd"),
            log10_energy=cat("log10_energy"),
            ang_err_deg=cat("ang_err_deg"),
            ra_deg=cat("ra_deg"),
            dec_deg=cat("dec_deg"),
            azimuth_deg=cat("azimuth_deg"),
            zenith_deg=cat("zenith_deg"),
            run=cat("run") if ids else None,
            event=cat("event") if ids else None,
            subevent=cat("subevent") if ids else None,
            source="+".join(t.source for t in tables),
        )


_register(
    EventTable,
    ["mjd", "log10_energy", "ang_err_deg", "ra_deg", "dec_deg", "azimuth_deg", "zenith_deg", "run", "event",
     "subevent"],
    ["source"],
)  # fmt: skip


def _check_range(
    table: TextTable,
    name: str,
    lo: float,
    hi: float,
    fix: str,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    v = table.column(name)
    bad = (v < lo) | (v > hi)
    if lo_open:
        bad |= v == lo
    if hi_open:
        bad |= v == hi
    idx = np.flatnonzero(bad)
    if idx.size:
        r = int(idx[0])
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        extra = f" ({idx.size} rows in all)" if idx.size > 1 else ""
        raise table.error(r, name, f"value {v[r]:g} outside {lb}{lo:g}, {hi:g}{rb}{extra}", fix)


def read_events(path: str | Path) -> EventTable:
    """Read and validate an events file of the 10-year or the 14-year release.

    Raises
    ------
    DataFormatError
        Malformed rows, NaN/inf, Dec outside [-90, 90], RA outside [0, 360],
        AngErr <= 0, zenith outside [0, 180], azimuth outside [0, 360].
    """
    path = Path(path)
    head = _first_header_tokens(path)
    schema = (
        EVENTS14_SCHEMA
        if any(Column("run", "Run", ("RunID", "run_id")).matches(t) for t in head)
        else (EVENTS_SCHEMA)
    )
    table = read_table(path, schema)
    _check_range(table, "dec_deg", -90.0, 90.0, "declinations are in degrees within [-90, 90]")
    _check_range(table, "ra_deg", 0.0, 360.0, "right ascensions are in degrees within [0, 360]")
    _check_range(table, "ang_err_deg", 0.0, 180.0, "AngErr must be a positive angle in degrees", lo_open=True)
    _check_range(table, "zenith_deg", 0.0, 180.0, "zenith angles are in degrees within [0, 180]")
    _check_range(table, "azimuth_deg", 0.0, 360.0, "azimuths are in degrees within [0, 360]")
    _check_range(table, "mjd", 0.0, 1e6, "MJD must be a positive day number")
    _check_range(table, "log10_energy", -3.0, 15.0, "log10(E/GeV) must be a plausible energy")
    ids = {
        k: table.column(k).astype(np.int64) if table.has(k) else None for k in ("run", "event", "subevent")
    }
    return EventTable(
        mjd=table.column("mjd").copy(),
        log10_energy=table.column("log10_energy").copy(),
        ang_err_deg=table.column("ang_err_deg").copy(),
        ra_deg=table.column("ra_deg").copy(),
        dec_deg=table.column("dec_deg").copy(),
        azimuth_deg=table.column("azimuth_deg").copy(),
        zenith_deg=table.column("zenith_deg").copy(),
        source=str(path),
        **ids,
    )


def _first_header_tokens(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                return line.lstrip("#").split()
    return []


def write_events(path: str | Path, events: EventTable) -> None:
    """Write events in the release's format (14-year layout when ids are present)."""
    if events.has_ids:
        cols = [events.run, events.event, events.subevent]
        schema, fmts = EVENTS14_SCHEMA, EVENTS14_FORMATS
    else:
        cols, schema, fmts = [], EVENTS_SCHEMA, EVENTS_FORMATS
    cols += [
        events.mjd,
        events.log10_energy,
        events.ang_err_deg,
        events.ra_deg,
        events.dec_deg,
        events.azimuth_deg,
        events.zenith_deg,
    ]
    write_table(path, schema, cols, fmts)


# ---------------------------------------------------------------------------- uptime


@dataclass(frozen=True, eq=False)
class Uptime:
    """Good-run list of one season.

    Attributes
    ----------
    mjd_start, mjd_stop
        Start and stop of each good run, MJD [days].
    source
        File it came from.
    """

    mjd_start: np.ndarray
    mjd_stop: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(np.shape(self.mjd_start)[0])

    @property
    def livetime_days(self) -> float:
        """Livetime [days] = sum of (stop - start) over good runs (release convention).

        This is how the release and SkyLLH define it; runs that overlap (a handful
        in IC86_V..VII) count twice. :attr:`livetime_union_days` merges overlaps.
        """
        return float(np.sum(self.mjd_stop - self.mjd_start))

    @property
    def livetime_union_days(self) -> float:
        """Livetime [days] of the union of good-run intervals (overlaps merged)."""
        start, stop = self.mjd_start, self.mjd_stop
        # Running maximum of previous stops; the part of each run before it is overlap.
        prev_max = np.maximum.accumulate(np.concatenate([[-np.inf], stop[:-1]]))
        eff_start = np.maximum(start, prev_max)
        return float(np.sum(np.clip(stop - eff_start, 0.0, None)))

    @property
    def livetime_s(self) -> float:
        """Livetime in seconds (release convention)."""
        return self.livetime_days * 86400.0

    @property
    def n_overlaps(self) -> int:
        """Number of runs that start before the previous one stopped."""
        return int(np.count_nonzero(self.mjd_start[1:] < self.mjd_stop[:-1]))

    def contains(self, mjd: np.ndarray) -> np.ndarray:
        """Boolean mask: which times fall inside a good run (start <= t <= stop)."""
        mjd = np.asarray(mjd)
        idx = np.searchsorted(self.mjd_start, mjd, side="right") - 1
        ok = idx >= 0
        out = np.zeros(mjd.shape, dtype=bool)
        out[ok] = mjd[ok] <= self.mjd_stop[idx[ok]]
        # Overlapping runs: an event may lie in an earlier, longer run.
        if self.n_overlaps and not out.all():
            cummax = np.maximum.accumulate(self.mjd_stop)
            miss = ok & ~out
            out[miss] = mjd[miss] <= cummax[idx[miss]]
        return out


_register(Uptime, ["mjd_start", "mjd_stop"], ["source"])


def read_uptime(path: str | Path) -> Uptime:
    """Read and validate a good-run list.

    Raises
    ------
    DataFormatError
        Malformed rows, a run with ``MJD_stop <= MJD_start``, or runs not sorted by start.
    """
    table = read_table(path, UPTIME_SCHEMA)
    start, stop = table.column("mjd_start"), table.column("mjd_stop")
    bad = np.flatnonzero(stop <= start)
    if bad.size:
        r = int(bad[0])
        raise table.error(
            r,
            "MJD_stop[days]",
            f"run stops ({stop[r]}) before it starts ({start[r]})",
            "swap or repair the run",
        )
    unsorted = np.flatnonzero(np.diff(start) < 0)
    if unsorted.size:
        r = int(unsorted[0]) + 1
        raise table.error(
            r, "MJD_start[days]", "good runs are not sorted by start time", "sort the file by MJD_start"
        )
    return Uptime(mjd_start=start.copy(), mjd_stop=stop.copy(), source=str(table.path))


def write_uptime(path: str | Path, uptime: Uptime) -> None:
    """Write a good-run list in the release's format."""
    write_table(path, UPTIME_SCHEMA, [uptime.mjd_start, uptime.mjd_stop], UPTIME_FORMATS)


# ---------------------------------------------------------------------------- binning helpers


def _edges_from_rows(
    table: TextTable, lo_name: str, hi_name: str, header: str
) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous bin edges from per-row (min, max) pairs, and each row's bin index.

    Raises if a bin has zero or negative width, if bins overlap or leave gaps.
    """
    lo, hi = table.column(lo_name), table.column(hi_name)
    bad = np.flatnonzero(hi <= lo)
    if bad.size:
        r = int(bad[0])
        raise table.error(r, header, f"bin [{lo[r]:g}, {hi[r]:g}] has no width", "max must exceed min")
    pairs = np.unique(np.round(np.column_stack([lo, hi]), 9), axis=0)
    # Sorted by lower edge; each lower edge must equal the previous upper edge.
    for i in range(1, len(pairs)):
        if abs(pairs[i, 0] - pairs[i - 1, 0]) < _EDGE_TOL:
            r = int(np.flatnonzero(np.isclose(lo, pairs[i, 0]) & np.isclose(hi, pairs[i, 1]))[0])
            raise table.error(
                r,
                header,
                f"bins [{pairs[i - 1, 0]:g}, {pairs[i - 1, 1]:g}] and [{pairs[i, 0]:g}, "
                f"{pairs[i, 1]:g}] overlap",
                "each bin must appear with one lower and one upper edge",
            )
        if abs(pairs[i, 0] - pairs[i - 1, 1]) > _EDGE_TOL:
            kind = "overlap" if pairs[i, 0] < pairs[i - 1, 1] else "leave a gap"
            r = int(np.flatnonzero(np.isclose(lo, pairs[i, 0]) & np.isclose(hi, pairs[i, 1]))[0])
            raise table.error(
                r,
                header,
                f"bins [{pairs[i - 1, 0]:g}, {pairs[i - 1, 1]:g}] and [{pairs[i, 0]:g}, "
                f"{pairs[i, 1]:g}] {kind}",
                "bins must be contiguous and non-overlapping",
            )
    edges = np.concatenate([pairs[:, 0], pairs[-1:, 1]])
    idx = np.searchsorted(pairs[:, 0], np.round(lo, 9) - _EDGE_TOL, side="left")
    return edges, idx


# ---------------------------------------------------------------------------- effective area


@dataclass(frozen=True, eq=False)
class EffectiveArea:
    """Muon-neutrino effective area of one detector configuration.

    Attributes
    ----------
    log10_enu_edges
        ``(n_e + 1,)`` true-energy bin edges, log10(E_nu/GeV).
    dec_edges_deg
        ``(n_dec + 1,)`` true-declination bin edges [deg].
    aeff_cm2
        ``(n_dec, n_e)`` bin-averaged effective area [cm^2].
    source
        File it came from.
    """

    log10_enu_edges: np.ndarray
    dec_edges_deg: np.ndarray
    aeff_cm2: np.ndarray
    source: str = ""

    @property
    def dec_edges_rad(self) -> np.ndarray:
        """Declination edges [rad]."""
        return np.deg2rad(self.dec_edges_deg)

    @property
    def sin_dec_edges(self) -> np.ndarray:
        """sin(declination) edges."""
        return np.sin(np.deg2rad(self.dec_edges_deg))

    @property
    def enu_edges_gev(self) -> np.ndarray:
        """True-energy edges [GeV]."""
        return 10.0**self.log10_enu_edges

    def dec_index(self, dec_deg: float | np.ndarray) -> np.ndarray:
        """Index of the declination bin containing ``dec_deg`` (upper edge included in last bin)."""
        e = self.dec_edges_deg
        return np.clip(np.searchsorted(e, dec_deg, side="right") - 1, 0, len(e) - 2)

    def integral_cm2_gev_sr(self) -> float:
        """Integral of A_eff over true energy [GeV] and solid angle [sr] (a spot-check quantity)."""
        de = np.diff(self.enu_edges_gev)
        domega = 2.0 * np.pi * np.diff(self.sin_dec_edges)
        return float(np.sum(self.aeff_cm2 * de[None, :] * domega[:, None]))


_register(EffectiveArea, ["log10_enu_edges", "dec_edges_deg", "aeff_cm2"], ["source"])


def read_effective_area(path: str | Path) -> EffectiveArea:
    """Read and validate an effective-area file.

    Raises
    ------
    DataFormatError
        Malformed rows, non-contiguous or overlapping bins, a (energy, dec) bin given
        twice or missing, negative effective area.
    """
    table = read_table(path, AEFF_SCHEMA)
    e_edges, ie = _edges_from_rows(table, "log10_enu_min", "log10_enu_max", "log10(E_nu/GeV)_min")
    d_edges, idec = _edges_from_rows(table, "dec_min_deg", "dec_max_deg", "Dec_nu_min[deg]")
    _check_range(table, "dec_min_deg", -90.0, 90.0, "declinations are in degrees within [-90, 90]")
    _check_range(table, "dec_max_deg", -90.0, 90.0, "declinations are in degrees within [-90, 90]")
    aeff = table.column("aeff_cm2")
    neg = np.flatnonzero(aeff < 0)
    if neg.size:
        raise table.error(int(neg[0]), "A_Eff[cm^2]", "negative effective area", "A_eff must be >= 0")
    n_e, n_d = len(e_edges) - 1, len(d_edges) - 1
    grid = np.full((n_d, n_e), np.nan)
    flat = idec * n_e + ie
    order = np.argsort(flat, kind="stable")
    dup = np.flatnonzero(np.diff(flat[order]) == 0)
    if dup.size:
        r = int(order[dup[0] + 1])
        raise table.error(
            r,
            "log10(E_nu/GeV)_min",
            "this (energy, declination) bin appears twice",
            "remove the duplicated row",
        )
    grid[idec, ie] = aeff
    if np.isnan(grid).any():
        d, e = np.argwhere(np.isnan(grid))[0]
        raise DataFormatError(
            f"no row for the bin log10(E_nu/GeV) [{e_edges[e]:g}, {e_edges[e + 1]:g}], Dec_nu "
            f"[{d_edges[d]:g}, {d_edges[d + 1]:g}] ({int(np.isnan(grid).sum())} bins missing)",
            path=table.path,
            field="A_Eff[cm^2]",
            fix="the effective area must list every (energy, declination) bin of its grid",
        )
    return EffectiveArea(
        log10_enu_edges=e_edges, dec_edges_deg=d_edges, aeff_cm2=grid, source=str(table.path)
    )


def write_effective_area(path: str | Path, aeff: EffectiveArea) -> None:
    """Write an effective area in the release's format (declination-major order)."""
    e, d = aeff.log10_enu_edges, aeff.dec_edges_deg
    n_e, n_d = len(e) - 1, len(d) - 1
    ie = np.tile(np.arange(n_e), n_d)
    idec = np.repeat(np.arange(n_d), n_e)
    write_table(
        path,
        AEFF_SCHEMA,
        [e[ie], e[ie + 1], d[idec], d[idec + 1], aeff.aeff_cm2[idec, ie]],
        AEFF_FORMATS,
    )


# ---------------------------------------------------------------------------- smearing


@dataclass(frozen=True, eq=False)
class SmearingMatrix:
    """5D smearing matrix of one detector configuration.

    The matrix maps each true bin (E_nu, Dec_nu) to fractional counts in
    (log10 E_reco, PSF, AngErr), with bin edges that vary per true bin (and per
    reco-energy bin for PSF, per PSF bin for AngErr), as in the release.

    Attributes
    ----------
    log10_enu_edges
        ``(n_e + 1,)`` true-energy edges, log10(E_nu/GeV).
    dec_edges_deg
        ``(n_dec + 1,)`` true-declination edges [deg].
    reco_edges
        ``(n_e, n_dec, n_reco + 1)`` reco-energy edges, log10(E/GeV).
    psf_edges_deg
        ``(n_e, n_dec, n_reco, n_psf + 1)`` edges of the true angle between neutrino
        and reconstructed muon [deg].
    ang_err_edges_deg
        ``(n_e, n_dec, n_reco, n_psf, n_angerr + 1)`` AngErr edges [deg].
    fractional_counts
        ``(n_e, n_dec, n_reco, n_psf, n_angerr)`` fraction of the simulated events of
        the true bin that fall in each 3D reco bin.
    source
        File it came from.
    """

    log10_enu_edges: np.ndarray
    dec_edges_deg: np.ndarray
    reco_edges: np.ndarray
    psf_edges_deg: np.ndarray
    ang_err_edges_deg: np.ndarray
    fractional_counts: np.ndarray
    source: str = ""

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """(n_e, n_dec, n_reco, n_psf, n_angerr)."""
        return tuple(self.fractional_counts.shape)  # type: ignore[return-value]

    @property
    def dec_edges_rad(self) -> np.ndarray:
        """Declination edges [rad]."""
        return np.deg2rad(self.dec_edges_deg)

    def dec_index(self, dec_deg: float | np.ndarray) -> np.ndarray:
        """Index of the true-declination bin containing ``dec_deg``."""
        e = self.dec_edges_deg
        return np.clip(np.searchsorted(e, dec_deg, side="right") - 1, 0, len(e) - 2)

    @cached_property
    def block_valid(self) -> np.ndarray:
        """``(n_e, n_dec)`` mask of true bins that have any reco-energy distribution."""
        return (np.diff(self.reco_edges, axis=-1) > 0).any(axis=-1) & (
            self.fractional_counts.sum(axis=(2, 3, 4)) > 0
        )

    def reco_energy_pdf(self, ie: int, idec: int) -> tuple[np.ndarray, np.ndarray]:
        """Reco-energy density of one true bin: (edges, density per unit log10 E_reco)."""
        edges = self.reco_edges[ie, idec]
        frac = self.fractional_counts[ie, idec].sum(axis=(1, 2))
        width = np.diff(edges)
        dens = np.where(width > 0, frac / np.where(width > 0, width, 1.0), 0.0)
        return edges, dens


_register(
    SmearingMatrix,
    ["log10_enu_edges", "dec_edges_deg", "reco_edges", "psf_edges_deg", "ang_err_edges_deg",
     "fractional_counts"],
    ["source"],
)  # fmt: skip


def _count_leading_bins(lo: np.ndarray, hi: np.ndarray) -> int:
    """Number of distinct bins at the start of a block (edges increase until they reset)."""
    valid = hi - lo > 0
    vals = lo[valid]
    if vals.size == 0:
        return 0
    n, prev = 1, vals[0]
    for v in vals[1:]:
        if v < prev - _EDGE_TOL:
            break
        if v > prev + _EDGE_TOL:
            n += 1
            prev = v
    return n


def read_smearing(path: str | Path, *, sum_tolerance: float = 1e-4) -> SmearingMatrix:
    """Read and validate a 5D smearing-matrix file.

    The file lists, for every true bin (E_nu, Dec_nu), ``n_reco * n_psf * n_angerr``
    rows in (reco energy, PSF, AngErr) order, with that block's own bin edges.

    Parameters
    ----------
    path
        The ``*_smearing.csv`` file.
    sum_tolerance
        Fractional counts of a true bin may sum to at most ``1 + sum_tolerance``
        (values in the file are rounded).

    Raises
    ------
    DataFormatError
        Malformed rows, true bins not on a complete grid, blocks of unequal size,
        non-monotonic or overlapping reco/PSF/AngErr bins, negative counts, or
        fractional counts of one true bin that sum to more than 1.
    """
    table = read_table(path, SMEARING_SCHEMA)
    v = {c: table.column(c) for c in table.columns}
    e_edges, ie = _edges_from_rows(table, "log10_enu_min", "log10_enu_max", "log10(E_nu/GeV)_min")
    d_edges, idec = _edges_from_rows(table, "dec_min_deg", "dec_max_deg", "Dec_nu_min[deg]")
    n_e, n_d = len(e_edges) - 1, len(d_edges) - 1
    n_rows = len(table)
    if n_rows % (n_e * n_d):
        raise DataFormatError(
            f"{n_rows} rows cannot be split into {n_e}x{n_d} equal (E_nu, Dec_nu) blocks",
            path=table.path,
            field="Fractional_Counts",
            fix="every true bin needs the same number of (reco E, PSF, AngErr) rows",
        )
    block = n_rows // (n_e * n_d)
    # Row order must be E_nu-major, then Dec_nu, as in the release.
    expected_flat = np.repeat(np.arange(n_e * n_d), block)
    flat = ie * n_d + idec
    wrong = np.flatnonzero(flat != expected_flat)
    if wrong.size:
        r = int(wrong[0])
        raise table.error(
            r,
            "log10(E_nu/GeV)_min",
            "rows are not grouped by true bin in (E_nu, Dec_nu) order",
            "write all rows of one (E_nu, Dec_nu) bin together, E_nu-major, as the release does",
        )
    first_valid = next(
        (
            b
            for b in range(n_e * n_d)
            if (
                v["log10_ereco_max"][b * block : (b + 1) * block]
                > v["log10_ereco_min"][b * block : (b + 1) * block]
            ).any()
        ),
        None,
    )
    if first_valid is None:
        raise DataFormatError(
            "no true bin has any reco-energy bin",
            path=table.path,
            field="log10(E/GeV)_min",
            fix="the smearing matrix is empty; regenerate it",
        )
    sl = slice(first_valid * block, (first_valid + 1) * block)
    n_r = _count_leading_bins(v["log10_ereco_min"][sl], v["log10_ereco_max"][sl])
    if n_r == 0 or block % n_r:
        raise DataFormatError(
            f"cannot split a block of {block} rows into {n_r} reco-energy bins",
            path=table.path,
            line=table.line_of(sl.start),
            field="log10(E/GeV)_min",
            fix="each reco-energy bin needs the same number of (PSF, AngErr) rows",
        )
    per_r = block // n_r
    n_p = _count_leading_bins(v["psf_min_deg"][sl][:per_r], v["psf_max_deg"][sl][:per_r])
    if n_p == 0 or per_r % n_p:
        raise DataFormatError(
            f"cannot split {per_r} rows of a reco-energy bin into {n_p} PSF bins",
            path=table.path,
            line=table.line_of(sl.start),
            field="PSF_min[deg]",
            fix="each PSF bin needs the same number of AngErr rows",
        )
    n_a = per_r // n_p
    shape5 = (n_e, n_d, n_r, n_p, n_a)

    def r5(name: str) -> np.ndarray:
        return v[name].reshape(shape5)

    lo_r, hi_r = r5("log10_ereco_min"), r5("log10_ereco_max")
    lo_p, hi_p = r5("psf_min_deg"), r5("psf_max_deg")
    lo_a, hi_a = r5("ang_err_min_deg"), r5("ang_err_max_deg")
    frac = r5("fractional_counts")

    def row_of(index: tuple[int, ...]) -> int:
        return int(np.ravel_multi_index(index, shape5))

    # Edges must be constant where the layout says they are shared: reco-energy
    # edges across the PSF and AngErr rows of a reco bin, PSF edges across AngErr rows.
    for arr, ref, header in (
        (lo_r, lo_r[:, :, :, :1, :1], "log10(E/GeV)_min"),
        (hi_r, hi_r[:, :, :, :1, :1], "log10(E/GeV)_max"),
        (lo_p, lo_p[..., :1], "PSF_min[deg]"),
        (hi_p, hi_p[..., :1], "PSF_max[deg]"),
    ):
        diff = np.abs(arr - ref) > _EDGE_TOL
        if diff.any():
            raise table.error(
                row_of(tuple(int(i) for i in np.argwhere(diff)[0])),
                header,
                "bin edges change inside a bin of the enclosing axis",
                "rows of one reco-energy (PSF) bin must repeat the same edges",
            )
    reco_lo, reco_hi = lo_r[:, :, :, 0, 0], hi_r[:, :, :, 0, 0]
    psf_lo, psf_hi = lo_p[:, :, :, :, 0], hi_p[:, :, :, :, 0]
    for lo, hi, header in (
        (reco_lo, reco_hi, "log10(E/GeV)_min"),
        (psf_lo, psf_hi, "PSF_min[deg]"),
        (lo_a, hi_a, "AngErr_min[deg]"),
    ):
        width = hi - lo
        neg = np.argwhere(width < -_EDGE_TOL)
        if neg.size:
            idx = tuple(int(i) for i in neg[0]) + (0,) * (5 - neg.shape[1])
            raise table.error(row_of(idx), header, "bin upper edge below lower edge", "swap min and max")
        valid = width > 0
        # Consecutive valid bins must not overlap and must be increasing.
        bad = valid[..., 1:] & valid[..., :-1] & (lo[..., 1:] < hi[..., :-1] - _EDGE_TOL)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            idx = (*idx[:-1], idx[-1] + 1, *(0,) * (5 - len(idx)))
            raise table.error(
                row_of(idx),
                header,
                "bins are not increasing or overlap",
                "edges of consecutive bins must increase without overlap",
            )
    for name, arr in (("PSF_min[deg]", psf_lo), ("AngErr_min[deg]", lo_a)):
        neg = np.argwhere(arr < 0)
        if neg.size:
            idx = tuple(int(i) for i in neg[0]) + (0,) * (5 - neg.shape[1])
            raise table.error(row_of(idx), name, "negative angle", "angles are >= 0 degrees")
    negf = np.argwhere(frac < 0)
    if negf.size:
        raise table.error(
            row_of(tuple(int(i) for i in negf[0])),
            "Fractional_Counts",
            "negative fraction",
            "fractional counts are >= 0",
        )
    sums = frac.sum(axis=(2, 3, 4))
    over = np.argwhere(sums > 1.0 + sum_tolerance)
    if over.size:
        e, d = (int(i) for i in over[0])
        raise table.error(
            row_of((e, d, 0, 0, 0)),
            "Fractional_Counts",
            f"fractional counts of the true bin log10(E_nu/GeV) [{e_edges[e]:g}, {e_edges[e + 1]:g}], "
            f"Dec_nu [{d_edges[d]:g}, {d_edges[d + 1]:g}] sum to {sums[e, d]:.6g} > 1",
            "fractions of one true bin are shares of its simulated events and cannot exceed 1",
        )
    reco_edges = np.concatenate([reco_lo, reco_hi[..., -1:]], axis=-1)
    psf_edges = np.concatenate([psf_lo, psf_hi[..., -1:]], axis=-1)
    ang_edges = np.concatenate([lo_a, hi_a[..., -1:]], axis=-1)
    return SmearingMatrix(
        log10_enu_edges=e_edges,
        dec_edges_deg=d_edges,
        reco_edges=reco_edges,
        psf_edges_deg=psf_edges,
        ang_err_edges_deg=ang_edges,
        fractional_counts=frac.copy(),
        source=str(table.path),
    )


def write_smearing(path: str | Path, sm: SmearingMatrix) -> None:
    """Write a smearing matrix in the release's row layout."""
    n_e, n_d, n_r, n_p, n_a = sm.shape
    shape5 = (n_e, n_d, n_r, n_p, n_a)
    ie, idec, ir, ip, ia = np.meshgrid(*(np.arange(n) for n in shape5), indexing="ij")
    ie, idec, ir, ip, ia = (a.ravel() for a in (ie, idec, ir, ip, ia))
    cols = [
        sm.log10_enu_edges[ie],
        sm.log10_enu_edges[ie + 1],
        sm.dec_edges_deg[idec],
        sm.dec_edges_deg[idec + 1],
        sm.reco_edges[ie, idec, ir],
        sm.reco_edges[ie, idec, ir + 1],
        sm.psf_edges_deg[ie, idec, ir, ip],
        sm.psf_edges_deg[ie, idec, ir, ip + 1],
        sm.ang_err_edges_deg[ie, idec, ir, ip, ia],
        sm.ang_err_edges_deg[ie, idec, ir, ip, ia + 1],
        sm.fractional_counts.ravel(),
    ]
    write_table(path, SMEARING_SCHEMA, cols, SMEARING_FORMATS)


__all__ = [
    "AEFF_SCHEMA",
    "EVENTS14_SCHEMA",
    "EVENTS_SCHEMA",
    "SMEARING_SCHEMA",
    "UPTIME_SCHEMA",
    "EffectiveArea",
    "EventTable",
    "SmearingMatrix",
    "Uptime",
    "read_effective_area",
    "read_events",
    "read_smearing",
    "read_uptime",
    "write_effective_area",
    "write_events",
    "write_smearing",
    "write_uptime",
]
