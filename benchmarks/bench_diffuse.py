"""Diffuse-fit performance: MAP after compilation, NUTS 4 x 1000 (11 parameters), 2,091-point profile scan.

Prints a table; with ``--release DIR`` (the HESE release's code, fetched by the user) the
release's -LLH evaluation and fit are timed in the same run and the ratios printed.
Targets (issue 5): MAP < 0.1 s on ~1e5 MC events, NUTS 4 x 1000 all 11 parameters
< 2 min with r_hat < 1.01, the 51 x 41 profile scan < 1 min on 2 cores. NUTS is timed
(from the call, so MAP start, tracing and compilation included) in two configurations:
``fast`` (300 warm-up steps, trees of at most 2^3 - 1 = 7 leapfrog steps) and the
library default (1000 warm-up steps, tree depth 10).

Usage::

    python benchmarks/bench_diffuse.py [--release DIR] [--n-neutrino 100000] [--skip-nuts] [--skip-scan]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HESE = REPO.parent / "shared" / "data" / "hese_7yr"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--release", default=None)
    ap.add_argument("--n-neutrino", type=int, default=100_000)
    ap.add_argument("--skip-nuts", action="store_true")
    ap.add_argument(
        "--nuts",
        default="fast,default",
        help="NUTS configurations to time: fast (warmup 300, max_tree_depth 3), default",
    )
    ap.add_argument("--skip-scan", action="store_true")
    ap.add_argument("--scan-lbfgsb", action="store_true", help="also time the point-by-point L-BFGS-B scan")
    args = ap.parse_args(argv)
    if not (HESE / "HESE_data.json").exists():
        print(f"SKIP: {HESE} not found")
        return 0
    import bayesnu  # noqa: F401
    from bayesnu.analyses.diffuse import DiffuseAnalysis
    from bayesnu.analyses.diffuse.profile import profile_scan
    from bayesnu.data.hese import read_hese_data, write_hese_mc
    from bayesnu.data.hese_simulate import HESESimulationConfig, simulate_hese_mc
    from bayesnu.inference import summarize

    mc = simulate_hese_mc(HESESimulationConfig(n_neutrino=args.n_neutrino, seed=1))
    data = read_hese_data(HESE / "HESE_data.json")
    rows = []
    a8 = DiffuseAnalysis(data, mc)
    a11 = DiffuseAnalysis(data, mc, spline_dir=HESE / "splines")
    print(f"MC events after cuts: {len(a8.mc_bin)}")
    a8.fit(compute_errors=False)
    for name, ana, method in (
        ("MAP 8 par", a8, "auto"),
        ("MAP 8 par, L-BFGS-B", a8, "lbfgsb"),
        ("MAP 11 par", a11, "auto"),
    ):
        t0 = time.perf_counter()
        fit = ana.fit(compute_errors=False, method=method)
        comp = time.perf_counter() - t0
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            ana.fit(compute_errors=False, method=method)
            ts.append(time.perf_counter() - t0)
        used = "L-BFGS-B" if fit.fits[0].message != "quasi-Newton converged" else "quasi-Newton"
        rows.append((name, min(ts), f"{used}; first call incl. compile {comp:.2f} s; -LLH {fit.neg_llh:.6f}"))
    ref = None
    if args.release:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from hese_release_reference import DETECTOR, Reference, photospline_available

        with tempfile.TemporaryDirectory() as tmp:
            files = write_hese_mc(tmp, mc)
            ref = Reference(args.release, HESE / "HESE_data.json", files, detector=False)
            p = a8.full_params({})
            t0 = time.perf_counter()
            for _ in range(3):
                ref.neg_llh(p)
            rows.append(("release -LLH eval", (time.perf_counter() - t0) / 3, ""))
            r = ref.fit(fixed=dict(DETECTOR))
            rows.append(("release MAP 8 par", r["seconds"], f"{r['nfev']} evaluations"))
            if photospline_available():
                ref11 = Reference(args.release, HESE / "HESE_data.json", files, detector=True)
                r = ref11.fit()
                rows.append(("release MAP 11 par", r["seconds"], f"{r['nfev']} evaluations"))
    if not args.skip_nuts:
        configs = {
            "fast": dict(warmup=300, max_tree_depth=3),
            "default": dict(warmup=1000, max_tree_depth=10),
        }
        for name in args.nuts.split(","):
            cfg = configs[name]
            t0 = time.perf_counter()
            dt = a11.sample(chains=4, draws=1000, seed=1, progress_bar=False, **cfg)
            sec = time.perf_counter() - t0
            s = summarize(dt, var_names=list(a11.free_parameters))
            rmax = max(v["r_hat"] for v in s["params"].values())
            ess = min(v["ess_bulk"] for v in s["params"].values())
            steps = float(np.mean(dt["sample_stats"]["n_steps"].values))
            rows.append((f"NUTS 4x1000 {name}", sec,
                         f"warmup {cfg['warmup']}, max_tree_depth {cfg['max_tree_depth']}: max r_hat {rmax:.4f}, "
                         f"min ESS {ess:.0f}, {steps:.1f} steps/draw, divergences {s['divergences']}"))  # fmt: skip
    if not args.skip_scan:
        g, n = np.linspace(2.0, 4.0, 51), np.linspace(0.0, 12.0, 41)
        profile_scan(a8, g[:2], n, progress=False)  # compile
        t0 = time.perf_counter()
        scan = profile_scan(a8, g, n, progress=False)
        rows.append(("profile scan 51x41, 8 par", time.perf_counter() - t0,
                     "6 nuisances re-fitted per point, row-batched Newton"))  # fmt: skip
        if args.scan_lbfgsb:
            t0 = time.perf_counter()
            ref_scan = profile_scan(a8, g, n, progress=False, method="lbfgsb")
            diff = float(np.max(np.abs(scan.neg_llh - ref_scan.neg_llh)))
            rows.append(
                ("profile scan, L-BFGS-B", time.perf_counter() - t0, f"max |d(-LLH)| vs Newton {diff:.1e}")
            )
    print(f"\n{'task':<28} {'seconds':>10}  note")
    for name, sec, note in rows:
        print(f"{name:<28} {sec:>10.3f}  {note}")
    times = {r[0]: r[1] for r in rows}
    if "release MAP 8 par" in times:
        print(f"speed-up MAP 8 par: x{times['release MAP 8 par'] / times['MAP 8 par']:.0f}")
    if "release MAP 11 par" in times:
        print(f"speed-up MAP 11 par: x{times['release MAP 11 par'] / times['MAP 11 par']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
