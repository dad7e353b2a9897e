"""Release-format simulator: a complete IceCube-style point-source release, offline.

:func:`simulate_release` writes a directory in the exact layout and file formats of
the public point-source releases (``events/``, ``uptime/``, ``irfs/``), loadable by
:func:`bayesnu.data.ps_release.load_ps_release` and by SkyLLH's public-data dataset
definitions:

* ``irfs/<C>_effectiveArea.csv`` and ``irfs/<C>_smearing.csv`` from the parametric
  detector model (:mod:`bayesnu.data.detector_model`,
  :mod:`bayesnu.data.smearing_model`), or copied verbatim from a partial real
  release (``complete_from``);
* ``uptime/<S>_exp.csv``: simulated good-run lists (8 h runs, a share of shorter
  runs, short and occasional long gaps) with each season's real start and livetime,
  or copied;
* ``events/<S>_exp.csv``: atmospheric-like background
  (:mod:`bayesnu.data.background_model`) plus point sources injected through the
  written response (:class:`bayesnu.irf.injection.SignalInjector`); right ascension
  uniform, times uniform over the good runs, azimuth/zenith consistent with (RA, Dec,
  MJD) at the South Pole (:mod:`bayesnu.data.sky`). The 14-year layout adds Run,
  Event and SubEvent columns.

``simulation.json`` beside the release folders records the truth: seed, sources,
expected and injected counts per season, model version, which files were simulated
and which copied. The same seed gives byte-identical files; each season's draws
depend only on (seed, season), not on which other seasons are simulated.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesnu.data.atomic import atomic_write_bytes, atomic_write_text
from bayesnu.data.background_model import sample_background
from bayesnu.data.detector_model import DetectorModel, detector_config
from bayesnu.data.ps_formats import (
    EventTable,
    Uptime,
    write_effective_area,
    write_events,
    write_smearing,
    write_uptime,
)
from bayesnu.data.ps_release import (
    ReleaseSpec,
    detect_release,
    load_ps_release,
    release_spec,
    resolve_seasons,
)
from bayesnu.data.sky import equatorial_to_local
from bayesnu.data.smearing_model import SMEARING_DEC_EDGES_10Y, SMEARING_DEC_EDGES_14Y, make_smearing_matrix
from bayesnu.errors import ConfigError

#: Name of the truth file written next to ``events/``, ``uptime/`` and ``irfs/``.
TRUTH_FILE = "simulation.json"

#: (first good-run start [MJD], livetime [days]) of each season: the real good-run
#: lists of the 10-year release; IC86_VIII..XI of the 14-year release continue
#: yearly after IC86_VII with 360 days of livetime (their good-run lists are not
#: public offline).
SEASON_TIMES: dict[str, tuple[float, float]] = {
    "IC40": (54562.372, 376.360),
    "IC59": (54971.155, 353.578),
    "IC79": (55348.312, 316.045),
    "IC86_I": (55694.990, 332.963),
    "IC86_II": (56062.420, 331.977),
    "IC86_III": (56414.420, 362.941),
    "IC86_IV": (56783.580, 370.685),
    "IC86_V": (57160.045, 365.353),
    "IC86_VI": (57528.868, 357.328),
    "IC86_VII": (57891.170, 410.636),
    "IC86_VIII": (58309.090, 360.0),
    "IC86_IX": (58674.090, 360.0),
    "IC86_X": (59039.090, 360.0),
    "IC86_XI": (59404.090, 360.0),
}

_SEASON_INDEX = {name: i for i, name in enumerate(SEASON_TIMES)}
_CONFIG_INDEX = {"IC40": 0, "IC59": 1, "IC79": 2, "IC86_I": 3, "IC86_II": 4, "IC86": 5}


@dataclass(frozen=True)
class SourceSpec:
    """A point source to inject.

    Attributes
    ----------
    ra_deg, dec_deg
        Position [deg].
    flux_norm
        :math:`\\Phi_0` of dN/dE at ``e0_gev`` [GeV^-1 cm^-2 s^-1], muon neutrino +
        antineutrino.
    gamma
        Spectral index.
    e0_gev
        Reference energy [GeV] (default 1 TeV).
    e_cut_gev
        Optional exponential cut-off energy [GeV].
    """

    ra_deg: float
    dec_deg: float
    flux_norm: float
    gamma: float = 2.0
    e0_gev: float = 1000.0
    e_cut_gev: float | None = None

    def __post_init__(self) -> None:
        if not (-90.0 <= self.dec_deg <= 90.0):
            raise ConfigError(f"source declination {self.dec_deg} deg is outside [-90, 90]")
        if not (0.0 <= self.ra_deg <= 360.0):
            raise ConfigError(f"source right ascension {self.ra_deg} deg is outside [0, 360]")
        if not (self.flux_norm >= 0.0) or not np.isfinite(self.flux_norm):
            raise ConfigError(
                f"source flux normalisation must be >= 0 GeV^-1 cm^-2 s^-1, got {self.flux_norm}"
            )
        if not np.isfinite(self.gamma):
            raise ConfigError(f"source spectral index must be finite, got {self.gamma}")

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        """Parse ``"RA,DEC,FLUX,GAMMA"`` (degrees, GeV^-1 cm^-2 s^-1 at 1 TeV, index)."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 4:
            raise ConfigError(
                f"--source {text!r}: expected RA,DEC,FLUX,GAMMA (e.g. 40.67,-0.01,1e-18,2.0): "
                "RA/DEC in degrees, FLUX = Phi0 at 1 TeV in GeV^-1 cm^-2 s^-1"
            )
        try:
            ra, dec, flux, gamma = (float(p) for p in parts)
        except ValueError:
            raise ConfigError(f"--source {text!r}: all four fields must be numbers") from None
        return cls(ra, dec, flux, gamma)

    def power_law(self):
        """The source's :class:`~bayesnu.flux.PowerLaw`."""
        from bayesnu.flux import PowerLaw

        return PowerLaw(norm=self.flux_norm, gamma=self.gamma, e0_gev=self.e0_gev, e_cut_gev=self.e_cut_gev)

    def to_dict(self) -> dict:
        """JSON-friendly description."""
        return {
            "ra_deg": self.ra_deg,
            "dec_deg": self.dec_deg,
            "flux_norm_gev_cm2_s": self.flux_norm,
            "gamma": self.gamma,
            "e0_gev": self.e0_gev,
            "e_cut_gev": self.e_cut_gev,
        }


# ---------------------------------------------------------------------------- pieces


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def simulate_uptime(rng: np.random.Generator, start_mjd: float, livetime_days: float) -> Uptime:
    """A good-run list with the given start and total livetime.

    Runs last 8 h (80 %) or a uniform 0.3-8 h (20 %); gaps are 36-180 s (90 %) or
    exponential with a 2 h mean (10 %), like the IC40-IC86 lists. Times are rounded
    to 1e-8 days as the release writes them.
    """
    if livetime_days <= 0:
        raise ConfigError(f"livetime must be positive, got {livetime_days} days")
    n = int(livetime_days * 3 * 1.6) + 16
    length_h = np.where(rng.random(n) < 0.2, rng.uniform(0.3, 8.0, n), 8.0 + rng.normal(0.0, 0.005, n))
    gap_h = np.where(rng.random(n) < 0.9, rng.uniform(0.01, 0.05, n), rng.exponential(2.0, n))
    cum = np.cumsum(length_h) / 24.0
    k = int(np.searchsorted(cum, livetime_days))
    lengths = length_h[: k + 1] / 24.0
    lengths[-1] = livetime_days - (cum[k - 1] if k > 0 else 0.0)
    if lengths[-1] < 1e-3 and k > 0:  # fold a sliver into the previous run
        lengths[-2] += lengths[-1]
        lengths = lengths[:-1]
    starts = start_mjd + np.concatenate([[0.0], np.cumsum(lengths[:-1] + gap_h[: len(lengths) - 1] / 24.0)])
    stops = starts + lengths
    return Uptime(mjd_start=np.round(starts, 8), mjd_stop=np.round(stops, 8), source="simulated")


def _times_in_runs(rng: np.random.Generator, uptime: Uptime, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` times uniform over the good runs (and the run index of each)."""
    length = uptime.mjd_stop - uptime.mjd_start
    cdf = np.cumsum(length) / np.sum(length)
    run = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(length) - 1)
    t = uptime.mjd_start[run] + length[run] * rng.random(n)
    return t, run


def _check_out_dir(out: Path, complete_from: Path | None, overwrite: bool) -> None:
    if complete_from is not None:
        src = complete_from.resolve()
        if out == src or src in out.parents:
            raise ConfigError(
                f"--out {out} lies inside --complete-from {src}; the source release is never written to, "
                "choose another output directory"
            )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if out.exists() and not overwrite:
        present = [p for p in ("events", "uptime", "irfs", TRUTH_FILE) if (out / p).exists()]
        if present:
            raise ConfigError(
                f"--out {out} already holds release files ({', '.join(present)}); "
                "choose an empty directory or pass --force (overwrite=True)"
            )


def _copy(src: Path, dst: Path) -> None:
    """Copy a file verbatim, atomically."""
    atomic_write_bytes(dst, src.read_bytes())
    shutil.copystat(src, dst)


def _n_max(mean: float) -> int:
    need = mean + 8.0 * np.sqrt(mean) + 16.0
    return int(2 ** np.ceil(np.log2(need)))


# ---------------------------------------------------------------------------- main entry


def simulate_release(
    out_dir: str | Path,
    *,
    release: str = "10y",
    seasons: str | Sequence[str] | None = None,
    seed: int = 0,
    sources: Iterable[SourceSpec | str] = (),
    n_events: int | None = None,
    complete_from: str | Path | None = None,
    model: DetectorModel | None = None,
    n_mc: int = 10_000,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write a complete simulated (or completed) point-source release directory.

    Parameters
    ----------
    out_dir
        Output directory (created). Refused if it already holds release files
        unless ``overwrite``, or if it lies inside ``complete_from``.
    release
        ``"10y"``, ``"14y"`` or ``"auto"`` (the release of ``complete_from``, else 10y).
    seasons
        Season names (list or comma string, ``IC86_II-VII`` ranges); default all.
    seed
        Seed of every random draw (same seed -> identical files).
    sources
        Point sources to inject (:class:`SourceSpec` or ``"RA,DEC,FLUX,GAMMA"``).
    n_events
        Events per season (background + signal); default the release's published
        count of each season (:attr:`~bayesnu.data.ps_release.SeasonSpec.n_events_published`).
    complete_from
        A (partial) real release directory: its files of the selected seasons are
        copied verbatim and only the missing ones are simulated. Sources cannot be
        injected into copied real events.
    model
        Detector model (default: the calibrated :class:`DetectorModel`).
    n_mc
        Monte Carlo events per true bin of the simulated smearing matrices.
    overwrite
        Allow writing into a directory that already holds release files.
    progress
        Show a progress bar (default: only on a terminal).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ConfigError
        Unknown release/season, bad source, an output directory that would be
        overwritten or lies in the source release, sources requested for seasons whose
        events are copied, more signal than ``n_events``.
    """
    from tqdm.auto import tqdm

    model = model or DetectorModel()
    src_dir = None if complete_from is None else Path(complete_from).expanduser()
    if src_dir is not None and not src_dir.is_dir():
        raise ConfigError(f"--complete-from {src_dir} is not a directory")
    if release == "auto":
        spec = detect_release(src_dir) if src_dir is not None else release_spec("10y")
    else:
        spec = release_spec(release)
    names = resolve_seasons(spec, seasons)
    source_list = [s if isinstance(s, SourceSpec) else SourceSpec.parse(s) for s in sources]
    if n_events is not None and n_events < 1:
        raise ConfigError(f"n_events must be a positive number of events per season, got {n_events}")
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(out, src_dir, overwrite)

    def have_real(rel: str) -> bool:
        return src_dir is not None and (src_dir / rel).is_file()

    # Validate everything before writing anything.
    copied_events = [n for n in names if have_real(spec.season(n).events_file)]
    for name in copied_events:
        s_spec = spec.season(name)
        if not have_real(s_spec.uptime_file):
            raise ConfigError(
                f"{src_dir / s_spec.events_file} has no good-run list "  # type: ignore[operator]
                f"{src_dir / s_spec.uptime_file}; events cannot be used without their uptime file"  # type: ignore[operator]
            )
    if source_list and copied_events:
        raise ConfigError(
            f"cannot inject sources into the real events of {', '.join(copied_events)} copied from "
            f"{src_dir}: copied files stay verbatim; drop --source or select only seasons whose events "
            "are simulated"
        )
    for sub in ("events", "uptime", "irfs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}

    # Instrument response, one per detector configuration.
    bar_total = len({spec.season(n).response for n in names}) + len(names)
    bar = tqdm(total=bar_total, desc="simulate release", disable=None if progress is None else not progress)
    for resp in dict.fromkeys(spec.season(n).response for n in names):
        s_spec = next(spec.season(n) for n in names if spec.season(n).response == resp)
        for rel in (s_spec.aeff_file, s_spec.smearing_file):
            if have_real(rel):
                _copy(src_dir / rel, out / rel)  # type: ignore[operator]
                files[rel] = "copied"
            elif rel == s_spec.aeff_file:
                write_effective_area(out / rel, model.effective_area(resp))
                files[rel] = "simulated"
            else:
                sm = make_smearing_matrix(
                    resp,
                    model,
                    seed=np.random.SeedSequence(entropy=seed, spawn_key=(1, _CONFIG_INDEX.get(resp, 9))),
                    n_mc=n_mc,
                    dec_edges_deg=SMEARING_DEC_EDGES_14Y if spec.key == "14y" else SMEARING_DEC_EDGES_10Y,
                    n_reco=8 if spec.key == "14y" else 10,
                )
                write_smearing(out / rel, sm)
                files[rel] = "simulated"
        bar.update(1)

    # Good-run lists.
    for name in names:
        s_spec = spec.season(name)
        if have_real(s_spec.uptime_file):
            _copy(src_dir / s_spec.uptime_file, out / s_spec.uptime_file)  # type: ignore[operator]
            files[s_spec.uptime_file] = "copied"
        else:
            start, livetime = SEASON_TIMES[name]
            write_uptime(
                out / s_spec.uptime_file, simulate_uptime(_rng(seed, 2, _SEASON_INDEX[name]), start, livetime)
            )
            files[s_spec.uptime_file] = "simulated"

    # Events.
    sim_names = [n for n in names if n not in copied_events]
    truth_seasons: dict[str, dict] = {}
    signal: dict[str, list[dict[str, np.ndarray]]] = {n: [] for n in sim_names}
    truth_sources = []
    if sim_names:
        rel = load_ps_release(out, sim_names, release=spec.key, require_events=False, require_smearing=True)
        for i, src in enumerate(source_list):
            truth_sources.append(_inject(rel, src, seed, i, signal))
    for name in copied_events:
        s_spec = spec.season(name)
        _copy(src_dir / s_spec.events_file, out / s_spec.events_file)  # type: ignore[operator]
        files[s_spec.events_file] = "copied"
        truth_seasons[name] = {"events": "copied"}
        bar.update(1)
    for name in sim_names:
        truth_seasons[name] = _write_season_events(out, spec, name, seed, n_events, signal[name])
        files[spec.season(name).events_file] = "simulated"
        bar.update(1)
    bar.close()

    from bayesnu import __version__

    truth = {
        "generator": "bayesnu.data.simulate.simulate_release",
        "bayesnu_version": __version__,
        "model_version": model.version,
        "release": spec.key,
        "seed": int(seed),
        "seasons": {n: truth_seasons[n] for n in names},
        "sources": truth_sources,
        "complete_from": None if src_dir is None else str(src_dir.resolve()),
        "n_mc_per_true_bin": int(n_mc),
        "files": dict(sorted(files.items())),
        "note": "simulated with a parametric detector model, not IceCube's Monte Carlo",
    }
    atomic_write_text(out / TRUTH_FILE, json.dumps(truth, indent=2, sort_keys=False) + "\n")
    return out


def _inject(
    rel, src: SourceSpec, seed: int, index: int, signal: dict[str, list[dict[str, np.ndarray]]]
) -> dict:
    """Sample one source through the written response; append its events per season."""
    import jax

    from bayesnu.irf.injection import SignalInjector, split_by_season

    inj = SignalInjector(rel, src.ra_deg, src.dec_deg, src.power_law())
    expected = inj.expected_counts()
    total = float(np.sum(expected))
    key = jax.random.fold_in(jax.random.key(seed), 1000 + index)
    n_max = _n_max(total)
    ev = inj.sample(key, n_max)
    while int(ev.n_requested) > n_max:  # pragma: no cover - astronomically rare
        n_max *= 2
        ev = inj.sample(key, n_max)
    per_season = split_by_season(ev, inj.season_names)
    for name, cols in per_season.items():
        signal[name].append(cols)
    return {
        **src.to_dict(),
        "expected_total": total,
        "expected_per_season": {n: float(e) for n, e in zip(inj.season_names, expected)},
        "sampleable_fraction": {n: float(f) for n, f in zip(inj.season_names, inj.sampleable_fraction())},
        "injected_total": int(ev.n),
        "injected_per_season": {n: len(c["ra_deg"]) for n, c in per_season.items()},
    }


def _write_season_events(
    out: Path,
    spec: ReleaseSpec,
    name: str,
    seed: int,
    n_events: int | None,
    signal: list[dict[str, np.ndarray]],
) -> dict:
    """Background + signal events of one season, written in the release format."""
    from bayesnu.data.ps_formats import read_uptime

    s_spec = spec.season(name)
    uptime = read_uptime(out / s_spec.uptime_file)
    n_total = int(n_events) if n_events is not None else int(s_spec.n_events_published)
    n_sig = int(sum(len(c["ra_deg"]) for c in signal))
    if n_sig > n_total:
        raise ConfigError(
            f"{n_sig} signal events were injected into {name} but the season holds only {n_total} events; "
            "raise --n-events or lower the source flux"
        )
    rng = _rng(seed, 3, _SEASON_INDEX[name])
    n_bkg = n_total - n_sig
    sin_dec, log_e, ang_err = sample_background(rng, n_bkg)
    # Keep energies inside the season's energy binning (a ~7 sigma tail; SkyLLH refuses them).
    lo, hi = detector_config(s_spec.response).log10_ereco_range
    log_e = np.clip(log_e, lo, hi)
    ra = rng.uniform(0.0, 360.0, n_bkg)
    mjd, _ = _times_in_runs(rng, uptime, n_bkg)
    dec = np.degrees(np.arcsin(sin_dec))
    if signal:
        ra = np.concatenate([ra, *(c["ra_deg"] for c in signal)])
        dec = np.concatenate([dec, *(c["dec_deg"] for c in signal)])
        log_e = np.concatenate([log_e, *(c["log10_energy"] for c in signal)])
        ang_err = np.concatenate([ang_err, *(c["ang_err_deg"] for c in signal)])
        mjd = np.concatenate([mjd, *(c["mjd"] for c in signal)])
    # Release precision; times stay inside their (1e-8-rounded) good runs.
    mjd = np.round(mjd, 8)
    order = np.argsort(mjd, kind="stable")
    mjd, ra, dec, log_e, ang_err = mjd[order], ra[order], dec[order], log_e[order], ang_err[order]
    ra = np.clip(np.round(ra, 3), 0.0, 360.0)
    dec = np.clip(np.round(dec, 3), -90.0, 90.0)
    az, zen = equatorial_to_local(ra, dec, mjd)
    ids: dict[str, np.ndarray | None] = {"run": None, "event": None, "subevent": None}
    if spec.has_event_ids:
        run_idx = np.searchsorted(uptime.mjd_start, mjd, side="right") - 1
        run = 100_000 + 2_000 * _SEASON_INDEX[name] + np.clip(run_idx, 0, None)
        first = np.concatenate([[True], run[1:] != run[:-1]])
        start = np.maximum.accumulate(np.where(first, np.arange(len(run)), 0))
        ids = {
            "run": run,
            "event": np.arange(len(run)) - start + 1,
            "subevent": np.zeros(len(run), dtype=int),
        }
    events = EventTable(
        mjd=mjd,
        log10_energy=np.round(log_e, 2),
        ang_err_deg=np.clip(np.round(ang_err, 2), 0.2, 180.0),
        ra_deg=ra,
        dec_deg=dec,
        azimuth_deg=np.round(az, 3) % 360.0,
        zenith_deg=np.round(zen, 3),
        **ids,
    )
    write_events(out / s_spec.events_file, events)
    return {
        "events": "simulated",
        "n_events": n_total,
        "n_background": n_bkg,
        "n_signal": n_sig,
        "livetime_days": round(uptime.livetime_days, 6),
    }


__all__ = ["SEASON_TIMES", "TRUTH_FILE", "SourceSpec", "simulate_release", "simulate_uptime"]
