"""Simulation-based calibration of the point-source posterior (NUTS), the full version.

Draws (ns, gamma) from the prior (ns ~ U(0, 40), gamma ~ U(1, 4)), simulates data from
the likelihood's own model (:class:`bayesnu.analyses.ps_simulate.ModelSampler`) on an
IC40-like simulated season, samples the posterior with NUTS (one compiled sampler for
all data sets) and prints the rank-uniformity chi-square tests and the 68% / 90%
central-interval coverage with their binomial errors.

Usage::

    python benchmarks/bench_sbc_point_source.py [--n 200] [--draws 400] [--method nuts|grid]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BAYESNU_JAX_CACHE", "0")

import bayesnu  # noqa: F401
from bayesnu.analyses.point_source import Source
from bayesnu.analyses.ps_calibration import run_sbc
from bayesnu.analyses.ps_inputs import season_models
from bayesnu.data.ps_release import load_ps_release
from bayesnu.data.simulate import simulate_release


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="simulated data sets")
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=400)
    ap.add_argument("--method", choices=["nuts", "grid"], default="nuts")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "rel"
        simulate_release(d, seasons=["IC40"], seed=args.seed, n_events=36900)
        models = season_models(load_ps_release(d, "IC40"))
        t0 = time.perf_counter()
        res = run_sbc(models, Source(150.0, 20.0), args.n, seed=args.seed, method=args.method,
                      draws=args.draws, warmup=args.warmup, ns_prior=(0.0, 40.0))  # fmt: skip
        wall = time.perf_counter() - t0
    print(f"\nSBC of the point-source posterior ({args.method}, {args.n} data sets, {res.n_draws} draws each, "
          f"{wall:.0f} s)")  # fmt: skip
    print(
        f"{'param':<7} {'chi2':>7} {'dof':>4} {'p':>7}   {'68% cover':>10} {'+-':>6}   {'90% cover':>10} {'+-':>6}"
    )
    for name in ("ns", "gamma"):
        u = res.uniformity[name]
        c68, c90 = res.coverage[name]
        print(f"{name:<7} {u.chi2:7.2f} {u.dof:4d} {u.pvalue:7.3f}   {c68.fraction:10.3f} {c68.binomial_error:6.3f}"
              f"   {c90.fraction:10.3f} {c90.binomial_error:6.3f}")  # fmt: skip
    print("rank histograms:", {k: v.counts.tolist() for k, v in res.uniformity.items()})


if __name__ == "__main__":
    main()
