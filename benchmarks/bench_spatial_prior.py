"""Spatial-prior trials: throughput, and coverage of the posterior over the source position.

A simulated IC40-like season, a Gaussian prior map (sigma 3 deg) and, per trial, a source
drawn from the prior (pixel centres) with ``ns`` injected events (E^-2). For every trial the
region is rescanned and the posterior over the source pixel computed
(:func:`bayesnu.analyses.spatial_prior.region_trial`); the true pixel lies inside the
smallest region holding ``L`` iff ``true_level < L``. Printed: background and signal
trials per second (local; dask LocalCluster of 2 workers), and the coverage at 50%, 68%
and 90% with its binomial error, for a weak and a strong source.

Usage::

    python benchmarks/bench_spatial_prior.py [--nside 64] [--n 200] [--skip-dask]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("BAYESNU_JAX_CACHE", "0")

import bayesnu  # noqa: F401
from bayesnu.analyses.ps_inputs import season_models
from bayesnu.analyses.spatial_prior import SpatialPriorAnalysis
from bayesnu.config import cache_root
from bayesnu.data.ps_release import load_ps_release
from bayesnu.sky.maps import prior_gaussian


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nside", type=int, default=64)
    ap.add_argument("--n", type=int, default=200, help="signal trials per strength")
    ap.add_argument("--n-bkg", type=int, default=100)
    ap.add_argument("--sigma-deg", type=float, default=3.0)
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args()
    from bayesnu.data.simulate import simulate_release

    d = cache_root() / "bench" / "sp_ic40"
    if not (d / "events" / "IC40_exp.csv").exists():
        simulate_release(d, seasons=["IC40"], seed=23, overwrite=True)
    models = season_models(load_ps_release(d, "IC40"))
    prior = prior_gaussian(250.0, 10.0, args.sigma_deg, args.nside)
    ana = SpatialPriorAnalysis(models, prior)
    print(f"IC40-like season ({sum(m.n_events for m in models)} events), nside {args.nside}, "
          f"Gaussian prior sigma {args.sigma_deg} deg: {len(ana.pixels)} pixels in the 99.9% region")  # fmt: skip
    rows = []
    t0 = time.perf_counter()
    bg = ana.background_trials(args.n_bkg, seed=1, progress=False)
    rows.append(("background, local", bg.n_trials, time.perf_counter() - t0, bg.meta))
    if not args.skip_dask:
        t0 = time.perf_counter()
        bgd = ana.background_trials(args.n_bkg, seed=1, backend="dask", progress=False)
        rows.append(("background, dask 2 workers", bgd.n_trials, time.perf_counter() - t0, bgd.meta))
        same = np.array_equal(bg.columns["ts"], bgd.columns["ts"])
    cov = []
    for ns in (8.0, 25.0):
        t0 = time.perf_counter()
        sig = ana.signal_trials(args.n, ns=ns, gamma=2.0, seed=2, progress=False)
        rows.append((f"signal ns={ns:g}, local", sig.n_trials, time.perf_counter() - t0, sig.meta))
        lv = sig.columns["true_level"]
        cov.append((ns, [(L, float(np.mean(lv < L)), float(np.sqrt(L * (1 - L) / len(lv)))) for L in (0.5, 0.68, 0.9)],
                    float(np.median(sig.columns["ts"]))))  # fmt: skip
    print(f"{'run':<28} {'trials':>7} {'wall s':>8} {'compile s':>9} {'trials/s':>9}")
    for name, n, wall, meta in rows:
        print(f"{name:<28} {n:7d} {wall:8.1f} {meta.get('compile_s', float('nan')):9.1f} "
              f"{meta.get('trials_per_s', float('nan')):9.2f}")  # fmt: skip
    if not args.skip_dask:
        print(f"dask results identical to local: {same}")
    print(
        f"background TS: median {np.median(bg.columns['ts']):.2f}, 90% {np.quantile(bg.columns['ts'], 0.9):.2f}"
    )
    print("coverage of the posterior over the source pixel (fraction of trials with the true pixel inside):")
    print(f"{'ns':>5} {'median TS':>9} " + " ".join(f"{f'{round(100 * L)}%':>14}" for L in (0.5, 0.68, 0.9)))
    for ns, c, med in cov:
        print(f"{ns:5g} {med:9.1f} " + " ".join(f"{v:6.3f} +- {e:5.3f}" for _, v, e in c))


if __name__ == "__main__":
    main()
