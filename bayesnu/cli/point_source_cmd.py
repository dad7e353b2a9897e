"""``bayesnu fit|sample point-source``: the point-source analysis from the command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bayesnu.cli import emit_json


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Arguments selecting the data and the source (shared by point-source commands)."""
    p.add_argument("--data", required=True, help="release directory (events/, uptime/, irfs/)")
    p.add_argument(
        "--seasons",
        default=None,
        help="comma-separated seasons, e.g. IC40,IC59 or IC86_II-VII (default: all)",
    )
    p.add_argument("--release", choices=["auto", "10y", "14y"], default="auto")
    p.add_argument("--ra", type=float, required=True, help="source right ascension [deg]")
    p.add_argument("--dec", type=float, required=True, help="source declination [deg]")
    p.add_argument("--name", default="", help="source name")
    p.add_argument("--selection-deg", type=float, default=10.0, help="box event selection half-size [deg]")
    p.add_argument("--ns-max", type=float, default=1000.0, help="upper bound of ns")
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
    print(f"{'param':<10} {'mean':>12} {'sd':>12} {'q05':>12} {'q95':>12} {'r_hat':>7} {'ess_bulk':>9}")
    for n in names:
        s = summ["params"][n]
        print(f"{n:<10} {s['mean']:12.4g} {s['sd']:12.4g} {s['q05']:12.4g} {s['q95']:12.4g} "
              f"{s['r_hat']:7.3f} {s['ess_bulk']:9.0f}")  # fmt: skip
    print(
        f"divergences: {summ['divergences']}   wall {wall:.1f} s" + (f"   -> {args.out}" if args.out else "")
    )
    return 0


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
