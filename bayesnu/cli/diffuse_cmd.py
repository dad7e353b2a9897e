"""``bayesnu fit|sample|flux-points diffuse`` and ``bayesnu data simulate-hese``.

``--data``/``--mc`` read the HESE release format; ``--sample SPEC`` any binned diffuse
sample described by a spec file (:mod:`bayesnu.analyses.diffuse.sample_spec`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bayesnu.cli import emit_json
from bayesnu.errors import ConfigError


def _parse_fix(items: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--fix expects NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--fix {item!r}: {value!r} is not a number") from None
    return out


def _parse_prior(items: list[str] | None) -> dict[str, dict[str, float | None]]:
    """``NAME=MEAN,SD[,LOWER,UPPER]``; ``flat`` for MEAN,SD makes it flat (e.g. ``x=flat,flat,0,5``)."""
    out: dict[str, dict[str, float | None]] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        parts = [p.strip() for p in value.split(",")]
        if not sep or len(parts) not in (2, 4):
            raise ConfigError(f"--prior expects NAME=MEAN,SD[,LOWER,UPPER], got {item!r}")

        def num(x: str, item: str = item) -> float | None:
            if x in ("flat", "none", ""):
                return None
            try:
                return float(x)
            except ValueError:
                raise ConfigError(f"--prior {item!r}: {x!r} is not a number") from None

        spec: dict[str, float | None] = {"mean": num(parts[0]), "sd": num(parts[1])}
        if len(parts) == 4:
            spec["lower"] = num(parts[2])
            spec["upper"] = num(parts[3])
        out[name.strip()] = spec
    return out


def _analysis(args: argparse.Namespace):
    from bayesnu.analyses.diffuse import DiffuseAnalysis
    from bayesnu.data.hese import read_hese_data, read_hese_mc

    if args.sample is not None:
        from bayesnu.analyses.diffuse.sample_spec import analysis_from_spec

        if args.data is not None or args.mc is not None or args.splines is not None:
            raise ConfigError("--sample describes data and MC itself: drop --data, --mc and --splines")
        return analysis_from_spec(
            args.sample,
            likelihood=args.likelihood,
            priors=_parse_prior(args.prior),
            fixed=_parse_fix(args.fix),
        )
    if args.data is None:
        raise ConfigError("give --data HESE_data.json (with --mc) or --sample SPEC for another binned sample")
    data = read_hese_data(args.data)
    if args.mc in (None, "simulated"):
        from bayesnu.data.hese_simulate import simulate_hese_mc

        print("bayesnu: no --mc given: using bayesnu's simulated HESE MC (not IceCube's)", file=sys.stderr)
        mc = simulate_hese_mc()
    else:
        mc = read_hese_mc(args.mc)
    return DiffuseAnalysis(
        data,
        mc,
        likelihood=args.likelihood,
        spline_dir=args.splines,
        priors=_parse_prior(args.prior),
        fixed=_parse_fix(args.fix),
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="HESE_data.json (observed events)")
    p.add_argument(
        "--sample",
        default=None,
        metavar="SPEC",
        help="YAML/JSON spec of another binned sample (data + MC tables, column mapping, binning)",
    )
    p.add_argument(
        "--mc", default=None, help="directory with the three HESE MC files (default: simulated MC)"
    )
    p.add_argument(
        "--splines",
        default=None,
        help="the release's resources/splines directory (frees the detector parameters)",
    )
    p.add_argument("--likelihood", choices=["say", "poisson"], default="say")
    p.add_argument("--fix", action="append", metavar="NAME=VALUE", help="fix a parameter (repeatable)")
    p.add_argument(
        "--prior",
        action="append",
        metavar="NAME=MEAN,SD[,LO,HI]",
        help="override a prior ('flat,flat' for flat; repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _fit(args: argparse.Namespace) -> int:
    ana = _analysis(args)
    fit = ana.fit()
    out: dict[str, Any] = fit.to_dict()
    out["selection"] = ana.selection.to_dict()
    if args.json:
        emit_json(out)
        return 0
    print(f"-LLH {fit.neg_llh:.6f}  converged {fit.converged}  likelihood {fit.likelihood}")
    for name, value in fit.params.items():
        err = fit.errors.get(name)
        tag = "fixed" if name in fit.fixed else (f"+- {err:.4g}" if err is not None else "")
        print(f"  {name:<18} {value:>12.6g}  {tag}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from bayesnu.inference import save_netcdf, summarize

    ana = _analysis(args)
    dt = ana.sample(
        chains=args.chains,
        draws=args.draws,
        warmup=args.warmup,
        seed=args.seed,
        max_tree_depth=args.max_tree_depth,
    )
    if args.out:
        save_netcdf(dt, args.out)
    summary = summarize(dt, var_names=list(ana.free_parameters))
    params = {n: {("q5" if k == "q05" else k): v for k, v in s.items()} for n, s in summary["params"].items()}
    out = {
        "params": params,
        "divergences": summary["divergences"],
        "chains": summary["chains"],
        "draws": summary["draws"],
        "out": args.out,
        "likelihood": ana.likelihood,
    }
    if args.json:
        emit_json(out)
        return 0
    print(f"{'parameter':<18} {'mean':>10} {'sd':>9} {'q5':>10} {'q95':>10} {'r_hat':>7} {'ess_bulk':>9}")
    for n, s in params.items():
        print(
            f"{n:<18} {s['mean']:>10.4g} {s['sd']:>9.3g} {s['q5']:>10.4g} {s['q95']:>10.4g} "
            f"{s['r_hat']:>7.3f} {s['ess_bulk']:>9.0f}"
        )
    print(
        f"divergences: {summary['divergences']}" + (f"; posterior written to {args.out}" if args.out else "")
    )
    return 0


def _flux_points(args: argparse.Namespace) -> int:
    from bayesnu.analyses.diffuse.profile import flux_points
    from bayesnu.frequentist.flux_points import write_flux_points

    try:
        edges = [float(x) for x in args.energy_edges.split(",")]
    except ValueError:
        raise ConfigError(
            f"--energy-edges {args.energy_edges!r}: give comma-separated energies in GeV"
        ) from None
    ana = _analysis(args)
    table = flux_points(
        ana, edges, gamma_pw=args.gamma_pw, ul_confidence=args.ul_confidence, n_scan=args.n_scan
    )
    if args.out:
        write_flux_points(table, args.out)
    cols = ["e_min", "e_max", "astro_norm", "astro_norm_errn", "astro_norm_errp", "astro_norm_ul", "ts"]
    rows = [
        {c: float(np.asarray(table[c])[i]) for c in cols} | {"e2dnde": float(np.asarray(table["e2dnde"])[i])}
        for i in range(len(table))
    ]
    if args.json:
        emit_json({"out": args.out, "gamma_pw": args.gamma_pw, "likelihood": ana.likelihood, "rows": rows})
    else:
        table[[*cols, "e2dnde"]].pprint(max_width=-1)
        if args.out:
            print(f"-> {args.out}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from bayesnu.data.atomic import atomic_write_text
    from bayesnu.data.hese import write_hese_mc
    from bayesnu.data.hese_simulate import HESESimulationConfig, simulate_hese_mc

    cfg = HESESimulationConfig(n_neutrino=args.n_neutrino, n_muon=args.n_muon, seed=args.seed)
    mc = simulate_hese_mc(cfg)
    out = Path(args.outdir)
    files = write_hese_mc(out, mc)
    meta = {
        "generator": "bayesnu.data.hese_simulate",
        "note": "simulated, NOT IceCube's Monte Carlo",
        "config": cfg.to_dict(),
        "n_events": len(mc),
    }
    atomic_write_text(out / "simulation.json", json.dumps(meta, indent=1))
    result = {"files": [str(f) for f in files], "n_events": len(mc), "seed": cfg.seed}
    if args.json:
        emit_json(result)
    else:
        print(f"wrote {len(mc)} simulated MC events (not IceCube's) to {out}")
    return 0


def register(verbs: dict[str, argparse._SubParsersAction]) -> None:
    """Add the diffuse sub-commands."""
    p = verbs["fit"].add_parser("diffuse", help="HESE-style diffuse fit (MAP, the release's procedure)")
    _common(p)
    p.set_defaults(func=_fit)

    p = verbs["sample"].add_parser("diffuse", help="NUTS posterior of the HESE-style diffuse fit")
    _common(p)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument(
        "--max-tree-depth",
        type=int,
        default=10,
        help="NUTS tree depth limit (3: at most 7 leapfrog steps per draw; fast with --warmup 300)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the posterior (ArviZ netCDF) here")
    p.set_defaults(func=_sample)

    p = verbs["flux-points"].add_parser(
        "diffuse", help="diffuse flux points in true energy (gammapy / GADF likelihood SED)"
    )
    _common(p)
    p.add_argument("--energy-edges", required=True, help="true-energy edges [GeV], comma-separated")
    p.add_argument("--gamma-pw", type=float, default=2.0, help="spectral index inside each bin")
    p.add_argument("--ul-confidence", type=float, default=0.95, help="one-sided upper-limit confidence")
    p.add_argument("--n-scan", type=int, default=15, help="points of each bin's likelihood scan")
    p.add_argument("--out", default=None, help="write the table (.ecsv or .fits)")
    p.set_defaults(func=_flux_points)

    p = verbs["data"].add_parser("simulate-hese", help="write simulated MC in the HESE release schema")
    p.add_argument("outdir", help="output directory (the three HESE_mc_*.json files)")
    p.add_argument("--n-neutrino", type=int, default=100_000)
    p.add_argument("--n-muon", type=int, default=2_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_simulate)
