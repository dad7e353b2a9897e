"""``bayesnu scan`` and ``bayesnu sample|trials spatial-prior``: sky scans and spatial priors.

``bayesnu scan`` fits every HEALPix pixel of a map (all-sky within a declination band, or
the credible region of a prior map with ``--prior``) and writes the TS / ns / gamma /
-log10 p / log-marginal maps. ``sample spatial-prior`` refines the posterior over the
source position with NUTS; ``trials spatial-prior`` runs background (scrambled RA) or
signal (true position drawn from the prior) pseudo-experiments of the region scan.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from bayesnu.cli import emit_json, report
from bayesnu.cli.point_source_cmd import add_release_args, print_posterior_table
from bayesnu.errors import ConfigError

#: Value of ``--dec-range``/``--gamma`` that starts with a minus sign is a value, not an option.
_NEGATIVE_VALUE = re.compile(r"^-\.?\d[\d.,eE+_-]*$")


# ---------------------------------------------------------------------------- arguments
def add_scan_args(p: argparse.ArgumentParser) -> None:
    """Arguments selecting the data and the fit ranges (no source position) and ``--gamma``."""
    add_release_args(p)
    p.add_argument(
        "--gamma",
        default="free",
        help="spectral index of the fit: 'free' (default) or a fixed value such as 2.0 (faster)",
    )
    p._negative_number_matcher = _NEGATIVE_VALUE  # type: ignore[attr-defined]


def add_prior_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    """``--prior`` (a HEALPix FITS map) and how to use it."""
    p.add_argument(
        "--prior",
        required=required,
        default=None,
        help="HEALPix FITS map of the source position (probability or density; flat, partial or multi-order)",
    )
    p.add_argument("--prior-field", default="0", help="column of the prior map (index or name; default 0)")
    p.add_argument("--prior-smooth-deg", type=float, default=0.0,
                   help="smooth the prior with a Gaussian beam of this sigma [deg] first")  # fmt: skip
    p.add_argument(
        "--region-level", type=float, default=0.999, help="scan the prior's credible region of this level"
    )


def parse_gamma(text: str) -> float | None:
    """``--gamma``: ``"free"`` -> None (fitted), else the fixed spectral index."""
    if text.strip().lower() == "free":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise ConfigError(f"--gamma {text!r}: give 'free' or a spectral index such as 2.0")
    return value


def parse_dec_range(text: str) -> tuple[float, float]:
    """``--dec-range LO,HI`` [deg] -> (LO, HI)."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--dec-range {text!r}: give two comma-separated declinations [deg], e.g. -85,85"
        ) from None
    if not -90.0 <= lo < hi <= 90.0:
        raise ConfigError(f"--dec-range {text!r}: need -90 <= LO < HI <= 90 [deg]")
    return lo, hi


def check_nside(nside: int | None) -> int | None:
    """A HEALPix resolution (power of 2) or None."""
    import healpy as hp

    if nside is not None and (nside < 1 or not hp.isnsideok(nside, nest=True)):
        raise ConfigError(
            f"--nside {nside} is not a HEALPix resolution: give a power of 2 such as 16, 32 or 64"
        )
    return nside


def check_output(path: str | None, force: bool, option: str) -> Path | None:
    """Refuse to overwrite an existing output file unless ``--force``."""
    if path is None:
        return None
    p = Path(path)
    if p.exists() and not force:
        raise ConfigError(f"{option} {p} exists; pass --force to replace it")
    if not p.parent.exists():
        raise ConfigError(f"{option} {p}: the folder {p.parent} does not exist")
    return p


def load_models(args: argparse.Namespace) -> list:
    """Season models of the release in ``--data`` (smearing matrices required)."""
    from bayesnu.analyses.ps_inputs import ResponseSettings, season_models
    from bayesnu.data.ps_release import load_ps_release

    data = Path(args.data)
    if not data.is_dir():
        raise ConfigError(
            f"--data {data}: no such release directory; simulate one with 'bayesnu data simulate --out DIR' "
            "or download one with 'bayesnu data fetch icecube-10y-ps'"
        )
    rel = load_ps_release(
        data, args.seasons, release=None if args.release == "auto" else args.release, require_smearing=True
    )
    settings = ResponseSettings(
        e0_gev=args.e0_gev, e_cut_gev=args.e_cut_gev, interp=args.interp, dec_axis=args.yield_dec_axis
    )
    return season_models(rel, settings)


def read_prior(args: argparse.Namespace):
    """The ``--prior`` map (read, optionally smoothed)."""
    from bayesnu.sky.maps import SkyMap
    from bayesnu.sky.scan import SkyScan

    field: int | str = int(args.prior_field) if args.prior_field.isdigit() else args.prior_field
    prior = SkyMap.read(args.prior, field=field)
    if str(prior.meta.get("column", "")).upper() in {c.upper() for c in SkyScan.MAP_COLUMNS}:
        raise ConfigError(
            f"--prior {args.prior}: column {prior.meta['column']} looks like a scan output "
            "('bayesnu scan --out'), not a prior; give a probability map of the source position"
        )
    if prior.kind == "value":
        raise ConfigError(
            f"--prior {args.prior}: the map is of kind 'value'; a prior must be a probability or density map"
        )
    if args.prior_smooth_deg:
        prior = prior.smoothed(args.prior_smooth_deg)
    return prior


def build_spatial_prior(args: argparse.Namespace, nside: int | None):
    """A :class:`~bayesnu.analyses.spatial_prior.SpatialPriorAnalysis` from parsed arguments."""
    from bayesnu.analyses.spatial_prior import SpatialPriorAnalysis

    prior = read_prior(args)
    return SpatialPriorAnalysis(
        load_models(args),
        prior,
        nside=nside,
        region_level=args.region_level,
        ns_max=args.ns_max,
        gamma_bounds=(args.gamma_min, args.gamma_max),
    )


def _validate_common(args: argparse.Namespace) -> float | None:
    """Checks that need no data (fail before loading anything); returns the fixed gamma."""
    gamma = parse_gamma(args.gamma)
    check_nside(args.nside)
    if not args.gamma_min < args.gamma_max:
        raise ConfigError(f"--gamma-min {args.gamma_min} must be below --gamma-max {args.gamma_max}")
    if gamma is not None and not args.gamma_min <= gamma <= args.gamma_max:
        raise ConfigError(f"--gamma {gamma} lies outside [--gamma-min, --gamma-max] = "
                          f"[{args.gamma_min}, {args.gamma_max}]")  # fmt: skip
    if not args.ns_max > 0:
        raise ConfigError(f"--ns-max must be positive, got {args.ns_max}")
    if getattr(args, "prior", None) is not None and not Path(args.prior).is_file():
        raise ConfigError(f"--prior {args.prior}: no such file (a HEALPix FITS map is expected)")
    return gamma


def _prior_keys(res) -> dict[str, Any]:
    """The spatial-prior keys added to ``scan --json`` / ``sample spatial-prior --json``."""
    s = res.summary()
    return {
        "ts_with_prior": s["ts"],
        "ts_with_prior_raw": s["ts_raw"],
        "hottest_with_prior_ra": s["hottest_ra"],
        "hottest_with_prior_dec": s["hottest_dec"],
        "ts_at_hottest_with_prior": s["ts_pixel"],
        "log_bayes_factor": s["log_bayes_factor"],
        "posterior_mode_ra": s["posterior_mode_ra"],
        "posterior_mode_dec": s["posterior_mode_dec"],
        "area_50_deg2": s["area_50_deg2"],
        "area_90_deg2": s["area_90_deg2"],
    }


# ---------------------------------------------------------------------------- scan
def _scan(args: argparse.Namespace) -> int:
    gamma = _validate_common(args)
    dec_range = parse_dec_range(args.dec_range)
    out = check_output(args.out, args.force, "--out")
    plot = check_output(args.plot, args.force, "--plot")
    post_out = check_output(args.posterior_out, args.force, "--posterior-out")
    if post_out is not None and args.prior is None:
        raise ConfigError("--posterior-out needs --prior (the posterior over position needs a prior map)")
    t0 = time.perf_counter()
    result = None
    if args.prior is not None:
        ana = build_spatial_prior(args, args.nside or 64)
        result = ana.unblind(gamma_fixed=gamma)
        scan = result.scan
    else:
        from bayesnu.sky.scan import SkyScanner

        scanner = SkyScanner(
            load_models(args), ns_max=args.ns_max, gamma_bounds=(args.gamma_min, args.gamma_max)
        )
        progress = False if args.json else None
        scan = scanner.scan(args.nside or 64, dec_range_deg=dec_range, gamma_fixed=gamma, progress=progress)
    summary: dict[str, Any] = {**scan.summary(), "seasons": scan.meta.get("seasons"),
                               "n_events": scan.meta.get("n_events")}  # fmt: skip
    if result is not None:
        summary.update(_prior_keys(result))
        summary["prior"] = str(args.prior)
    else:
        summary["dec_range"] = list(dec_range)
    if out is not None:
        scan.write(out, overwrite=args.force)
    if post_out is not None and result is not None:
        result.posterior.write(post_out, overwrite=args.force)
    if plot is not None:
        _scan_plot(scan, result, ana.prior if result is not None else None, plot)
    summary.update({"out": args.out, "posterior_out": args.posterior_out, "plot": args.plot,
                    "total_s": time.perf_counter() - t0})  # fmt: skip
    if args.json:
        emit_json(summary)
        return 0
    for k, v in summary.items():
        print(f"{k:>24}: {v}")
    return 0


def _scan_plot(scan, result, prior, path: Path) -> None:
    from bayesnu.plotting.sky import plot_ts_map

    ts = scan.full_map("ts")
    if result is None:
        plot_ts_map(ts, mark="hottest", title=f"TS map (nside {scan.nside})", save=path)
    else:
        plot_ts_map(ts, prior=prior, with_prior=True, mark="hottest",
                    title=f"TS + 2 ln(p / max p) (nside {scan.nside})", save=path)  # fmt: skip


# ---------------------------------------------------------------------------- sample
def default_map_out(out: str | None) -> str | None:
    """Posterior map file next to the netCDF output: ``post.nc`` -> ``post_map.fits``."""
    if out is None:
        return None
    p = Path(out)
    return str(p.with_name(f"{p.stem}_map.fits"))


def _sample(args: argparse.Namespace) -> int:
    gamma = _validate_common(args)
    for name in ("chains", "draws", "warmup"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            raise ConfigError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    map_out = args.map_out or default_map_out(args.out)
    for path, opt in ((args.out, "--out"), (map_out, "--map-out")):
        check_output(path, True, opt)  # folder must exist; files are replaced (as sample point-source)
    ana = build_spatial_prior(args, args.nside or 64)
    # Imported after the analysis (numpyro before arviz: with arviz first, Python 3.13.0's lazy
    # loading leaves numpyro.infer without its submodules and az.from_numpyro fails).
    from bayesnu.inference import save_netcdf, summarize

    t0 = time.perf_counter()
    result = ana.unblind(gamma_fixed=gamma)
    scan_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    dt = ana.sample(result, chains=args.chains, draws=args.draws, warmup=args.warmup, seed=args.seed,
                    progress_bar=False if args.json else None)  # fmt: skip
    wall = time.perf_counter() - t1
    if args.out:
        save_netcdf(dt, args.out)
    if map_out:
        result.posterior.write(map_out, overwrite=True)
    names = ["ra_deg", "dec_deg", "ns", "gamma", "flux_norm", "e2dnde"]
    summ = summarize(dt, names)
    out = {
        **summ["params"],
        "divergences": summ["divergences"],
        "chains": summ["chains"],
        "draws": summ["draws"],
        **_prior_keys(result),
        "nside": ana.nside,
        "n_pixels": result.scan.n_pixels,
        "patch_radius_deg": float(dt.attrs.get("patch_radius_deg", float("nan"))),
        "scan_s": scan_s,
        "wall_s": wall,
        "out": args.out,
        "map_out": map_out,
    }
    if args.json:
        emit_json(out)
        return 0
    print_posterior_table(summ, names)
    print(f"posterior mode (RA, Dec) = ({out['posterior_mode_ra']:.3f}, "
          f"{out['posterior_mode_dec']:.3f}) deg, "
          f"50% / 90% areas {out['area_50_deg2']:.3g} / {out['area_90_deg2']:.3g} deg^2")  # fmt: skip
    print(f"divergences: {summ['divergences']}   wall {wall:.1f} s"
          + "".join(f"   -> {p}" for p in (args.out, map_out) if p))  # fmt: skip
    return 0


# ---------------------------------------------------------------------------- trials
def _backend(args: argparse.Namespace) -> dict[str, Any]:
    run: dict[str, Any] = {"backend": "local"}
    if args.scheduler:
        run = {"backend": "dask", "scheduler": args.scheduler}
    elif args.dask:
        run = {"backend": "dask"}
    if args.batch_size is not None:
        run["batch_size"] = args.batch_size
    return run


def _trials(args: argparse.Namespace) -> int:
    gamma = _validate_common(args)
    if args.n < 1:
        raise ConfigError(f"--n must be a positive number of trials, got {args.n}")
    if args.inject_ns is not None and not args.inject_ns > 0:
        raise ConfigError(f"--inject-ns must be positive, got {args.inject_ns}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {args.batch_size}")
    check_output(args.out, True, "--out")
    ana = build_spatial_prior(args, args.nside or 64)
    run = {**_backend(args), "progress": False if args.json else None}
    if args.inject_ns is None:
        res = ana.background_trials(args.n, seed=args.seed, gamma_fixed=gamma, **run)
    else:
        res = ana.signal_trials(args.n, ns=args.inject_ns, gamma=args.inject_gamma, seed=args.seed,
                                gamma_fixed=gamma, **run)  # fmt: skip
    if args.out:
        res.save(args.out)
    ts = res.columns["ts"]
    out: dict[str, Any] = {
        "n_trials": res.n_trials,
        "ts_median": float(np.median(ts)),
        "ts_q90": float(np.quantile(ts, 0.9)),
        "fraction_ts_zero": float(np.mean(ts <= 0)),
        "trials_per_s": float(res.meta.get("trials_per_s", float("nan"))),
        "compile_s": float(res.meta.get("compile_s", float("nan"))),
        "wall_s": float(res.meta.get("wall_s", float("nan"))),
        "nside": ana.nside,
        "n_pixels": len(ana.pixels),
        "seed": args.seed,
        "out": args.out,
    }
    if args.inject_ns is not None:
        flux = args.inject_ns * ana.flux_per_ns(args.inject_gamma)
        out.update({
            "inject_ns": args.inject_ns,
            "inject_gamma": args.inject_gamma,
            "flux_norm_injected": flux,
            "e2dnde_injected": flux * ana.e0_gev**2,
            "n_injected_mean": float(np.mean(res.columns["n_inj"])),
        })  # fmt: skip
        if "true_level" in res.columns:
            lv = res.columns["true_level"]
            out["coverage_50"] = float(np.mean(lv < 0.5))
            out["coverage_90"] = float(np.mean(lv < 0.9))
    return report(out, args.json, key_width=20)


# ---------------------------------------------------------------------------- registration
def register(verbs: dict[str, Any]) -> None:
    """Add ``scan``, ``sample spatial-prior`` and ``trials spatial-prior``."""
    p = verbs["scan"]
    add_scan_args(p)
    add_prior_args(p, required=False)
    p.add_argument("--nside", type=int, default=None, help="HEALPix resolution of the scan (default 64)")
    p.add_argument("--dec-range", default="-85,85",
                   help="declination limits LO,HI [deg] of an all-sky scan (default -85,85)")  # fmt: skip
    p.add_argument("--out", default=None, help="write the TS/NS/GAMMA/MLOG10P/LOG_BAYES maps (HEALPix FITS)")
    p.add_argument("--posterior-out", default=None,
                   help="with --prior: write the posterior map of the source position (FITS)")  # fmt: skip
    p.add_argument("--plot", default=None, help="write an all-sky TS map figure (.png, .pdf)")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_scan)

    p = verbs["sample"].add_parser(
        "spatial-prior", help="NUTS posterior of (RA, Dec, ns, gamma) with a sky-map prior on the position"
    )
    add_scan_args(p)
    add_prior_args(p, required=True)
    p.add_argument("--nside", type=int, default=None, help="HEALPix resolution of the region scan (64)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the ArviZ posterior to this netCDF file")
    p.add_argument("--map-out", default=None,
                   help="write the posterior map (FITS; default OUT_map.fits beside --out)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_sample)

    p = verbs["trials"].add_parser(
        "spatial-prior", help="background (scrambled RA) or signal trials (position drawn from the prior)"
    )
    add_scan_args(p)
    add_prior_args(p, required=True)
    p.add_argument("--nside", type=int, default=None, help="HEALPix resolution of the region scan (64)")
    p.add_argument("--n", type=int, default=100, help="number of trials")
    p.add_argument("--inject-ns", type=float, default=None,
                   help="mean injected signal events (default: background trials)")  # fmt: skip
    p.add_argument("--inject-gamma", type=float, default=2.0, help="spectral index of the injected signal")
    p.add_argument("--out", default=None, help="write the trials to this .npz file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="trials per vmapped batch (default 1)")
    p.add_argument("--dask", action="store_true", help="run batches on a dask LocalCluster")
    p.add_argument("--scheduler", default=None, help="dask scheduler address (implies --dask)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_trials)
