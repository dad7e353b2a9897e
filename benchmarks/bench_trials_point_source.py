"""Point-source pseudo-experiments per second, against SkyLLH in the same run.

Background (scrambled RA) and signal-injection trials at NGC 1068 on

* IC40: real events, effective area and uptime with a simulated smearing matrix;
* a simulated 10-season release,

for bayesnu (local vmapped batches; and a dask LocalCluster of 2 single-threaded
workers) and SkyLLH (``ana.do_trials``, one core). Compile time is reported apart.
The TS distributions are compared too (fraction at ns = 0, quantiles).

Usage::

    python benchmarks/bench_trials_point_source.py [--n 20000] [--n-skyllh 300] [--skip-skyllh]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("BAYESNU_JAX_CACHE", "0")

import bayesnu  # noqa: F401
from bayesnu.analyses import ps_frequentist as pf
from bayesnu.analyses.point_source import PointSourceAnalysis, Source
from bayesnu.data.ps_release import RELEASE_10Y, load_ps_release

SRC = Source(40.67, -0.01, "NGC 1068")


def ours(ana: PointSourceAnalysis, n: int, ns_inj: float | None, backend: str) -> dict:
    run = {"seed": 1, "backend": backend, "progress": False}  # library default batch size
    if backend == "dask":
        run["scheduler"] = None
    t0 = time.perf_counter()
    if ns_inj is None:
        res = pf.background_trials(ana, n, **run)
    else:
        res = pf.signal_trials(ana, n, ns=ns_inj, gamma=2.0, **run)
    wall = time.perf_counter() - t0
    m = res.meta
    return {
        "trials_per_s": m["trials_per_s"],
        "compile_s": m.get("compile_s", float("nan")),
        "wall_s": wall,
        "ts": res.columns["ts"],
        "ns": res.columns["ns"],
    }


def skyllh(directory: Path, seasons: list[str], n: int, ns_inj: float) -> dict | None:
    try:
        from skyllh.analyses.i3.publicdata_ps.time_integrated_ps import create_analysis
        from skyllh.core.config import Config
        from skyllh.core.random import RandomStateService
        from skyllh.core.source_model import PointLikeSource
        from skyllh.datasets.i3 import PublicData_10y_ps
    except ImportError:
        return None
    cfg = Config()
    dsc = PublicData_10y_ps.create_dataset_collection(
        cfg, base_path=str(directory.parent), sub_path_fmt=directory.name
    )
    ana = create_analysis(cfg, datasets=[dsc[s] for s in seasons],
                          source=PointLikeSource(np.radians(SRC.ra_deg), np.radians(SRC.dec_deg)))  # fmt: skip
    rss = RandomStateService(1)
    t0 = time.perf_counter()
    tr = ana.do_trials(rss, n=n, mean_n_sig=ns_inj, ncpu=1)
    wall = time.perf_counter() - t0
    return {"trials_per_s": n / wall, "ts": np.asarray(tr["ts"]), "ns": np.asarray(tr["ns"])}


def describe(ts: np.ndarray, ns: np.ndarray) -> str:
    return (f"ns=0 {np.mean(ns <= 0):.2f}, TS q50 {np.quantile(ts, 0.5):.3f} q90 {np.quantile(ts, 0.9):.2f} "
            f"q99 {np.quantile(ts, 0.99):.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path,
                    default=Path(os.environ.get("BAYESNU_TEST_DATA", "../shared/data")) / "icecube_10year_ps")  # fmt: skip
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--n-skyllh", type=int, default=300)
    ap.add_argument("--skip-skyllh", action="store_true")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--n-ten", type=int, default=2000, help="trials on the 10-season release")
    args = ap.parse_args()
    import bench_point_source as bps  # same folder: the shared, cached data preparation

    ic40, ten = bps.prepare(args.real)
    cases = [("IC40", ic40, ["IC40"])] if ic40 else []
    cases.append(("10 seasons (sim.)", ten, list(RELEASE_10Y.season_names)))
    rows = []
    for label, d, seasons in cases:
        ana = PointSourceAnalysis(load_ps_release(d, seasons, require_smearing=True), SRC)
        for kind, ns_inj in (("background", None), ("signal ns=20", 20.0)):
            n = args.n if label == "IC40" else args.n_ten
            a = ours(ana, n, ns_inj, "local")
            dk = None if args.skip_dask else ours(ana, n, ns_inj, "dask")
            s = None if args.skip_skyllh else skyllh(d, seasons, args.n_skyllh, ns_inj or 0.0)
            rows.append((label, kind, a, dk, s))
            print(
                f"[{label} / {kind}] bayesnu {a['trials_per_s']:.0f}/s (compile {a['compile_s']:.1f} s), "
                f"dask {dk['trials_per_s'] if dk else float('nan'):.0f}/s, "
                f"SkyLLH {s['trials_per_s'] if s else float('nan'):.1f}/s",
                flush=True,
            )
    print(f"\n{'data':<18} {'trials':<13} {'bayesnu/s':>10} {'compile s':>9} {'dask(2)/s':>10} {'SkyLLH/s':>9} "
          f"{'ratio':>7} {'ratio dask':>10}")  # fmt: skip
    for label, kind, a, dk, s in rows:
        sk = s["trials_per_s"] if s else float("nan")
        dd = dk["trials_per_s"] if dk else float("nan")
        print(f"{label:<18} {kind:<13} {a['trials_per_s']:10.0f} {a['compile_s']:9.1f} {dd:10.0f} {sk:9.1f} "
              f"{a['trials_per_s'] / sk:7.0f}x {dd / sk:9.0f}x")  # fmt: skip
    print("\nTS distributions (bayesnu | SkyLLH):")
    for label, kind, a, _, s in rows:
        print(
            f"  {label:<18} {kind:<13} {describe(a['ts'], a['ns'])} | {describe(s['ts'], s['ns']) if s else '-'}"
        )


if __name__ == "__main__":
    main()
