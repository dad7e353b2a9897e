"""The IceCube point-source track releases as a whole: seasons, files, loading.

Two releases are known:

``10y``
    "IceCube Data for Neutrino Point-Source Searches: Years 2008-2018"
    (IceTracks-DR1, arXiv:2101.09836, DOI 10.7910/DVN/VKL316). Seasons IC40, IC59,
    IC79, IC86_I and IC86_II..IC86_VII; IC86_III..VII use IC86_II's response files.
``14y``
    IceTracks-DR2, 2008-2022 (the release SkyLLH calls ``PublicData_14y_ps``). Seasons
    IC40, IC59, IC79, IC86_I..IC86_XI; all IC86 seasons share ``IC86_*`` response
    files; events carry run/event/subevent columns; the smearing files have a finer
    declination binning.

Each season also carries the (sin dec, log10 E) binning that the data-driven
background PDFs of the point-source likelihood use; these are the binnings of
SkyLLH's public-data dataset definitions, so that both codes build the same PDFs.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from bayesnu.data.ps_formats import (
    EffectiveArea,
    EventTable,
    SmearingMatrix,
    Uptime,
    read_effective_area,
    read_events,
    read_smearing,
    read_uptime,
)
from bayesnu.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)


def _sindec_bins(*pieces: tuple[float, float, int]) -> np.ndarray:
    return np.unique(np.concatenate([np.linspace(a, b, n + 1) for a, b, n in pieces]))


def _loge_bins(lo: float, hi: float) -> np.ndarray:
    return np.arange(lo, hi + 0.01, 0.125)


@dataclass(frozen=True)
class SeasonSpec:
    """Static description of one season of a release.

    Attributes
    ----------
    name
        Season name, e.g. ``"IC86_II"``.
    response
        Name of the detector configuration whose ``irfs/<response>_*.csv`` files apply.
    sin_dec_edges
        Binning of the data-driven background PDFs in sin(dec).
    log10_energy_edges
        Binning of the background energy PDF and of the signal energy PDF in log10(E/GeV).
    n_events_published
        Number of events of the season in the release (for simulation defaults).
    """

    name: str
    response: str
    sin_dec_edges: np.ndarray = field(repr=False)
    log10_energy_edges: np.ndarray = field(repr=False)
    n_events_published: int = 0

    @property
    def events_file(self) -> str:
        """Path of the events file relative to the release directory."""
        return f"events/{self.name}_exp.csv"

    @property
    def uptime_file(self) -> str:
        """Path of the good-run list relative to the release directory."""
        return f"uptime/{self.name}_exp.csv"

    @property
    def aeff_file(self) -> str:
        """Path of the effective-area file relative to the release directory."""
        return f"irfs/{self.response}_effectiveArea.csv"

    @property
    def smearing_file(self) -> str:
        """Path of the smearing-matrix file relative to the release directory."""
        return f"irfs/{self.response}_smearing.csv"


@dataclass(frozen=True)
class ReleaseSpec:
    """Static description of a release (its seasons, download address, layout)."""

    key: str
    name: str
    title: str
    seasons: tuple[SeasonSpec, ...]
    sub_path: str
    url: str | None
    sha256: str | None
    has_event_ids: bool
    doi: str

    @property
    def season_names(self) -> tuple[str, ...]:
        """All season names in time order."""
        return tuple(s.name for s in self.seasons)

    def season(self, name: str) -> SeasonSpec:
        """Spec of one season, with a clear error for an unknown name."""
        for s in self.seasons:
            if s.name == name:
                return s
        raise ConfigError(
            f"season {name!r} does not exist in the {self.key} release; "
            f"valid seasons are {', '.join(self.season_names)}"
        )


_IC40_SD = _sindec_bins((-1.0, -0.25, 10), (-0.25, 0.0, 10), (0.0, 1.0, 10))
_IC59_SD = _sindec_bins((-1.0, -0.95, 2), (-0.95, -0.25, 25), (-0.25, 0.05, 15), (0.05, 1.0, 10))
_IC79_SD = np.linspace(-1.0, 1.0, 50)
_B = float(np.sin(np.radians(-5.0)))
_IC86I_SD = _sindec_bins((-1.0, -0.2, 10), (-0.2, _B, 4), (_B, 0.2, 5), (0.2, 1.0, 9))
_IC86II_SD = _sindec_bins((-1.0, -0.93, 4), (-0.93, -0.3, 10), (-0.3, 0.05, 9), (0.05, 1.0, 18))

#: Events per season used as simulation defaults: IC40 is exact (36,900); the others are
#: the approximate per-season counts of the release (IC59 ~107k, IC79 ~93k,
#: IC86_I ~136k, later seasons ~110-125k).
_N10 = {
    "IC40": 36900,
    "IC59": 107011,
    "IC79": 93133,
    "IC86_I": 136244,
    "IC86_II": 112858,
    "IC86_III": 122541,
    "IC86_IV": 114834,
    "IC86_V": 118354,
    "IC86_VI": 119703,
    "IC86_VII": 124000,
}

RELEASE_10Y = ReleaseSpec(
    key="10y",
    name="icecube-10y-ps",
    title="IceCube Data for Neutrino Point-Source Searches: Years 2008-2018 (IceTracks-DR1)",
    seasons=(
        SeasonSpec("IC40", "IC40", _IC40_SD, _loge_bins(2.0, 9.5), _N10["IC40"]),
        SeasonSpec("IC59", "IC59", _IC59_SD, _loge_bins(2.0, 9.5), _N10["IC59"]),
        SeasonSpec("IC79", "IC79", _IC79_SD, _loge_bins(2.0, 9.5), _N10["IC79"]),
        SeasonSpec("IC86_I", "IC86_I", _IC86I_SD, _loge_bins(1.0, 10.5), _N10["IC86_I"]),
        *(
            SeasonSpec(s, "IC86_II", _IC86II_SD, _loge_bins(0.5, 9.5), _N10[s])
            for s in ("IC86_II", "IC86_III", "IC86_IV", "IC86_V", "IC86_VI", "IC86_VII")
        ),
    ),
    sub_path="icecube_10year_ps",
    url=(
        "https://dataverse.harvard.edu/api/access/dataset/:persistentId/versions/2.0"
        "?persistentId=doi:10.7910/DVN/VKL316"
    ),
    sha256=None,
    has_event_ids=False,
    doi="10.7910/DVN/VKL316",
)

_IC86_14 = tuple(f"IC86_{r}" for r in ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI"))

RELEASE_14Y = ReleaseSpec(
    key="14y",
    name="icecube-14y-ps",
    title="IceCube Second Track Data Release IceTracks-DR2: 2008-2022",
    seasons=(
        SeasonSpec("IC40", "IC40", _IC40_SD, _loge_bins(2.0, 9.0), 36900),
        SeasonSpec("IC59", "IC59", _IC59_SD, _loge_bins(2.0, 9.5), 107011),
        SeasonSpec("IC79", "IC79", _IC79_SD, _loge_bins(1.0, 9.0), 93133),
        *(SeasonSpec(s, "IC86", _IC86II_SD, _loge_bins(1.0, 9.5), 125000) for s in _IC86_14),
    ),
    sub_path="icecube_pstracks_v004p02",
    url=None,
    sha256=None,
    has_event_ids=True,
    doi="10.7910/DVN/MMIIZA",
)

RELEASES: dict[str, ReleaseSpec] = {"10y": RELEASE_10Y, "14y": RELEASE_14Y}


def release_spec(key: str) -> ReleaseSpec:
    """Look up a release by key (``"10y"``, ``"14y"``) or name (``"icecube-10y-ps"``)."""
    for spec in RELEASES.values():
        if key in (spec.key, spec.name):
            return spec
    raise ConfigError(f"unknown release {key!r}; known: {', '.join(RELEASES)}")


# ---------------------------------------------------------------------------- loaded objects


@dataclass(frozen=True, eq=False)
class Season:
    """One loaded season: events, good-run list and instrument response.

    Attributes
    ----------
    spec
        Static description (name, response, background binning).
    events
        Events inside good runs (``None`` when not loaded).
    uptime
        Good-run list.
    effective_area
        Effective area of the season's detector configuration.
    smearing
        Smearing matrix (``None`` when absent: the point-source likelihood then needs
        a simulated one, see :func:`bayesnu.data.simulate.simulate_release`).
    n_outside_uptime
        Number of events of the file that lie outside every good run; they are
        reported and not used.
    """

    spec: SeasonSpec
    events: EventTable | None
    uptime: Uptime
    effective_area: EffectiveArea
    smearing: SmearingMatrix | None
    n_outside_uptime: int = 0

    @property
    def name(self) -> str:
        """Season name."""
        return self.spec.name

    @property
    def livetime_days(self) -> float:
        """Livetime [days] from the good-run list."""
        return self.uptime.livetime_days

    @property
    def livetime_s(self) -> float:
        """Livetime [s] from the good-run list."""
        return self.uptime.livetime_s

    @property
    def n_events(self) -> int:
        """Number of events used (inside good runs)."""
        return 0 if self.events is None else len(self.events)


jax.tree_util.register_dataclass(
    Season,
    data_fields=["events", "uptime", "effective_area", "smearing"],
    meta_fields=["spec", "n_outside_uptime"],
)


@dataclass(frozen=True, eq=False)
class PSRelease:
    """A loaded point-source release: an ordered mapping of season name to :class:`Season`."""

    path: Path
    spec: ReleaseSpec
    seasons: dict[str, Season]

    def __getitem__(self, name: str) -> Season:
        try:
            return self.seasons[name]
        except KeyError:
            raise ConfigError(
                f"season {name!r} is not loaded from {self.path}; loaded: {', '.join(self.seasons)}"
            ) from None

    def __iter__(self):
        return iter(self.seasons.values())

    def __len__(self) -> int:
        return len(self.seasons)

    @property
    def season_names(self) -> tuple[str, ...]:
        """Names of the loaded seasons."""
        return tuple(self.seasons)

    @property
    def livetime_days(self) -> float:
        """Total livetime [days]."""
        return float(sum(s.livetime_days for s in self))

    @property
    def n_events(self) -> int:
        """Total number of events used."""
        return int(sum(s.n_events for s in self))


jax.tree_util.register_dataclass(PSRelease, data_fields=["seasons"], meta_fields=["path", "spec"])


def _missing(path: Path, what: str, spec: ReleaseSpec, season: str) -> DataFormatError:
    return DataFormatError(
        f"{what} of season {season} is missing",
        path=path,
        fix=(
            f"download the full {spec.key} release ('bayesnu data fetch {spec.name}') and point --data at "
            "it, or write a simulated file in the release format with 'bayesnu data simulate "
            f"--out DIR --seasons {season}' (it can complete a partial release)"
        ),
    )


def detect_release(directory: str | Path) -> ReleaseSpec:
    """Guess which release a directory holds (14-year if it has ``irfs/IC86_*`` shared files)."""
    d = Path(directory)
    if (d / "irfs" / "IC86_effectiveArea.csv").exists() or (d / "events" / "IC86_XI_exp.csv").exists():
        return RELEASE_14Y
    return RELEASE_10Y


def resolve_seasons(spec: ReleaseSpec, seasons: str | Iterable[str] | None) -> list[str]:
    """Normalise a season selection (comma string, list, ``None`` = all, ``IC86_II-VII`` ranges)."""
    if seasons is None:
        return list(spec.season_names)
    if isinstance(seasons, str):
        items = [s.strip() for s in seasons.split(",") if s.strip()]
    else:
        items = list(seasons)
    out: list[str] = []
    for item in items:
        if "-" in item and item.startswith("IC86_"):
            first, last = item.split("-", 1)
            last = last if last.startswith("IC86_") else f"IC86_{last}"
            names = spec.season_names
            spec.season(first)
            spec.season(last)
            out.extend(names[names.index(first) : names.index(last) + 1])
        else:
            spec.season(item)
            out.append(item)
    if not out:
        raise ConfigError("no season selected")
    return list(dict.fromkeys(out))


def load_ps_release(
    directory: str | Path,
    seasons: str | Sequence[str] | None = None,
    *,
    release: str | None = None,
    require_events: bool = True,
    require_smearing: bool = False,
    outside_uptime: str = "drop",
) -> PSRelease:
    """Load (a subset of) a point-source release directory.

    Parameters
    ----------
    directory
        Folder holding ``events/``, ``uptime/`` and ``irfs/`` as in the release.
    seasons
        Season names (list or comma-separated string); ``None`` loads every season
        whose events file is present (all seasons when ``require_events`` is false).
    release
        ``"10y"`` or ``"14y"``; detected from the files when ``None``.
    require_events
        Fail when an events file of a requested season is missing.
    require_smearing
        Fail when a smearing matrix is missing (the point-source likelihood needs it).
    outside_uptime
        What to do with events outside every good run: ``"drop"`` (default, as the
        release analysis and SkyLLH do; the count is reported in
        :attr:`Season.n_outside_uptime` and logged), ``"keep"``, or ``"error"``.

    Returns
    -------
    PSRelease

    Raises
    ------
    DataFormatError
        A requested file is missing or malformed (the message says how to get it).
    ConfigError
        Unknown release or season name.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DataFormatError(
            "release directory does not exist",
            path=directory,
            fix="pass the folder that contains events/, uptime/ and irfs/ (or run 'bayesnu data simulate')",
        )
    spec = release_spec(release) if release else detect_release(directory)
    if outside_uptime not in ("drop", "keep", "error"):
        raise ConfigError("outside_uptime must be 'drop', 'keep' or 'error'")
    if seasons is None:
        names = [s.name for s in spec.seasons if (directory / s.events_file).exists() or not require_events]
        if not names:
            raise DataFormatError(
                f"no events file of the {spec.key} release found",
                path=directory / "events",
                fix="check the path, or simulate a release with 'bayesnu data simulate --out DIR'",
            )
    else:
        names = resolve_seasons(spec, seasons)
    cache: dict[str, object] = {}

    def cached(key: str, loader, path: Path):
        if key not in cache:
            cache[key] = loader(path)
        return cache[key]

    loaded: dict[str, Season] = {}
    for name in names:
        s = spec.season(name)
        up_path = directory / s.uptime_file
        if not up_path.exists():
            raise _missing(up_path, "the good-run list (uptime file)", spec, name)
        uptime = read_uptime(up_path)
        a_path = directory / s.aeff_file
        if not a_path.exists():
            raise _missing(a_path, "the effective area", spec, name)
        aeff = cached(s.aeff_file, read_effective_area, a_path)
        sm_path = directory / s.smearing_file
        smearing = None
        if sm_path.exists():
            smearing = cached(s.smearing_file, read_smearing, sm_path)
        elif require_smearing:
            raise _missing(sm_path, "the smearing matrix", spec, name)
        ev_path = directory / s.events_file
        events = None
        n_out = 0
        if ev_path.exists():
            events = read_events(ev_path)
            if events.has_ids != spec.has_event_ids:
                log.info("%s: event id columns %s", ev_path, "present" if events.has_ids else "absent")
            inside = uptime.contains(events.mjd)
            n_out = int(np.count_nonzero(~inside))
            if n_out:
                first = np.flatnonzero(~inside)[:5]
                msg = (
                    f"{ev_path}: {n_out} of {len(events)} events lie outside every good run of "
                    f"{up_path.name} (first at data rows {list(map(int, first + 1))})"
                )
                if outside_uptime == "error":
                    raise DataFormatError(
                        f"{n_out} events lie outside every good run",
                        path=ev_path,
                        line=int(first[0]) + 2,
                        field="MJD[days]",
                        fix="use the matching uptime file, or load with outside_uptime='drop'",
                    )
                warnings.warn(msg + (" and are not used" if outside_uptime == "drop" else ""), stacklevel=2)
                if outside_uptime == "drop":
                    events = events.select(inside)
        elif require_events:
            raise _missing(ev_path, "the events file", spec, name)
        loaded[name] = Season(
            spec=s,
            events=events,
            uptime=uptime,
            effective_area=aeff,  # type: ignore[arg-type]
            smearing=smearing,  # type: ignore[arg-type]
            n_outside_uptime=n_out,
        )
    return PSRelease(path=directory, spec=spec, seasons=loaded)


def release_info(directory: str | Path, release: str | None = None) -> dict:
    """Summarise which files of a release directory are present.

    Returns
    -------
    dict
        ``{"release": "10y", "path": ..., "seasons": {"IC40": {"n_events": 36900,
        "livetime_days": 376.36, "events": true, "effective_area": true,
        "smearing": false, "uptime": true}, ...}}``. ``n_events`` counts the rows of
        the events file (``null`` when absent); ``livetime_days`` comes from the
        uptime file (``null`` when absent).
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DataFormatError("release directory does not exist", path=directory, fix="check the path")
    spec = release_spec(release) if release else detect_release(directory)
    out: dict[str, dict] = {}
    for s in spec.seasons:
        ev, up = directory / s.events_file, directory / s.uptime_file
        aeff, sm = directory / s.aeff_file, directory / s.smearing_file
        present = {
            "events": ev.exists(),
            "effective_area": aeff.exists(),
            "smearing": sm.exists(),
            "uptime": up.exists(),
        }
        if not any(present.values()):
            continue
        n_events = _count_rows(ev) if ev.exists() else None
        livetime = round(read_uptime(up).livetime_days, 6) if up.exists() else None
        out[s.name] = {"n_events": n_events, "livetime_days": livetime, **present}
    return {"release": spec.key, "path": str(directory), "seasons": out}


def _count_rows(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            s = line.strip()
            if s and not s.startswith(b"#") and not s[:1].isalpha():
                n += 1
    return n
