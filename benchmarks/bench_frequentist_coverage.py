"""Large-sample statistical checks of the frequentist engines (beyond the unit tests).

1. Neyman upper-limit coverage on the 1-D peak search (continuous TS with a point mass
   at 0) and on Poisson counting (discrete TS), for several true strengths and CLs.
2. Wilks/Chernoff p-values against background trials: where the asymptotic regime holds
   (many background events under the signal PDF) and where it does not.
3. Sensitivity of Poisson counting (exact answer known) from several seeds: pulls
   ``(estimate - exact) / stated error``.

Usage::

    python benchmarks/bench_frequentist_coverage.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

import bayesnu  # noqa: F401
from bayesnu.frequentist.limits import neyman_upper_limit
from bayesnu.frequentist.pvalues import empirical_pvalue, fit_chi2_tail, wilks_pvalue
from bayesnu.frequentist.sensitivity import sensitivity
from bayesnu.frequentist.testproblems import PeakProblem, counting_trial, peak_trial
from bayesnu.frequentist.trials import run_trials, signal_sampler


def coverage(trial, inputs_of, grid, mu_trues, cls, n_sig, n_obs, seed) -> None:
    signal = [
        run_trials(trial, n_sig, seed=seed + i, inputs=inputs_of(m), batch_size=1000)["ts"]
        for i, m in enumerate(grid)
    ]
    for mu in mu_trues:
        obs = run_trials(
            trial, n_obs, seed=seed + 10_000 + int(mu * 10), inputs=inputs_of(mu), batch_size=1000
        )["ts"]
        for cl in cls:
            uls = np.array(
                [
                    neyman_upper_limit(
                        t, strengths=grid, signal_ts=signal, cl=cl, model="monotone", n_boot=0
                    ).upper
                    for t in obs
                ]
            )
            cov = np.mean(uls >= mu)
            err = np.sqrt(cl * (1 - cl) / n_obs)
            nan = np.mean(~np.isfinite(uls))
            print(f"| {mu:5.1f} | {cl:.2f} | {cov:.4f} | {(cov - cl) / err:+.1f} | {nan:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials")
    args = ap.parse_args()
    f = 0.25 if args.quick else 1.0
    t0 = time.perf_counter()

    print("## 1a. Neyman UL coverage, 1-D peak search (100 background events)")
    print("| mu_true | CL | coverage | pull | NaN |\n|---|---|---|---|---|")
    peak = PeakProblem(n_background=100.0, sigma=0.05, n_max=192)
    coverage(
        peak_trial,
        lambda m: (m, peak),
        np.arange(0, 60.1, 1.0),
        (4.0, 9.0, 16.0),
        (0.68, 0.9, 0.95),
        int(1000 * f),
        int(4000 * f),
        100,
    )

    print("\n## 1b. Neyman UL coverage, Poisson counting (b = 4): discrete TS, coverage >= CL")
    print("| mu_true | CL | coverage | pull | NaN |\n|---|---|---|---|---|")
    coverage(
        counting_trial,
        lambda m: (m, 4.0),
        np.arange(0, 40.1, 1.0),
        (2.0, 6.0, 12.0),
        (0.9,),
        int(1000 * f),
        int(4000 * f),
        200,
    )

    print("\n## 2. Wilks (1/2 chi2_1) vs background trials: z = (empirical - Wilks) / binomial error")
    print("| background events | sigma | n trials | eta fit | ndof fit | z(TS=1) | z(2.71) | z(4) | z(9) |")
    print("|---|---|---|---|---|---|---|---|---|")
    n = int(40000 * f)
    for nb, sig in ((200.0, 0.05), (2000.0, 0.05), (2000.0, 0.2)):
        prob = PeakProblem(n_background=nb, sigma=sig, n_max=int(nb + 6 * np.sqrt(nb) + 64))
        ts = run_trials(peak_trial, n, seed=5, inputs=(0.0, prob), batch_size=1000)["ts"]
        grid = np.array([1.0, 2.71, 4.0, 9.0])
        e = empirical_pvalue(grid, ts)
        z = (e.pvalue - wilks_pvalue(grid)) / np.where(e.pvalue_err > 0, e.pvalue_err, np.nan)
        fit = fit_chi2_tail(ts)
        fitted = f"{fit.eta:.4f} +- {fit.eta_err:.4f} | {fit.ndof:.3f} +- {fit.ndof_err:.3f}"
        print(f"| {nb:g} | {sig:g} | {n} | {fitted} | " + " | ".join(f"{v:+.1f}" for v in z) + " |")

    print("\n## 3. Sensitivity of Poisson counting (b = 10), exact 5.407: pulls over seeds")
    bg = run_trials(counting_trial, 20000, seed=1, inputs=(0.0, 10.0), batch_size=1000)["ts"]
    samp = signal_sampler(counting_trial, (0.0, 10.0), batch_size=1000)
    exact = stats.chi2.ppf(0.9, 22) / 2 - 10.0
    print("| seed | sensitivity | error | pull |\n|---|---|---|---|")
    pulls = []
    for seed in range(1, 6 if args.quick else 11):
        r = sensitivity(samp, bg, seed=seed, n_trials=2000, strength_init=2.0, n_boot=100)
        pulls.append((r.strength - exact) / r.strength_err)
        print(f"| {seed} | {r.strength:.3f} | {r.strength_err:.3f} | {pulls[-1]:+.2f} |")
    rms = np.sqrt(np.mean(np.square(pulls)))
    print(f"pull mean {np.mean(pulls):+.2f}, rms {rms:.2f} (1 if the errors are right)")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
