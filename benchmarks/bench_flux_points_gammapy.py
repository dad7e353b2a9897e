"""Flux points: bayesnu's estimator against gammapy's FluxPointsEstimator on the same dataset.

The dataset is the one of ``tests/test_flux_points.py``: 48 true x 24 reconstructed
energy bins from 100 GeV to 100 TeV, a 0.1-dex Gaussian energy dispersion, a known
background and Poisson counts of a power law (index 2.5); flux points in half-decade
bins with gammapy's definitions (reco-energy restriction, ``n_sigma=1``,
``n_sigma_ul=2``, default norm scan). Prints, per bin, both results and their relative
differences, then the wall times (after a warm-up call for both).

gammapy is run twice: with its estimator defaults (MINUIT ``tol=0.1``) and with MINUIT's
tolerance tightened to ``1e-4`` (the only change), to separate definition differences
from optimiser tolerance.

Usage::

    python benchmarks/bench_flux_points_gammapy.py [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bayesnu  # noqa: F401
from bayesnu.frequentist.flux_points import estimate_flux_points
from bayesnu.likelihood.spectrum import flux_points_problem, to_gammapy
from tests.test_flux_points import EDGES, REF, make_dataset

COLS = ("norm", "norm_err", "norm_errn", "norm_errp", "norm_ul", "ts")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    from astropy import units as u
    from gammapy.estimators import FluxPointsEstimator
    from gammapy.modeling import Fit

    ds = make_dataset(seed=args.seed)
    prob = flux_points_problem(ds, REF, EDGES)
    estimate_flux_points(prob)  # warm-up (compilation)
    t0 = time.perf_counter()
    ours = estimate_flux_points(prob)
    t_ours = time.perf_counter() - t0

    def gp(fit: Fit | None) -> tuple[object, float]:
        kw = {} if fit is None else {"fit": fit}
        est = FluxPointsEstimator(energy_edges=EDGES * u.GeV, source="source", selection_optional="all", **kw)
        t = time.perf_counter()
        tab = est.run([to_gammapy(ds, REF)]).to_table(sed_type="likelihood")
        return tab, time.perf_counter() - t

    gp(None)  # warm-up
    g_def, t_def = gp(None)
    g_tol, t_tol = gp(Fit(optimize_opts={"tol": 1e-4}, confidence_opts={"backend": "scipy"}))

    for label, g in (("gammapy, MINUIT tol=1e-4", g_tol), ("gammapy defaults (tol=0.1)", g_def)):
        print(f"\n## bayesnu vs {label}: relative difference (ts: absolute)")
        print("| bin [GeV] | counts | " + " | ".join(COLS) + " |")
        print("|---|---|" + "---|" * len(COLS))
        for i in range(len(ours)):
            cells = []
            for c in COLS:
                a, b = float(ours[c][i]), float(g[c][i])
                cells.append(f"{a - b:+.1e}" if c == "ts" else f"{a / b - 1:+.1e}")
            rng = f"{ours['e_min'][i]:.0f}-{ours['e_max'][i]:.0f}"
            print(f"| {rng} | {int(ours['counts'][i, 0])} | " + " | ".join(cells) + " |")
    print("\n## values (bayesnu)")
    ours[["e_min", "e_max", *COLS]].pprint(max_width=200)
    print(f"\n## wall time for {len(ours)} bins (after warm-up)")
    print("| estimator | s | ratio to bayesnu |")
    print("|---|---|---|")
    print(f"| bayesnu | {t_ours:.2f} | 1.0 |")
    print(f"| gammapy defaults | {t_def:.2f} | {t_def / t_ours:.1f} |")
    print(f"| gammapy tol=1e-4 | {t_tol:.2f} | {t_tol / t_ours:.1f} |")


if __name__ == "__main__":
    main()
