"""Agreement of bayesnu's diffuse fit with the HESE release's own fit code.

Runs both on identical inputs (the real 102 events + an MC simulated by bayesnu in the
release schema) and prints, for the SAY and the Poisson likelihood and for 8 free
parameters (detector at nominal) and, when photospline imports, 11:

* -LLH at the same parameter points from both codes, their constant offset and the
  largest difference of -LLH differences between points (acceptance: 1e-6);
* both best fits (acceptance: 1e-3 relative, prompt_norm 0.01 absolute) and times.

``--write-fixture F`` stores the reference values as the JSON that
``tests/test_diffuse_agreement.py`` compares against. Exits 0 with a message (a "skip")
when the release folder is absent.

Usage::

    python benchmarks/compare_hese_release.py RELEASE_DIR [--data HESE_data.json]
        [--splines DIR] [--n-neutrino 100000] [--seed 1] [--points 10]
        [--write-fixture tests/data/hese_release_reference.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hese_release_reference import (
    DETECTOR,
    PARAMETER_NAMES,
    Reference,
    evaluation_points,
    photospline_available,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hese_7yr" / "HESE_data.json"


def _bayesnu_side(data_file, mc_dir, spline_dir, likelihood):
    import bayesnu  # noqa: F401
    from bayesnu.analyses.diffuse import DiffuseAnalysis

    return DiffuseAnalysis.from_files(data_file, mc_dir, likelihood=likelihood, spline_dir=spline_dir)


def compare(release_dir, data_file, spline_dir, n_neutrino, seed, n_points, detector, likelihood, fits=True):
    """One comparison; returns a JSON-friendly dict."""
    from bayesnu.data.hese import write_hese_mc
    from bayesnu.data.hese_simulate import HESESimulationConfig, simulate_hese_mc

    cfg = HESESimulationConfig(n_neutrino=n_neutrino, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_hese_mc(tmp, simulate_hese_mc(cfg))
        t0 = time.perf_counter()
        ref = Reference(release_dir, data_file, files, detector=detector, likelihood=likelihood)
        ref_setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        ana = _bayesnu_side(data_file, tmp, spline_dir if detector else None, likelihood)
        bn_setup = time.perf_counter() - t0
    points = evaluation_points(n_points, detector)
    t0 = time.perf_counter()
    ref_vals = [ref.neg_llh(p)[0] for p in points]
    ref_eval_s = (time.perf_counter() - t0) / len(points)
    bn_vals = [ana.neg_llh(p) for p in points]
    ref_arr, bn_arr = np.array(ref_vals), np.array(bn_vals)
    offset = float(np.median(bn_arr - ref_arr))
    diff_of_diffs = float(np.max(np.abs((bn_arr - bn_arr[0]) - (ref_arr - ref_arr[0]))))
    out = {
        "likelihood": likelihood,
        "n_free": 11 if detector else 8,
        "mc": {"n_neutrino": n_neutrino, "seed": seed, "n_mc_after_cuts": ref.n_mc},
        "points": points,
        "reference_neg_llh": ref_vals,
        "bayesnu_neg_llh": bn_vals,
        "offset": offset,
        "max_abs_diff": float(np.max(np.abs(bn_arr - ref_arr))),
        "max_diff_of_differences": diff_of_diffs,
        "reference_seconds_per_eval": ref_eval_s,
        "reference_setup_s": ref_setup,
        "bayesnu_setup_s": bn_setup,
    }
    if fits:
        fixed = {} if detector else dict(DETECTOR)
        rfit = ref.fit(fixed=fixed)
        ana.fit(fixed=fixed)  # compile
        t0 = time.perf_counter()
        bfit = ana.fit(fixed=fixed)
        bn_fit_s = time.perf_counter() - t0
        rel = {}
        for n in PARAMETER_NAMES:
            a, b = rfit["params"][n], bfit.params[n]
            rel[n] = abs(a - b) if n == "prompt_norm" or abs(a) < 1e-3 else abs(a - b) / abs(a)
        out["reference_fit"] = rfit
        out["bayesnu_fit"] = {
            "params": bfit.params,
            "neg_llh": bfit.neg_llh,
            "seconds": bn_fit_s,
            "converged": bfit.converged,
        }
        out["fit_param_diff"] = rel
        out["fit_neg_llh_diff"] = bfit.neg_llh - rfit["neg_llh"]
    return out


def _print(res: dict) -> None:
    print(f"\n== {res['likelihood']}, {res['n_free']} free parameters, MC {res['mc']}")
    print(f"{'point':>5} {'release -LLH':>20} {'bayesnu -LLH':>20} {'difference':>12}")
    for i, (a, b) in enumerate(zip(res["reference_neg_llh"], res["bayesnu_neg_llh"])):
        print(f"{i:>5} {a:>20.10f} {b:>20.10f} {b - a:>12.3e}")
    print(
        f"constant offset {res['offset']:.3e}; max |diff of -LLH differences| "
        f"{res['max_diff_of_differences']:.3e} (acceptance 1e-6)"
    )
    if "reference_fit" in res:
        rf, bf = res["reference_fit"], res["bayesnu_fit"]
        print(f"{'parameter':>18} {'release':>14} {'bayesnu':>14} {'|diff| (rel)':>14}")
        for n in PARAMETER_NAMES:
            print(
                f"{n:>18} {rf['params'][n]:>14.7f} {bf['params'][n]:>14.7f} {res['fit_param_diff'][n]:>14.2e}"
            )
        print(f"{'-LLH':>18} {rf['neg_llh']:>14.7f} {bf['neg_llh']:>14.7f} {res['fit_neg_llh_diff']:>14.2e}")
        print(
            f"fit time: release {rf['seconds']:.2f} s ({rf['nfev']} evaluations), "
            f"bayesnu {bf['seconds']:.3f} s -> x{rf['seconds'] / bf['seconds']:.0f}"
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("release_dir", help="folder holding the release's HESE_fit.py")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--splines", default=None, help="spline folder (default: RELEASE_DIR/resources/splines)")
    ap.add_argument("--n-neutrino", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--no-detector", action="store_true", help="skip the 11-parameter comparison")
    ap.add_argument("--no-fits", action="store_true", help="only compare -LLH at points")
    ap.add_argument("--likelihoods", default="say,poisson")
    ap.add_argument("--write-fixture", default=None)
    ap.add_argument("--json", default=None, help="write all results to this JSON file")
    args = ap.parse_args(argv)
    release = Path(args.release_dir)
    if not (release / "HESE_fit.py").exists():
        print(
            f"SKIP: the HESE release code is not at {release} (fetch it and pass the folder with HESE_fit.py)"
        )
        return 0
    if not Path(args.data).exists():
        print(f"SKIP: data file {args.data} not found")
        return 0
    splines = Path(args.splines) if args.splines else release / "resources" / "splines"
    modes = [False]
    if not args.no_detector:
        if photospline_available():
            modes.append(True)
        else:
            print("photospline is not importable: 11-parameter comparison skipped (8-parameter only)")
    results = []
    for detector in modes:
        for lk in args.likelihoods.split(","):
            res = compare(
                release,
                args.data,
                splines,
                args.n_neutrino,
                args.seed,
                args.points,
                detector,
                lk,
                fits=not args.no_fits,
            )
            _print(res)
            results.append(res)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.write_fixture:
        keep = ("likelihood", "n_free", "mc", "points", "reference_neg_llh", "reference_fit")
        fixture = {
            "description": "HESE release fit code (-LLH at points, best fit) on the real 102 events and "
            "bayesnu-simulated MC; written by benchmarks/compare_hese_release.py",
            "results": [{k: r[k] for k in keep if k in r} for r in results],
        }
        Path(args.write_fixture).write_text(json.dumps(fixture, indent=1))
        print(f"fixture written to {args.write_fixture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
