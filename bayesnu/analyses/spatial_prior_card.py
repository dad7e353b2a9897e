"""Model cards of the spatial-prior analysis (``analysis: spatial_prior``).

Example (``models/spatial_prior_alert.yaml``)::

    analysis: spatial_prior
    name: spatial_prior_alert
    data:
      kind: simulated                 # or: release (with path)
      seasons: [IC86_I]
      n_events: 40000
      seed: 5
      inject:
        - {ra_deg: 78.2, dec_deg: 6.4, flux_norm: 1.0e-14, gamma: 2.0}
    prior:                            # or {kind: file, path: alert.fits[, field: PROB]}
      kind: gaussian                  # gaussian | vmf | file
      ra_deg: 77.4
      dec_deg: 5.7
      sigma_deg: 1.5
      nside: 64
      smooth_deg: 0.5                 # optional extra Gaussian smoothing
    scan: {nside: 64, gamma: free, region_level: 0.999, ns_max: 1000}
    sampling: {chains: 4, draws: 1000, warmup: 1000, seed: 1}
    trials: {n_background: 20, seed: 2}
    output: {dir: bayesnu_output/spatial_prior_alert}

The ``data`` section is the point-source card's (:class:`~bayesnu.analyses.point_source_card.DataSpec`:
simulated releases are cached under ``<cache>/simulated/<hash>``; ``kind: release`` reads
``path``, ``complete_missing`` adds simulated smearing matrices). The runner scans the
prior's credible region, writes the maps, the posterior over position, a NUTS refinement,
optional background trials with the p-value of the observed TS, a summary table and figures.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bayesnu.analyses.point_source_card import DataSpec, OutputSpec
from bayesnu.errors import ConfigError

#: Posterior variables reported in the summary table and drawn in the corner plot.
PARAMETERS: tuple[str, ...] = ("ra_deg", "dec_deg", "ns", "gamma", "flux_norm", "e2dnde")
_CORNER = ("ra_deg", "dec_deg", "ns", "gamma")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_nside(v: int | None) -> int | None:
    if v is not None and (v < 1 or v & (v - 1) or v > 8192):
        raise ValueError(f"nside must be a power of 2 between 1 and 8192, got {v}")
    return v


class FilePrior(_Strict):
    """A HEALPix FITS map (flat, partial or multi-order; path relative to the card)."""

    kind: Literal["file"]
    path: str
    field: int | str = 0
    nside: int | None = None
    smooth_deg: float = Field(0.0, ge=0.0)

    @field_validator("nside")
    @classmethod
    def _nside(cls, v: int | None) -> int | None:
        return _check_nside(v)


class AnalyticPrior(_Strict):
    """A Gaussian or von Mises-Fisher prior of width ``sigma_deg`` around (RA, Dec) [deg]."""

    kind: Literal["gaussian", "vmf"]
    ra_deg: float = Field(ge=0.0, le=360.0)
    dec_deg: float = Field(ge=-90.0, le=90.0)
    sigma_deg: float = Field(gt=0.0, le=90.0)
    nside: int = 64
    oversample: int = 1
    smooth_deg: float = Field(0.0, ge=0.0)

    @field_validator("nside")
    @classmethod
    def _nside(cls, v: int | None) -> int | None:
        return _check_nside(v)


PriorSpec = Annotated[FilePrior | AnalyticPrior, Field(discriminator="kind")]


class ScanSpec(_Strict):
    """Region scan and fit ranges."""

    nside: int | None = None
    gamma: Literal["free"] | float = "free"
    region_level: float = Field(0.999, gt=0.0, le=1.0)
    ns_max: float = Field(1000.0, gt=0.0)
    gamma_min: float = 1.0
    gamma_max: float = 4.0
    interp: Literal["hermite", "parabola"] = "hermite"
    yield_dec_axis: Literal["sin_dec", "skyllh"] = "sin_dec"
    e0_gev: float = Field(1000.0, gt=0.0)
    e_cut_gev: float | None = None

    @field_validator("nside")
    @classmethod
    def _nside(cls, v: int | None) -> int | None:
        return _check_nside(v)

    @property
    def gamma_fixed(self) -> float | None:
        """The fixed spectral index, or None (free)."""
        return None if self.gamma == "free" else float(self.gamma)


class SamplingSpec(_Strict):
    """NUTS refinement around the posterior mode (``enabled: false`` skips it)."""

    enabled: bool = True
    chains: int = Field(4, ge=1)
    draws: int = Field(1000, ge=1)
    warmup: int = Field(1000, ge=0)
    seed: int = 1
    level: float = Field(0.99, gt=0.0, le=1.0)


class TrialsSpec(_Strict):
    """Background trials (scrambled RA, the prior region rescanned); 0 skips them."""

    n_background: int = Field(20, ge=0)
    seed: int = 2
    batch_size: int | None = Field(None, ge=1)


class SpatialPriorCard(_Strict):
    """Schema of a spatial-prior model card."""

    analysis: Literal["spatial_prior"]
    name: str
    description: str = ""
    data: DataSpec
    prior: PriorSpec
    scan: ScanSpec = Field(default_factory=ScanSpec)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    trials: TrialsSpec = Field(default_factory=TrialsSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)


def parse_card(card: dict[str, Any]) -> SpatialPriorCard:
    """Validate a card mapping; errors name the offending field (``prior.sigma_deg: ...``)."""
    try:
        c = SpatialPriorCard.model_validate(card)
    except ValidationError as exc:
        msgs = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p not in ('gaussian', 'vmf', 'file'))}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid spatial_prior model card: {msgs}") from None
    s = c.scan
    if not s.gamma_min < s.gamma_max:
        raise ConfigError(f"scan: gamma_min {s.gamma_min} must be below gamma_max {s.gamma_max}")
    if s.gamma_fixed is not None and not s.gamma_min <= s.gamma_fixed <= s.gamma_max:
        raise ConfigError(f"scan.gamma {s.gamma_fixed} lies outside [gamma_min, gamma_max]")
    return c


def build_prior(spec: FilePrior | AnalyticPrior, card_dir: Path):
    """The prior :class:`~bayesnu.sky.maps.SkyMap` a card describes (smoothed when asked)."""
    from bayesnu.config import resolve_path
    from bayesnu.sky.maps import SkyMap, prior_gaussian, prior_vmf

    if isinstance(spec, FilePrior):
        path = resolve_path(spec.path, card_dir)
        if not path.is_file():
            raise ConfigError(f"prior.path: {path} does not exist (a HEALPix FITS map is expected)")
        prior = SkyMap.read(path, field=spec.field, nside=spec.nside)
        if prior.kind == "value":
            raise ConfigError(f"prior.path: {path} holds a 'value' map; a prior must be a probability map")
    else:
        build = prior_gaussian if spec.kind == "gaussian" else prior_vmf
        prior = build(spec.ra_deg, spec.dec_deg, spec.sigma_deg, spec.nside, oversample=spec.oversample)
    return prior.smoothed(spec.smooth_deg) if spec.smooth_deg > 0 else prior


def run_card(card: dict[str, Any], card_dir: Path, out_dir: Path | None) -> dict[str, Any]:
    """Run a spatial-prior card: region scan, posterior map, NUTS, trials, table and figures.

    Writes into the output folder: ``prior.fits`` (the prior at the scan resolution),
    ``scan.fits`` (TS, NS, GAMMA, MLOG10P, LOG_BAYES maps), ``posterior_map.fits``,
    ``posterior.nc`` (ArviZ; when sampling), ``background_trials.npz`` (when trials are
    asked for), ``summary.ecsv`` (per parameter: NUTS mean, sd, quantiles, r_hat, ESS,
    the value at the hottest spot and the truth for simulations), ``summary.json``
    (everything returned), ``prior.png``, ``ts_map.png`` (TS with the prior term),
    ``posterior_map.png`` (50% / 90% contours; all-sky), ``region.png`` (the three maps
    zoomed on the prior region, with the NUTS draws), ``corner.png`` and ``card.yaml``.
    """
    from bayesnu.analyses.point_source_card import _dump_yaml, _release_dir, _simulated_release
    from bayesnu.analyses.ps_inputs import ResponseSettings
    from bayesnu.analyses.spatial_prior import SpatialPriorAnalysis
    from bayesnu.data.atomic import atomic_write_text
    from bayesnu.data.ps_release import load_ps_release

    c = parse_card(card)
    t0 = time.perf_counter()
    out = Path(out_dir or c.output.dir or Path("bayesnu_output") / c.name)
    out.mkdir(parents=True, exist_ok=True)
    prior = build_prior(c.prior, card_dir)  # before the data: a bad prior fails fast
    if c.data.kind == "simulated":
        data_dir, provenance = _simulated_release(c.data)
        provenance = {"simulated": True, **provenance}
    else:
        data_dir, provenance = _release_dir(c.data, card_dir)
        provenance = {"simulated": False, **provenance}
    rel = load_ps_release(data_dir, c.data.seasons, release=c.data.release, require_smearing=True)
    s = c.scan
    settings = ResponseSettings(
        e0_gev=s.e0_gev, e_cut_gev=s.e_cut_gev, interp=s.interp, dec_axis=s.yield_dec_axis
    )
    ana = SpatialPriorAnalysis(rel, prior, nside=s.nside, region_level=s.region_level, ns_max=s.ns_max,
                               gamma_bounds=(s.gamma_min, s.gamma_max), settings=settings)  # fmt: skip
    result = ana.unblind(gamma_fixed=s.gamma_fixed)
    ana.prior.write(out / "prior.fits", overwrite=True)
    result.scan.write(out / "scan.fits", overwrite=True)
    result.posterior.write(out / "posterior_map.fits", overwrite=True)
    sp = result.summary()
    truth = _truth(provenance, c, ana)

    dt, post = None, None
    if c.sampling.enabled:
        from bayesnu.inference import save_netcdf, summarize

        g = c.sampling
        dt = ana.sample(result, level=g.level, chains=g.chains, draws=g.draws, warmup=g.warmup, seed=g.seed,
                        progress_bar=False)  # fmt: skip
        save_netcdf(dt, out / "posterior.nc")
        post = summarize(dt, list(PARAMETERS))
        post["patch_radius_deg"] = float(dt.attrs.get("patch_radius_deg", math.nan))

    trials = None
    if c.trials.n_background > 0:
        trials = _background(ana, c, sp["ts"], out)

    _write_table(out, c, ana, sp, post, truth, provenance)
    _plots(out, ana, result, sp, dt, truth)
    result_dict = {
        "name": c.name,
        "output": str(out),
        "data": str(data_dir),
        "provenance": provenance,
        "fit": {"ts": sp["ts"], "ns": sp["ns"], "gamma": sp["gamma"]},
        "scan": result.scan.summary(),
        "spatial_prior": sp,
        "truth": truth,
        "flux_norm_per_ns_gamma2": ana.flux_per_ns(2.0),
        "posterior": post if post is not None else {},
        "trials": trials,
        "wall_s": time.perf_counter() - t0,
    }
    atomic_write_text(out / "summary.json", json.dumps(result_dict, indent=2, default=_json_default))
    atomic_write_text(out / "card.yaml", _dump_yaml(card))
    return result_dict


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _background(ana, c: SpatialPriorCard, ts_obs: float, out: Path) -> dict[str, Any]:
    """Background trials, saved; the empirical p-value of the observed TS."""
    from bayesnu.frequentist.pvalues import empirical_pvalue

    run: dict[str, Any] = {"progress": False}
    if c.trials.batch_size is not None:
        run["batch_size"] = c.trials.batch_size
    bg = ana.background_trials(
        c.trials.n_background, seed=c.trials.seed, gamma_fixed=c.scan.gamma_fixed, **run
    )
    bg.save(out / "background_trials.npz")
    pv = empirical_pvalue(ts_obs, bg.columns["ts"])
    return {
        "n_trials": bg.n_trials,
        "seed": c.trials.seed,
        "ts_median": float(np.median(bg.columns["ts"])),
        "pvalue": float(pv.pvalue),
        "pvalue_ci": [float(pv.ci_low), float(pv.ci_high)],
        "n_above": int(pv.n_above),
        "trials_per_s": float(bg.meta.get("trials_per_s", math.nan)),
        "compile_s": float(bg.meta.get("compile_s", math.nan)),
    }


def _truth(provenance: dict[str, Any], c: SpatialPriorCard, ana) -> dict[str, float]:
    """Position, ns and gamma of the injected source most probable under the prior (simulations)."""
    import healpy as hp

    if not provenance.get("simulated") or not c.data.inject:
        return {}
    p = ana.prior.values
    best = max(c.data.inject, key=lambda s: p[hp.ang2pix(ana.nside, s.ra_deg, s.dec_deg, lonlat=True)])
    truth = {"ra_deg": best.ra_deg, "dec_deg": best.dec_deg, "gamma": best.gamma, "flux_norm": best.flux_norm,
             "e2dnde": best.flux_norm * ana.e0_gev**2}  # fmt: skip
    seasons = [m.name for m in ana.models]
    for rec in provenance.get("sources", []):
        pos = (rec.get("ra_deg", 1e9), rec.get("dec_deg", 1e9))
        if abs(pos[0] - best.ra_deg) < 1e-6 and abs(pos[1] - best.dec_deg) < 1e-6:
            truth["ns"] = float(sum(rec.get("expected_per_season", {}).get(n, 0.0) for n in seasons))
    return truth


def _write_table(out: Path, c: SpatialPriorCard, ana, sp: dict, post: dict | None, truth: dict,
                 provenance: dict) -> None:  # fmt: skip
    from astropy.table import Table

    from bayesnu.data.atomic import atomic_path

    hottest = {"ra_deg": sp["hottest_ra"], "dec_deg": sp["hottest_dec"], "ns": sp["ns"], "gamma": sp["gamma"]}
    hottest["flux_norm"] = sp["ns"] * ana.flux_per_ns(sp["gamma"]) if sp["ns"] > 0 else 0.0
    hottest["e2dnde"] = hottest["flux_norm"] * ana.e0_gev**2
    keys = ("mean", "sd", "q05", "q95", "r_hat", "ess_bulk")
    rows = []
    for n in PARAMETERS:
        s = post["params"][n] if post is not None else dict.fromkeys(keys, math.nan)
        rows.append({"parameter": n, **{k: s[k] for k in keys}, "hottest": hottest[n],
                     "truth": truth.get(n, math.nan)})  # fmt: skip
    table = Table(rows=rows)
    table.meta.update({
        "analysis": "spatial_prior",
        "card": c.name,
        "seasons": ",".join(m.name for m in ana.models),
        "simulated": bool(provenance.get("simulated")),
        "nside": ana.nside,
        "divergences": None if post is None else post["divergences"],
        **{k: sp[k] for k in ("ts", "ts_raw", "ts_pixel", "n_pixels", "log_bayes_factor", "posterior_mode_ra",
                              "posterior_mode_dec", "area_50_deg2", "area_90_deg2")},
    })  # fmt: skip
    with atomic_path(out / "summary.ecsv", suffix=".ecsv") as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)


def _region_figure(ana, result, sp: dict, dt, truth: dict, path: Path) -> None:
    """Zoom on the prior region: prior, TS with the prior term, posterior with 50% / 90% contours.

    Pixels are sampled on a local RA/Dec grid (RA increasing to the left) around the prior's peak,
    wide enough for the scanned region; NUTS draws are overlaid on the posterior panel.
    """
    import healpy as hp
    from matplotlib.figure import Figure

    from bayesnu.data.atomic import atomic_path
    from bayesnu.sky.maps import credible_levels

    nside = ana.nside
    prior = ana.prior.values
    ra_c, dec_c = hp.pix2ang(nside, int(np.argmax(prior)), lonlat=True)
    ra_r, dec_r = hp.pix2ang(nside, ana.pixels, lonlat=True)
    dist = hp.rotator.angdist([ra_c, dec_c], np.vstack([ra_r, dec_r]), lonlat=True)
    half = max(float(np.degrees(dist.max())) + math.degrees(hp.nside2resol(nside)), 2.0)
    cos_d = max(math.cos(math.radians(dec_c)), 0.1)
    dec = np.linspace(max(dec_c - half, -90.0), min(dec_c + half, 90.0), 241)
    ra = ra_c + np.linspace(half, -half, 241) / cos_d
    rr, dd = np.meshgrid(ra, dec)
    pix = hp.ang2pix(nside, np.mod(rr, 360.0), dd, lonlat=True)
    tsp = np.full(prior.size, np.nan)
    tsp[result.scan.pixels] = np.maximum(result.ts_with_prior, 0.0)
    levels = credible_levels(result.posterior)
    extent = (ra[0], ra[-1], dec[0], dec[-1])
    fig = Figure(figsize=(13.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = ((prior[pix], "prior probability per pixel", "viridis"),
              (tsp[pix], "TS + 2 ln(p / max p), clipped at 0", "magma"),
              (result.posterior.values[pix], "posterior probability per pixel", "viridis"))  # fmt: skip
    for ax, (z, title, cmap) in zip(axes, panels):
        im = ax.imshow(z, origin="lower", extent=extent, aspect=1 / cos_d, cmap=cmap, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("RA [deg]")
        ax.set_ylabel("Dec [deg]")
    axes[2].contour(rr, dd, levels[pix], levels=[0.5, 0.9], colors=["white", "0.8"], linewidths=1.0)
    if dt is not None:
        post = dt["posterior"].to_dataset()
        r = np.asarray(post["ra_deg"].values).ravel()
        d = np.asarray(post["dec_deg"].values).ravel()
        r = ra_c + ((r - ra_c + 180.0) % 360.0 - 180.0)  # unwrap around the centre
        k = np.random.default_rng(0).choice(r.size, size=min(r.size, 400), replace=False)
        axes[2].scatter(r[k], d[k], s=2, c="orange", alpha=0.5, label="NUTS draws")
    for ax in axes:
        ax.plot(sp["hottest_ra"], sp["hottest_dec"], "x", color="cyan", ms=8, label="hottest (with prior)")
        if "ra_deg" in truth:
            ax.plot(truth["ra_deg"], truth["dec_deg"], "*", mfc="none", mec="red", ms=14, label="injected")
        ax.set_xlim(ra[0], ra[-1])
        ax.set_ylim(dec[0], dec[-1])
    axes[2].legend(loc="lower right", fontsize="x-small", framealpha=0.6)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=120)


def _plots(out: Path, ana, result, sp: dict, dt, truth: dict) -> None:
    from bayesnu.plotting.sky import plot_posterior_map, plot_prior, plot_ts_map

    true_pos = (truth["ra_deg"], truth["dec_deg"]) if "ra_deg" in truth else None
    label = "injected source" if true_pos is not None else None
    plot_prior(ana.prior, mark=true_pos, mark_label=label, save=out / "prior.png")
    plot_ts_map(result.scan.full_map("ts"), prior=ana.prior, with_prior=True, mark="hottest",
                title="TS + 2 ln(p / max p)", save=out / "ts_map.png")  # fmt: skip
    mode = (sp["posterior_mode_ra"], sp["posterior_mode_dec"])
    plot_posterior_map(result.posterior, levels=(0.5, 0.9), mark=true_pos or mode,
                       mark_label=label or "posterior mode", save=out / "posterior_map.png")  # fmt: skip
    _region_figure(ana, result, sp, dt, truth, out / "region.png")
    if dt is not None:
        import matplotlib.pyplot as plt

        from bayesnu.plotting.posterior import corner_plot

        fig = corner_plot(dt, list(_CORNER), out / "corner.png",
                          truths={k: v for k, v in truth.items() if k in _CORNER} or None)  # fmt: skip
        plt.close(fig)
