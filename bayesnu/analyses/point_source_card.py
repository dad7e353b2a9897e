"""Model cards of the point-source analysis (``analysis: point_source``).

Example (``models/point_source_demo.yaml``)::

    analysis: point_source
    name: point_source_demo
    data:
      kind: simulated            # or: release
      release: 10y
      seasons: [IC86_II]
      seed: 7
      inject:
        - {ra_deg: 150.0, dec_deg: 20.0, flux_norm: 2.0e-15, gamma: 2.2}
    source: {name: demo source, ra_deg: 150.0, dec_deg: 20.0}
    fit: {ns_max: 1000, gamma_min: 1.0, gamma_max: 4.0, selection_deg: 10}
    priors:
      gamma: {dist: uniform, low: 1.0, high: 4.0}
      ns: {dist: uniform, low: 0.0, high: 200.0}
    sampling: {chains: 4, draws: 1000, warmup: 1000, seed: 1}

``kind: release`` reads a release directory (``path``); ``complete_missing: true``
writes simulated smearing matrices for seasons that lack them into a cached copy
(clearly flagged in the outputs). Simulated releases are cached under
``<cache>/simulated/<hash of the data section>`` and reused.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bayesnu.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InjectSpec(_Strict):
    """A simulated source: position [deg], Phi0 at E0 [GeV^-1 cm^-2 s^-1], index."""

    ra_deg: float
    dec_deg: float
    flux_norm: float
    gamma: float = 2.0


class DataSpec(_Strict):
    """Where the events come from."""

    kind: Literal["simulated", "release"]
    release: Literal["10y", "14y"] = "10y"
    seasons: list[str] | str | None = None
    path: str | None = None
    complete_missing: bool = False
    seed: int = 0
    n_events: int | None = None
    inject: list[InjectSpec] = Field(default_factory=list)

    @field_validator("seasons")
    @classmethod
    def _seasons(cls, v: list[str] | str | None) -> list[str] | str | None:
        return v if v is None or isinstance(v, str) else [str(s) for s in v]


class SourceSpec(_Strict):
    """The source hypothesis (degrees)."""

    name: str = ""
    ra_deg: float
    dec_deg: float


class FitSpec(_Strict):
    """Fit ranges and response settings."""

    ns_max: float = 1000.0
    gamma_min: float = 1.0
    gamma_max: float = 4.0
    selection_deg: float | None = 10.0
    interp: Literal["hermite", "parabola"] = "hermite"
    yield_dec_axis: Literal["sin_dec", "skyllh"] = "sin_dec"
    e0_gev: float = 1000.0
    e_cut_gev: float | None = None


class PriorsSpec(_Strict):
    """Priors (see :class:`bayesnu.analyses.priors.Prior` for the mapping syntax)."""

    gamma: dict[str, Any] = Field(default_factory=lambda: {"dist": "uniform", "low": 1.0, "high": 4.0})
    ns: dict[str, Any] = Field(default_factory=lambda: {"dist": "uniform", "low": 0.0, "high": 1000.0})
    flux_norm: dict[str, Any] | None = None
    position_sigma_deg: float | None = None
    position_prior: Literal["vmf", "gaussian"] = "vmf"
    background: Literal["profiled", "free"] = "profiled"


class SamplingSpec(_Strict):
    """NUTS settings."""

    chains: int = 4
    draws: int = 1000
    warmup: int = 1000
    seed: int = 1
    target_accept: float = 0.8


class OutputSpec(_Strict):
    """Output folder (relative to the working directory)."""

    dir: str | None = None


class PointSourceCard(_Strict):
    """Schema of a point-source model card."""

    analysis: Literal["point_source"]
    name: str
    description: str = ""
    data: DataSpec
    source: SourceSpec
    fit: FitSpec = Field(default_factory=FitSpec)
    priors: PriorsSpec = Field(default_factory=PriorsSpec)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)


def parse_card(card: dict[str, Any]) -> PointSourceCard:
    """Validate a card mapping; errors name the offending field."""
    try:
        return PointSourceCard.model_validate(card)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid point_source model card: {msgs}") from None


def _simulated_release(data: DataSpec) -> tuple[Path, dict[str, Any]]:
    """Simulate (or reuse from the cache) the release a card asks for."""
    from bayesnu.config import cache_root, spec_hash
    from bayesnu.data.simulate import SourceSpec as InjSource
    from bayesnu.data.simulate import simulate_release

    spec = data.model_dump(exclude={"path", "complete_missing"})
    target = cache_root() / "simulated" / spec_hash(spec)
    truth_file = target / "simulation.json"
    if not truth_file.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        try:
            simulate_release(
                tmp / "release",
                release=data.release,
                seasons=data.seasons,
                seed=data.seed,
                sources=[InjSource(s.ra_deg, s.dec_deg, s.flux_norm, s.gamma) for s in data.inject],
                n_events=data.n_events,
            )
            if target.exists():
                shutil.rmtree(target)
            (tmp / "release").rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else {}
    return target, truth


def _release_dir(data: DataSpec, card_dir: Path) -> tuple[Path, dict[str, Any]]:
    from bayesnu.config import cache_root, resolve_path, spec_hash
    from bayesnu.data.ps_release import load_ps_release

    if data.path is None:
        raise ConfigError("data.path is required for kind: release")
    path = resolve_path(data.path, card_dir)
    if not path.is_dir():
        raise ConfigError(
            f"release directory {path} does not exist; download the release with "
            "'bayesnu data fetch icecube-10y-ps' or set data.path"
        )
    rel = load_ps_release(path, data.seasons, release=data.release)
    missing = [s.name for s in rel if s.smearing is None]
    if not missing:
        return path, {}
    if not data.complete_missing:
        raise ConfigError(
            f"seasons {missing} of {path} have no smearing matrix; set data.complete_missing: true to use "
            "simulated ones (flagged in the outputs)"
        )
    from bayesnu.data.simulate import simulate_release

    target = (
        cache_root()
        / "completed"
        / spec_hash({"path": str(path), "seasons": rel.season_names, "seed": data.seed})
    )
    if not (target / "events").is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        try:
            simulate_release(tmp / "release", release=data.release, seasons=list(rel.season_names),
                             seed=data.seed, complete_from=path)  # fmt: skip
            if target.exists():
                shutil.rmtree(target)
            (tmp / "release").rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target, {"simulated_smearing": missing, "real_release": str(path)}


def run_card(card: dict[str, Any], card_dir: Path, out_dir: Path | None) -> dict[str, Any]:
    """Run a point-source card: fit, NUTS posterior, summary table and figures.

    Writes into the output folder: ``fit.json``, ``posterior.nc`` (ArviZ),
    ``summary.ecsv``, ``corner.png`` (truth markers when simulated), ``trace.png``,
    ``rank.png`` and ``card.yaml``.
    """
    from astropy.table import Table

    from bayesnu.analyses.point_source import PointSourceAnalysis, PSPriors, Source
    from bayesnu.analyses.priors import Prior
    from bayesnu.analyses.ps_inputs import ResponseSettings
    from bayesnu.data.atomic import atomic_path, atomic_write_text
    from bayesnu.data.ps_release import load_ps_release
    from bayesnu.inference import save_netcdf, summarize
    from bayesnu.plotting.posterior import corner_plot, rank_plot, trace_plot

    c = parse_card(card)
    t0 = time.perf_counter()
    out = Path(out_dir or c.output.dir or Path("bayesnu_output") / c.name)
    out.mkdir(parents=True, exist_ok=True)
    if c.data.kind == "simulated":
        data_dir, provenance = _simulated_release(c.data)
        provenance = {"simulated": True, **provenance}
    else:
        data_dir, provenance = _release_dir(c.data, card_dir)
        provenance = {"simulated": False, **provenance}
    rel = load_ps_release(data_dir, c.data.seasons, release=c.data.release, require_smearing=True)
    settings = ResponseSettings(
        e0_gev=c.fit.e0_gev, e_cut_gev=c.fit.e_cut_gev, interp=c.fit.interp, dec_axis=c.fit.yield_dec_axis
    )
    priors = PSPriors(
        gamma=Prior.from_dict(c.priors.gamma),
        ns=Prior.from_dict(c.priors.ns),
        flux_norm=None if c.priors.flux_norm is None else Prior.from_dict(c.priors.flux_norm),
        position_sigma_deg=c.priors.position_sigma_deg,
        position_prior=c.priors.position_prior,
        background=c.priors.background,
    )
    ana = PointSourceAnalysis(
        rel,
        Source(c.source.ra_deg, c.source.dec_deg, c.source.name),
        settings=settings,
        selection_deg=c.fit.selection_deg,
        ns_max=c.fit.ns_max,
        gamma_bounds=(c.fit.gamma_min, c.fit.gamma_max),
        priors=priors,
    )
    fit = ana.fit()
    dt = ana.sample(
        chains=c.sampling.chains,
        draws=c.sampling.draws,
        warmup=c.sampling.warmup,
        seed=c.sampling.seed,
        target_accept=c.sampling.target_accept,
    )
    save_netcdf(dt, out / "posterior.nc")
    names = ["ns", "gamma", "flux_norm", "e2dnde"]
    if c.priors.position_sigma_deg is not None:
        names += ["ra_deg", "dec_deg"]
    summ = summarize(dt, names)
    truths = _truths(provenance, c, ana)
    rows = []
    for n in names:
        s = summ["params"][n]
        rows.append({"parameter": n, **s, "ml": _ml_value(fit, n), "truth": truths.get(n, np.nan)})
    table = Table(rows=rows)
    table.meta.update(
        {
            "analysis": "point_source",
            "card": c.name,
            "divergences": summ["divergences"],
            "seasons": ",".join(ana.season_names),
            "simulated": provenance["simulated"],
        }
    )
    with atomic_path(out / "summary.ecsv", suffix=".ecsv") as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    corner_plot(
        dt,
        ["ns", "gamma"],
        out / "corner.png",
        truths={k: v for k, v in truths.items() if k in ("ns", "gamma")},
    )
    trace_plot(dt, ["ns", "gamma"], out / "trace.png")
    rank_plot(dt, ["ns", "gamma"], out / "rank.png")
    result = {
        "name": c.name,
        "output": str(out),
        "data": str(data_dir),
        "provenance": provenance,
        "fit": fit.to_dict(),
        "posterior": summ,
        "wall_s": time.perf_counter() - t0,
    }
    atomic_write_text(out / "fit.json", json.dumps(result, indent=2, default=float))
    atomic_write_text(out / "card.yaml", _dump_yaml(card))
    return result


def _ml_value(fit: Any, name: str) -> float:
    return float(getattr(fit, name)) if hasattr(fit, name) else float("nan")


def _truths(provenance: dict[str, Any], card: PointSourceCard, ana: Any) -> dict[str, float]:
    """True ns/gamma/flux of an injected source at the analysed position (simulations only)."""
    if not provenance.get("simulated"):
        return {}
    for s in card.data.inject:
        if abs(s.ra_deg - card.source.ra_deg) < 1e-6 and abs(s.dec_deg - card.source.dec_deg) < 1e-6:
            ns = ana.ns_from_flux(s.flux_norm, s.gamma)
            # Prefer the simulator's own expected count (its injector's yield), when recorded.
            for rec in provenance.get("sources", []):
                same = (
                    abs(rec.get("ra_deg", 1e9) - s.ra_deg) < 1e-6
                    and abs(rec.get("dec_deg", 1e9) - s.dec_deg) < 1e-6
                )
                if same and "expected_per_season" in rec:
                    ns = float(sum(rec["expected_per_season"].get(n, 0.0) for n in ana.season_names))
            return {
                "ns": ns,
                "gamma": s.gamma,
                "flux_norm": s.flux_norm,
                "e2dnde": s.flux_norm * ana.e0_gev**2,
            }
    return {}


def _dump_yaml(card: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(card, sort_keys=False)
