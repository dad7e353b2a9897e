"""``bayesnu fit|sample point-source``: the point-source analysis from the command line."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from bayesnu.cli import emit_json, report


def add_release_args(p: argparse.ArgumentParser) -> None:
    """Arguments selecting the data, the fit ranges and the response (no source position)."""
    p.add_argument("--data", required=True, help="release directory (events/, uptime/, irfs/)")
    p.add_argument(
        "--seasons",
        default=None,
        help="comma-separated seasons, e.g. IC40,IC59 or IC86_II-VII (default: all)",
    )
    p.add_argument("--release", choices=["auto", "10y", "14y"], default="auto")
    p.add_argument("--ns-max", type=float, default=1000.0, help="upper bound of ns (and of its flat prior)")
    p.add_argument("--gamma-min", type=float, default=1.0)
    p.add_argument("--gamma-max", type=float, default=4.0)
    p.add_argument(
        "--e0-gev", type=float, default=1000.0, help="reference energy of the flux normalisation [GeV]"
    )
    p.add_argument("--e-cut-gev", type=float, default=None, help="exponential cut-off energy [GeV]")
    p.add_argument("--interp", choices=["hermite", "parabola"], default="hermite",
                   help="interpolation of the energy PDFs in gamma (parabola = SkyLLH)")  # fmt: skip
    p.add_argument("--yield-dec-axis", choices=["sin_dec", "skyllh"], default="sin_dec",
                   help="declination axis of the detector-yield spline (skyllh: SkyLLH 26.1)")  # fmt: skip


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Arguments selecting the data and the source (shared by point-source commands)."""
    add_release_args(p)
    p.add_argument("--ra", type=float, required=True, help="source right ascension [deg]")
    p.add_argument("--dec", type=float, required=True, help="source declination [deg]")
    p.add_argument("--name", default="", help="source name")
    p.add_argument("--selection-deg", type=float, default=10.0, help="box event selection half-size [deg]")


def print_posterior_table(summ: dict, names) -> None:
    """Print the per-parameter summary of a posterior (mean, sd, 5%/95% quantiles, r_hat, ESS)."""
    print(f"{'param':<10} {'mean':>12} {'sd':>12} {'q05':>12} {'q95':>12} {'r_hat':>7} {'ess_bulk':>9}")
    for n in names:
        s = summ["params"][n]
        print(f"{n:<10} {s['mean']:12.4g} {s['sd']:12.4g} {s['q05']:12.4g} {s['q95']:12.4g} "
              f"{s['r_hat']:7.3f} {s['ess_bulk']:9.0f}")  # fmt: skip


def build_analysis(args: argparse.Namespace, priors=None):
    """Load the data and build a :class:`PointSourceAnalysis` from parsed arguments."""
    from bayesnu.analyses.point_source import PointSourceAnalysis, Source
    from bayesnu.analyses.ps_inputs import ResponseSettings
    from bayesnu.data.ps_release import load_ps_release

    source = Source(ra_deg=args.ra, dec_deg=args.dec, name=args.name)
    rel = load_ps_release(
        Path(args.data),
        args.seasons,
        release=None if args.release == "auto" else args.release,
        require_smearing=True,
    )
    settings = ResponseSettings(
        e0_gev=args.e0_gev, e_cut_gev=args.e_cut_gev, interp=args.interp, dec_axis=args.yield_dec_axis
    )
    return PointSourceAnalysis(
        rel,
        source,
        settings=settings,
        selection_deg=args.selection_deg,
        ns_max=args.ns_max,
        gamma_bounds=(args.gamma_min, args.gamma_max),
        priors=priors,
    )


def _fit(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    ana = build_analysis(args)
    res = ana.fit(gamma_fixed=args.gamma_fixed)
    out = res.to_dict()
    out["wall_s"] = time.perf_counter() - t0
    if args.json:
        emit_json(out)
        return 0
    print(
        f"source {ana.source.name or ''} (RA {args.ra:.3f}, Dec {args.dec:.3f}) deg, "
        f"seasons {','.join(ana.season_names)}"
    )
    print(f"  TS = {res.ts:.4f}   ns = {res.ns:.3f}   gamma = {res.gamma:.3f}   converged = {res.converged}")
    print(
        f"  dN/dE(E0={res.e0_gev:g} GeV) = {res.flux_norm:.4e} GeV^-1 cm^-2 s^-1   "
        f"E^2 dN/dE = {res.e2dnde:.4e} GeV cm^-2 s^-1"
    )
    print(f"  Wilks p = {res.pvalue_wilks:.3e} ({res.sigma_wilks:.2f} sigma)   events {res.n_events} "
          f"({res.n_selected} selected), livetime {res.livetime_days:.2f} d")  # fmt: skip
    return 0


def _sample(args: argparse.Namespace) -> int:
    from bayesnu.analyses.point_source import PSPriors
    from bayesnu.analyses.priors import Prior
    from bayesnu.inference import save_netcdf, summarize

    priors = PSPriors(
        gamma=Prior("uniform", low=args.gamma_min, high=args.gamma_max),
        ns=Prior("uniform", low=0.0, high=args.ns_max),
        position_sigma_deg=args.position_sigma_deg,
        background=args.background,
    )
    ana = build_analysis(args, priors=priors)
    t0 = time.perf_counter()
    dt = ana.sample(chains=args.chains, draws=args.draws, warmup=args.warmup, seed=args.seed)
    wall = time.perf_counter() - t0
    if args.out:
        save_netcdf(dt, args.out)
    names = ["ns", "gamma", "flux_norm", "e2dnde"]
    if args.position_sigma_deg is not None:
        names += ["ra_deg", "dec_deg"]
    summ = summarize(dt, names)
    out = {**summ["params"], "divergences": summ["divergences"], "chains": summ["chains"],
           "draws": summ["draws"], "wall_s": wall, "out": args.out}  # fmt: skip
    if args.json:
        emit_json(out)
        return 0
    print_posterior_table(summ, names)
    print(
        f"divergences: {summ['divergences']}   wall {wall:.1f} s" + (f"   -> {args.out}" if args.out else "")
    )
    return 0


def _backend(args: argparse.Namespace) -> dict:
    if args.scheduler:
        return {"backend": "dask", "scheduler": args.scheduler}
    if args.dask:
        return {"backend": "dask"}
    return {"backend": "local"}


def _trials(args: argparse.Namespace) -> int:
    import numpy as np

    from bayesnu.analyses import ps_frequentist as pf

    ana = build_analysis(args)
    common = {"seed": args.seed, "batch_size": args.batch_size, **_backend(args)}
    if args.inject_ns is None and args.inject_flux is None:
        res = pf.background_trials(ana, args.n, **common)
    else:
        res = pf.signal_trials(ana, args.n, ns=args.inject_ns, flux_norm=args.inject_flux,
                               gamma=args.inject_gamma, **common)  # fmt: skip
    if args.out:
        res.save(args.out)
    ts = res.columns["ts"]
    out = {
        "n_trials": res.n_trials,
        "ts_median": float(np.median(ts)),
        "ts_q90": float(np.quantile(ts, 0.9)),
        "fraction_ns_zero": float(np.mean(res.columns["ns"] <= 0)),
        "trials_per_s": float(res.meta.get("trials_per_s", float("nan"))),
        "compile_s": float(res.meta.get("compile_s", float("nan"))),
        "wall_s": float(res.meta.get("wall_s", float("nan"))),
        "seed": args.seed,
        "out": args.out,
    }
    if "mean_ns_injected" in res.meta:
        out["mean_ns_injected"] = res.meta["mean_ns_injected"]
        out["n_injected_mean"] = float(np.mean(res.columns["n_inj"]))
    return report(out, args.json)


def _sensitivity(args: argparse.Namespace) -> int:
    from bayesnu.analyses import ps_frequentist as pf
    from bayesnu.errors import ConfigError

    if args.dec_grid is not None:
        return _sensitivity_curve(args)
    if args.plot or args.out:
        raise ConfigError("--plot and --out write a sensitivity curve: give --dec-grid too")
    if args.dec is None:
        raise ConfigError("give the source declination (--dec DEG) or a grid (--dec-grid -60,-30,0,30,60)")
    ana = build_analysis(args)
    run = {"batch_size": args.batch_size, **_backend(args)}
    bg = pf.background_trials(ana, args.n_background, seed=args.seed, **run)
    sens = pf.sensitivity(
        ana, bg, gamma=args.inject_gamma, seed=args.seed + 1, n_trials=args.n_signal, n_boot=args.n_boot
    )
    out = {"gamma": args.inject_gamma, "n_background": bg.n_trials, "sensitivity": _strength(sens)}
    for sigma in args.discovery_sigma:
        dp = pf.discovery_potential(ana, bg, gamma=args.inject_gamma, sigma=sigma, seed=args.seed + 2,
                                    n_trials=args.n_signal, n_boot=args.n_boot)  # fmt: skip
        out[f"discovery_{sigma:g}sigma"] = _strength(dp)
    return report(out, args.json)


def _dec_grid(text: str) -> list[float]:
    from bayesnu.errors import ConfigError

    try:
        decs = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        decs = []
    if not decs:
        raise ConfigError(
            f"--dec-grid {text!r}: give comma-separated declinations [deg], e.g. -60,-30,0,30,60"
        )
    return decs


def _sensitivity_curve(args: argparse.Namespace) -> int:
    """``--dec-grid``: sensitivity and discovery potentials versus declination (table, plot)."""
    from bayesnu.analyses import ps_frequentist as pf
    from bayesnu.data.atomic import atomic_path

    decs = _dec_grid(args.dec_grid)
    if args.dec is None:
        args.dec = decs[0]
    ana = build_analysis(args)
    table = pf.sensitivity_curve(
        ana,
        decs,
        gamma=args.inject_gamma,
        n_background=args.n_background,
        n_signal=args.n_signal,
        discovery_sigmas=args.discovery_sigma,
        seed=args.seed,
        batch_size=args.batch_size,
        n_boot=args.n_boot,
        progress=False if args.json else None,
        **_backend(args),
    )
    if args.out:
        out = Path(args.out)
        with atomic_path(out, suffix=out.suffix) as tmp:
            table.write(tmp, format="ascii.ecsv" if out.suffix != ".fits" else "fits", overwrite=True)
    if args.plot:
        from bayesnu.plotting.sensitivity import plot_sensitivity_curve

        plot_sensitivity_curve(table, path=args.plot)
    numeric = [c for c in table.colnames if c != "dec_deg" and table[c].dtype.kind == "f"]
    rows = [{"dec_deg": float(r["dec_deg"]), **{c: float(r[c]) for c in numeric}} for r in table]
    out = {
        "gamma": args.inject_gamma,
        "e0_gev": ana.e0_gev,
        "n_background": args.n_background,
        "n_signal": args.n_signal,
        "seed": args.seed,
        "rows": rows,
        "out": args.out,
        "plot": args.plot,
    }
    if args.json:
        emit_json(out)
        return 0
    table[["dec_deg", "sens_ns", "sens_ns_err", "sens_e2dnde", "sens_e2dnde_err"]].pprint(max_width=-1)
    for path in (args.out, args.plot):
        if path:
            print(f"-> {path}")
    return 0


def _strength(res) -> dict:
    return {"ns": res.strength, "ns_err": res.strength_err, "threshold_ts": res.threshold, **res.flux}


def _upper_limit(args: argparse.Namespace) -> int:
    import dataclasses

    from bayesnu.analyses import ps_frequentist as pf

    ana = build_analysis(args)
    kw = {}
    if args.method == "neyman":
        kw["n_trials"] = args.n_signal
    res = pf.upper_limit(ana, method=args.method, cl=args.cl, gamma=args.gamma_fixed, seed=args.seed, **kw)
    out = res if isinstance(res, dict) else dataclasses.asdict(res)
    out = {"method": args.method, "cl": args.cl, **{k: v for k, v in out.items() if not k.startswith("_")}}
    return report(out, args.json)


def _flux_points(args: argparse.Namespace) -> int:
    from bayesnu.analyses import ps_frequentist as pf
    from bayesnu.frequentist.flux_points import write_flux_points

    edges = [float(x) for x in args.energy_edges.split(",")]
    ana = build_analysis(args)
    table = pf.flux_points(ana, edges, gamma_ref=args.gamma_ref)
    if args.out:
        write_flux_points(table, args.out)
    cols = ["e_min", "e_max", "norm", "norm_errn", "norm_errp", "norm_ul", "ts"]
    rows = [{c: float(table[c][i].value if hasattr(table[c][i], "value") else table[c][i]) for c in cols}
            for i in range(len(table))]  # fmt: skip
    if args.json:
        emit_json({"out": args.out, "gamma_ref": args.gamma_ref, "rows": rows})
    else:
        table[cols].pprint(max_width=-1)
        if args.out:
            print(f"-> {args.out}")
    return 0


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--batch-size", type=int, default=None, help="trials per vmapped batch (default: by memory)"
    )
    p.add_argument("--dask", action="store_true", help="run batches on a dask LocalCluster")
    p.add_argument("--scheduler", default=None, help="dask scheduler address (implies --dask)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register(verbs: dict[str, argparse._SubParsersAction]) -> None:
    """Add ``fit point-source`` and ``sample point-source``."""
    p = verbs["fit"].add_parser("point-source", help="ML fit of (ns, gamma): TS, flux, Wilks p-value")
    add_data_args(p)
    p.add_argument("--gamma-fixed", type=float, default=None, help="fit ns only at this spectral index")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_fit)
    p = verbs["sample"].add_parser("point-source", help="NUTS posterior of (ns, gamma[, position])")
    add_data_args(p)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--position-sigma-deg", type=float, default=None,
                   help="sample the position with a von Mises-Fisher prior of this width [deg]")  # fmt: skip
    p.add_argument("--background", choices=["profiled", "free"], default="profiled")
    p.add_argument("--out", default=None, help="write the ArviZ posterior to this netCDF file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_sample)
    p = verbs["trials"].add_parser(
        "point-source", help="background (scrambled RA) or signal-injection trials"
    )
    add_data_args(p)
    p.add_argument("--n", type=int, default=10000, help="number of trials")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--inject-ns", type=float, default=None, help="mean injected signal events")
    g.add_argument("--inject-flux", type=float, default=None,
                   help="injected Phi0 at E0 [GeV^-1 cm^-2 s^-1]")  # fmt: skip
    p.add_argument("--inject-gamma", type=float, default=2.0, help="spectral index of the injected signal")
    p.add_argument("--out", default=None, help="write the trials to this .npz file")
    _add_run_args(p)
    p.set_defaults(func=_trials)
    p = verbs["sensitivity"].add_parser("point-source", help="sensitivity and discovery potential")
    add_data_args(p)
    p.add_argument("--inject-gamma", type=float, default=2.0, help="spectral index of the injected signal")
    p.add_argument("--n-background", type=int, default=10000, help="background trials")
    p.add_argument("--n-signal", type=int, default=500, help="signal trials per injection point")
    p.add_argument("--discovery-sigma", type=float, nargs="*", default=[3.0, 5.0])
    p.add_argument("--dec-grid", default=None, help="comma-separated declinations [deg]: a sensitivity curve")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap replicas per passing-fraction fit")
    p.add_argument("--out", default=None, help="write the curve table here (.ecsv or .fits; --dec-grid)")
    p.add_argument(
        "--plot", default=None, help="write the sensitivity-curve plot here (.png, .pdf; --dec-grid)"
    )
    # "--dec-grid -60,-30,0" : a value starting with a negative number list is a value, not an option
    p._negative_number_matcher = re.compile(r"^-\.?\d[\d.,eE+_-]*$")
    for action in p._actions:  # --dec is optional here: --dec-grid replaces it
        if action.dest == "dec":
            action.required = False
            action.default = None
            action.help = "source declination [deg] (or --dec-grid)"
    _add_run_args(p)
    p.set_defaults(func=_sensitivity)
    p = verbs["upper-limit"].add_parser("point-source", help="upper limit in ns and flux")
    add_data_args(p)
    p.add_argument("--method", choices=["wilks", "neyman", "bayes"], default="wilks")
    p.add_argument("--cl", type=float, default=0.9, help="confidence / credibility level")
    p.add_argument("--gamma-fixed", type=float, default=None, help="spectral index (default: profiled / 2.0)")
    p.add_argument("--n-signal", type=int, default=500, help="signal trials per injection point (neyman)")
    _add_run_args(p)
    p.set_defaults(func=_upper_limit)
    p = verbs["flux-points"].add_parser("point-source", help="flux points (gammapy / GADF likelihood SED)")
    add_data_args(p)
    p.add_argument("--energy-edges", required=True, help="true-energy edges [GeV], comma-separated")
    p.add_argument("--gamma-ref", type=float, default=2.0, help="spectral index inside each bin")
    p.add_argument("--out", default=None, help="write the table (.ecsv or .fits)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_flux_points)
