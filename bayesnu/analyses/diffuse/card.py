"""Run the ``diffuse`` section of a model card end to end (fit, sample, scan, tables, plots).

A card's ``diffuse`` section (see ``models/hese_diffuse.yaml``)::

    diffuse:
      data: ../shared/data/hese_7yr/HESE_data.json   # observed events
      mc: simulated            # or a directory with the three HESE MC files
      simulation: {n_neutrino: 100000, n_muon: 2000, seed: 1}
      splines: null            # the release's resources/splines: frees the detector parameters
      likelihood: say          # or poisson
      fixed: {}                # {name: value}
      priors: {}               # {name: {mean, sd, lower, upper}}
      sample: {chains: 4, draws: 1000, warmup: 1000, seed: 1}   # also max_tree_depth (default 10)
      profile_scan: {gamma: [2.0, 4.0, 11], norm: [0.0, 12.0, 13]}
      plots: true

Instead of ``data``/``mc``/``simulation``/``splines``, ``binned_sample`` (a mapping or the
path of a spec file, see :mod:`bayesnu.analyses.diffuse.sample_spec`) fits another
binned sample (e.g. northern tracks) with the same model.

Relative paths are tried against the working directory, then the card's directory. If
the data file is absent, a pseudo-experiment drawn from the MC at the release's
published best fit is used instead, and the outputs say so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bayesnu.errors import ConfigError

SAMPLE_KEYS = {"chains", "draws", "warmup", "seed", "max_tree_depth"}
KEYS = {
    "data",
    "mc",
    "simulation",
    "splines",
    "likelihood",
    "fixed",
    "priors",
    "sample",
    "profile_scan",
    "plots",
    "binned_sample",
}

#: The release's published best fit (HESE 7.5 yr, single power law), used for pseudo-data.
PUBLISHED_BEST_FIT = {
    "cr_delta_gamma": -0.05309302,
    "nunubar_ratio": 0.99815326,
    "astro_gamma": 2.87375956,
    "astro_norm": 6.36488608,
    "conv_norm": 1.00621679,
    "muon_norm": 1.18706341,
    "kpi_ratio": 1.00013744,
    "prompt_norm": 0.0,
}


def _resolve(value: str | None, card_dir: Path | None) -> Path | None:
    if value is None:
        return None
    from bayesnu.config import expand_vars

    p = Path(expand_vars(str(value))).expanduser()
    if p.is_absolute() or p.exists() or card_dir is None:
        return p
    return card_dir / p


def run_card(card: dict[str, Any], card_dir: Path, out_dir: Path | None) -> dict[str, Any]:
    """``bayesnu run`` entry point: run the card's ``diffuse`` section (see :func:`run_diffuse_card`)."""
    import time

    if "diffuse" not in card:
        raise ConfigError("a diffuse model card needs a 'diffuse' section")
    t0 = time.perf_counter()
    out = Path(
        out_dir
        or (card.get("output") or {}).get("dir")
        or Path("bayesnu_output") / card.get("name", "diffuse")
    )
    result = run_diffuse_card(card["diffuse"], out, card_dir)
    result["output"] = str(out)
    result["wall_s"] = time.perf_counter() - t0
    return result


def run_diffuse_card(
    section: Mapping[str, Any], outdir: str | Path, card_dir: str | Path | None = None
) -> dict:
    """Run a card's ``diffuse`` section; write results into ``outdir``; return a summary dict.

    Writes ``fit.json``, ``posterior.nc`` and ``posterior_summary.json`` (when sampling),
    ``profile_scan.json`` (when scanning) and PNG plots (``energy_projection.png``,
    ``contours.png``, ``corner.png``).
    """
    from bayesnu.analyses.diffuse.analysis import DiffuseAnalysis
    from bayesnu.data.hese import read_hese_data, read_hese_mc
    from bayesnu.data.hese_simulate import HESESimulationConfig, sample_events, simulate_hese_mc

    unknown = set(section) - KEYS
    if unknown:
        raise ConfigError(f"diffuse card: unknown key(s) {sorted(unknown)}; allowed: {sorted(KEYS)}")
    unknown = set(section.get("sample") or {}) - SAMPLE_KEYS
    if unknown:
        raise ConfigError(
            f"diffuse card: unknown key(s) {sorted(unknown)} in sample; allowed: {sorted(SAMPLE_KEYS)}"
        )
    card_dir = None if card_dir is None else Path(card_dir)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    kw = dict(
        likelihood=section.get("likelihood", "say"),
        priors=section.get("priors") or {},
        fixed=section.get("fixed") or {},
    )
    if section.get("binned_sample") is not None:
        clash = sorted({"data", "mc", "simulation", "splines"} & set(section))
        if clash:
            raise ConfigError(f"diffuse card: binned_sample replaces {clash}; remove them")
        ana = _binned_sample_analysis(section["binned_sample"], card_dir, kw)
        notes.append(
            f"binned sample {ana.data.source} ({len(ana.data)} events), MC {len(ana.mc_bin)} in bins"
        )
        return _run(ana, section, out, notes)
    mc_spec = section.get("mc", "simulated")
    if mc_spec in (None, "simulated"):
        cfg = HESESimulationConfig(**dict(section.get("simulation") or {}))
        mc = simulate_hese_mc(cfg)
        notes.append(
            f"MC: bayesnu's simulated HESE MC (NOT IceCube's), {cfg.n_neutrino} neutrinos, seed {cfg.seed}"
        )
    else:
        mc = read_hese_mc(_resolve(mc_spec, card_dir))
        notes.append(f"MC: {mc.source}")
    data_path = _resolve(section.get("data"), card_dir)
    splines = _resolve(section.get("splines"), card_dir)
    kw["spline_dir"] = splines
    if data_path is not None and data_path.exists():
        data = read_hese_data(data_path)
        notes.append(f"data: {data_path} ({len(data)} events)")
    else:
        probe = DiffuseAnalysis(read_hese_data_placeholder(), mc, **kw)
        w = probe.component_event_weights(PUBLISHED_BEST_FIT)
        mask_mc = probe.mc_fields
        from bayesnu.data.hese import HESEMonteCarlo

        data = sample_events(HESEMonteCarlo(mask_mc), sum(w.values()), seed=12345, source="pseudo-data")
        notes.append(f"data file {data_path} not found: using a pseudo-experiment at the published best fit")
    ana = DiffuseAnalysis(data, mc, **kw)
    return _run(ana, section, out, notes)


def _binned_sample_analysis(spec: Any, card_dir: Path | None, kw: Mapping[str, Any]):
    """The analysis of a card's ``binned_sample`` (a mapping or a spec file)."""
    from bayesnu.analyses.diffuse.sample_spec import analysis_from_spec

    if isinstance(spec, str):
        path = _resolve(spec, card_dir)
        return analysis_from_spec(path, **kw)
    if not isinstance(spec, Mapping):
        raise ConfigError("diffuse card: binned_sample must be a mapping or the path of a spec file")
    return analysis_from_spec(dict(spec), card_dir, **kw)


def _run(ana, section: Mapping[str, Any], out: Path, notes: list[str]) -> dict:
    """Fit, sample, scan and plot one analysis as the card asks; write the outputs."""
    from bayesnu.data.atomic import atomic_write_text
    from bayesnu.inference import save_netcdf, summarize

    result: dict[str, Any] = {"notes": notes, "selection": ana.selection.to_dict()}
    fit = ana.fit()
    result["fit"] = fit.to_dict()
    atomic_write_text(out / "fit.json", json.dumps(result["fit"], indent=1, default=float))
    post = None
    if section.get("sample"):
        s = dict(section["sample"])
        post = ana.sample(
            chains=s.get("chains", 4),
            draws=s.get("draws", 1000),
            warmup=s.get("warmup", 1000),
            seed=s.get("seed", 0),
            max_tree_depth=s.get("max_tree_depth", 10),
        )
        save_netcdf(post, out / "posterior.nc")
        summ = summarize(post, var_names=list(ana.free_parameters))
        result["posterior"] = summ
        atomic_write_text(out / "posterior_summary.json", json.dumps(summ, indent=1))
    scan = None
    if section.get("profile_scan"):
        from bayesnu.analyses.diffuse.profile import profile_scan

        ps = section["profile_scan"]
        g, n = (
            np.linspace(*ps["gamma"][:2], int(ps["gamma"][2])),
            np.linspace(*ps["norm"][:2], int(ps["norm"][2])),
        )
        scan = profile_scan(ana, g, n)
        atomic_write_text(out / "profile_scan.json", json.dumps(scan.to_dict()))
        result["profile_scan"] = {"minimum": scan.minimum(), "n_points": int(g.size * n.size)}
    if section.get("plots", True):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from bayesnu.plotting.diffuse import plot_corner, plot_energy_projection, plot_profile_contours

        ax = plot_energy_projection(ana, fit.params)
        ax.figure.savefig(out / "energy_projection.png", dpi=110)
        plt.close(ax.figure)
        if scan is not None:
            ax = plot_profile_contours(scan, posterior=post)
            ax.figure.savefig(out / "contours.png", dpi=110)
            plt.close(ax.figure)
        if post is not None:
            fig = plot_corner(post, var_names=list(ana.free_parameters))
            fig.savefig(out / "corner.png", dpi=80)
            plt.close(fig)
    atomic_write_text(out / "summary.json", json.dumps(result, indent=1, default=float))
    return result


def read_hese_data_placeholder():
    """An empty observed sample (used to build the analysis that draws pseudo-data)."""
    from bayesnu.data.hese import HESEData

    e = np.zeros(0)
    return HESEData(e, np.zeros(0, dtype=np.int64), e, e, "empty")
