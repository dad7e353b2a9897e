"""Trial-runner throughput on a reference problem: batched vmap vs a per-trial loop vs dask.

The problem is :func:`bayesnu.frequentist.testproblems.peak_trial` (an unbinned 1-D
"point source" over a flat background, fitted with the IceCube-style likelihood in
``0 <= ns < N`` by a safeguarded Newton iteration), with ``--events`` background events
padded to a fixed size. Measured in the same run:

* the peer: a Python loop calling the jitted single-trial function (one dispatch per
  trial, what a naive port would do);
* :func:`bayesnu.frequentist.trials.run_trials`, local backend, several batch sizes;
* the same with ``backend="dask"`` on a LocalCluster of ``--workers`` single-threaded
  processes: the first call (each worker compiles the kernel) and a second call on the
  same, warm workers; and whether its results are identical to the local run.

Compile time is measured separately (ahead-of-time compilation of the batch kernel).

Usage::

    python benchmarks/bench_trials.py [--events 1000] [--trials 20000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

import bayesnu  # noqa: F401
from bayesnu.frequentist.testproblems import PeakProblem, peak_trial
from bayesnu.frequentist.trials import run_trials, trial_key
from bayesnu.parallel import dask_client


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=float, default=1000.0, help="mean number of background events")
    ap.add_argument("--trials", type=int, default=50000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--loop-trials", type=int, default=300, help="trials for the per-trial loop peer")
    args = ap.parse_args()

    n_max = int(args.events + 6 * np.sqrt(args.events) + 64)
    problem = PeakProblem(n_background=args.events, sigma=0.05, n_max=n_max)
    print(f"# peak problem: {args.events:g} background events (padded to {n_max}), {args.trials} trials")
    print(f"# machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; jax {jax.__version__}")

    one = jax.jit(peak_trial)
    jax.block_until_ready(one(trial_key(1, 0), 0.0, problem))
    t0 = time.perf_counter()
    for i in range(args.loop_trials):
        jax.block_until_ready(one(trial_key(1, i), 0.0, problem))
    loop_rate = args.loop_trials / (time.perf_counter() - t0)

    rows = [("per-trial jit loop (peer)", "-", float("nan"), loop_rate, "")]
    ref = None
    for bs in (256, 1024, 4096):
        res = run_trials(
            peak_trial, args.trials, seed=1, inputs=(0.0, problem), batch_size=bs, progress=False
        )
        if ref is None:
            ref = res
        same = all(np.array_equal(ref[k], res[k]) for k in ref.names)
        rows.append(
            (
                "run_trials local",
                str(bs),
                res.meta["compile_s"],
                res.meta["trials_per_s"],
                f"identical={same}",
            )
        )
    local = run_trials(
        peak_trial, args.trials, seed=1, inputs=(0.0, problem), batch_size=1024, progress=False
    )
    with dask_client(n_workers=args.workers) as client:
        for label in ("first call", "warm workers"):
            t0 = time.perf_counter()
            res = run_trials(
                peak_trial,
                args.trials,
                seed=1,
                inputs=(0.0, problem),
                batch_size=1024,
                backend="dask",
                scheduler=client,
                progress=False,
            )
            wall = time.perf_counter() - t0
            same = all(np.array_equal(local[k], res[k]) for k in local.names)
            rows.append(
                (
                    f"dask {res.meta['n_workers']} workers, {label}",
                    "1024",
                    float("nan"),
                    args.trials / wall,
                    f"identical={same}, wall {wall:.1f} s",
                )
            )
    print(f"| {'runner':34s} | batch | compile s | trials/s | x peer | note")
    print(f"|{'-' * 36}|-------|-----------|----------|--------|-----")
    for name, bs, comp, rate, note in rows:
        print(f"| {name:34s} | {bs:>5s} | {comp:9.2f} | {rate:8.0f} | {rate / loop_rate:6.1f} | {note}")
    ts = ref["ts"]
    print(f"# background TS: {np.mean(ts == 0):.3f} at zero, median {np.median(ts):.3g}")


if __name__ == "__main__":
    main()
