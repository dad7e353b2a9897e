"""Simulation-based calibration of the diffuse posterior for (astro_norm, astro_gamma), the full version.

Parameters are drawn from the prior: astro_norm ~ U(0, 15), astro_gamma ~ U(2, 3.5)
and, with ``--method nuts``, the free nuisance parameters from the release's priors
(prompt_norm, flat and improper in the release, ~ U(0, 4) here). Counts are simulated
from the likelihood's own generative model on bayesnu's simulated HESE MC
(:func:`bayesnu.analyses.diffuse.calibration.simulate_counts`: SAY = Poisson-gamma), the
posterior is sampled with NUTS (one chain per data set, one compiled sampler) or
computed on a grid (nuisances fixed), and the rank-uniformity chi-square tests and the
68% / 90% central-interval coverage with binomial errors are printed for astro_norm,
astro_gamma and every free nuisance parameter.

Usage::

    python benchmarks/bench_sbc_diffuse.py [--n 50] [--method nuts|grid] [--likelihood say|poisson]
        [--draws 200] [--warmup 200] [--thin 2] [--free conv_norm,muon_norm,...] [--n-neutrino 12000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("BAYESNU_JAX_CACHE", "0")

import numpy as np

import bayesnu  # noqa: F401
from bayesnu.analyses.diffuse import DiffuseAnalysis
from bayesnu.analyses.diffuse.calibration import run_diffuse_sbc
from bayesnu.analyses.diffuse.card import read_hese_data_placeholder
from bayesnu.analyses.diffuse.params import PARAMETERS
from bayesnu.data.hese_simulate import HESESimulationConfig, simulate_hese_mc

NUISANCES = ("conv_norm", "prompt_norm", "muon_norm", "cr_delta_gamma", "kpi_ratio", "nunubar_ratio")
PRIORS = {
    "astro_norm": {"lower": 0.0, "upper": 15.0},
    "astro_gamma": {"lower": 2.0, "upper": 3.5},
    "prompt_norm": {"lower": 0.0, "upper": 4.0},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="simulated data sets")
    ap.add_argument("--method", choices=["nuts", "grid"], default="nuts")
    ap.add_argument("--likelihood", choices=["say", "poisson"], default="say")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--thin", type=int, default=2)
    ap.add_argument("--grid", type=int, default=81, help="grid nodes per axis (--method grid)")
    ap.add_argument(
        "--free",
        default=",".join(NUISANCES),
        help="free nuisance parameters with --method nuts (comma-separated; the others fixed)",
    )
    ap.add_argument("--n-neutrino", type=int, default=12000, help="simulated MC neutrinos")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    free = [] if args.method == "grid" else [s for s in args.free.split(",") if s]
    unknown = set(free) - set(NUISANCES)
    if unknown:
        ap.error(f"--free: unknown nuisance(s) {sorted(unknown)}; choose from {NUISANCES}")
    fixed = {n: PARAMETERS[n].init for n in PARAMETERS if n not in ("astro_norm", "astro_gamma", *free)}
    mc = simulate_hese_mc(HESESimulationConfig(n_neutrino=args.n_neutrino, n_muon=400, seed=2))
    ana = DiffuseAnalysis(
        read_hese_data_placeholder(), mc, priors=PRIORS, fixed=fixed, likelihood=args.likelihood
    )
    t0 = time.perf_counter()
    res = run_diffuse_sbc(ana, args.n, seed=args.seed, method=args.method, n_grid=(args.grid, args.grid),
                          draws=args.draws, warmup=args.warmup, thin=args.thin)  # fmt: skip
    wall = time.perf_counter() - t0
    what = (
        f"grid {args.grid}x{args.grid}, nuisances fixed"
        if args.method == "grid"
        else f"NUTS {args.warmup}+{args.draws} thin {args.thin}, free: {', '.join(res.names)}"
    )
    print(
        f"\nSBC of the diffuse posterior ({args.likelihood}, {what}; {args.n} data sets, "
        f"{res.n_draws} draws per rank; MC {args.n_neutrino} neutrinos, {len(ana.mc_bin)} in bins; "
        f"{wall:.0f} s, {wall / args.n:.2f} s per data set)"
    )
    print(res.table())
    if res.divergences.size:
        print(f"divergent transitions: {int(res.divergences.sum())} in {int(np.count_nonzero(res.divergences))} "
              f"of {res.divergences.size} data sets")  # fmt: skip
    print("rank histograms:", {k: v.counts.tolist() for k, v in res.uniformity.items()})


if __name__ == "__main__":
    main()
