"""Point-source analysis speed and memory, against SkyLLH in the same run.

Measures, on identical files:

* IC40 (real events, effective area and uptime, simulated smearing matrix) and a
  simulated 10-season release: analysis set-up time, compile time and the time of one
  maximum-likelihood fit after compilation, for bayesnu and for SkyLLH's
  ``create_analysis`` / ``unblind`` (median of repeated calls);
* NUTS, 4 chains x 1000 draws (+1000 warm-up) on IC40: wall time including
  compilation and ESS per second;
* peak resident memory of the 10-season analysis.

Usage::

    python benchmarks/bench_point_source.py [--real DIR] [--repeat 50] [--skip-skyllh]

Simulated inputs are cached under ``$BAYESNU_CACHE/bench``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("BAYESNU_JAX_CACHE", "0")

import jax

import bayesnu  # noqa: F401
from bayesnu.analyses.point_source import PointSourceAnalysis, Source
from bayesnu.analyses.ps_inputs import season_models
from bayesnu.config import cache_root
from bayesnu.data.ps_release import RELEASE_10Y, load_ps_release
from bayesnu.inference import summarize

SOURCES = [("NGC 1068", 40.67, -0.01), ("TXS 0506+056", 77.36, 5.69)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prepare(real: Path | None) -> tuple[Path | None, Path]:
    from bayesnu.data.simulate import SourceSpec, simulate_release

    root = cache_root() / "bench"
    ic40 = None
    if real is not None and (real / "events" / "IC40_exp.csv").exists():
        ic40 = root / "ic40_completed" / "icecube_10year_ps"
        if not (ic40 / "irfs" / "IC40_smearing.csv").exists():
            simulate_release(ic40, seasons=["IC40"], complete_from=real, seed=11, overwrite=True)
    ten = root / "sim10" / "icecube_10year_ps"
    if not (ten / "events" / "IC86_VII_exp.csv").exists():
        simulate_release(ten, seed=3, sources=[SourceSpec(77.36, 5.69, 1e-15, 2.0)], overwrite=True)
    return ic40, ten


def time_bayesnu(directory: Path, seasons: list[str], repeat: int) -> dict[str, float]:
    t0 = time.perf_counter()
    rel = load_ps_release(directory, seasons, require_smearing=True)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    models = season_models(rel)
    anas = [PointSourceAnalysis(models, Source(ra, dec, n)) for n, ra, dec in SOURCES]
    t_setup = (time.perf_counter() - t0) / len(anas)
    t0 = time.perf_counter()
    anas[0]._fit_fn(anas[0].inputs).ts.block_until_ready()
    t_compile = time.perf_counter() - t0
    times = []
    for ana in anas:
        ana._fit_fn(ana.inputs).ts.block_until_ready()  # same shapes: no recompilation
        for _ in range(repeat):
            t0 = time.perf_counter()
            ana._fit_fn(ana.inputs).ts.block_until_ready()
            times.append(time.perf_counter() - t0)
    return {"load_s": t_load, "setup_s": t_setup, "compile_s": t_compile, "fit_s": statistics.median(times)}


def time_skyllh(directory: Path, seasons: list[str], repeat: int) -> dict[str, float] | None:
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
    setups, fits = [], []
    for _, ra, dec in SOURCES:
        t0 = time.perf_counter()
        ana = create_analysis(
            cfg, datasets=[dsc[s] for s in seasons], source=PointLikeSource(np.radians(ra), np.radians(dec))
        )
        setups.append(time.perf_counter() - t0)
        rss = RandomStateService(1)
        for _ in range(max(3, repeat // 5)):
            t0 = time.perf_counter()
            ana.unblind(rss)
            fits.append(time.perf_counter() - t0)
    return {"setup_s": statistics.mean(setups), "fit_s": statistics.median(fits)}


def nuts_ic40(directory: Path) -> dict[str, float]:
    rel = load_ps_release(directory, ["IC40"], require_smearing=True)
    ana = PointSourceAnalysis(rel, Source(40.67, -0.01, "NGC 1068"))
    t0 = time.perf_counter()
    dt = ana.sample(chains=4, draws=1000, warmup=1000, seed=1, progress_bar=False)
    wall = time.perf_counter() - t0
    s = summarize(dt, ["ns", "gamma"])
    ess = min(v["ess_bulk"] for v in s["params"].values())
    return {"wall_s": wall, "ess_min": ess, "ess_per_s": ess / wall, "divergences": s["divergences"],
            "r_hat_max": max(v["r_hat"] for v in s["params"].values())}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--real",
        type=Path,
        default=Path(os.environ.get("BAYESNU_TEST_DATA", "../shared/data")) / "icecube_10year_ps",
    )
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--skip-skyllh", action="store_true")
    args = ap.parse_args()
    ic40, ten = prepare(args.real)
    rows = []
    cases = [("IC40 (real events)", ic40, ["IC40"])] if ic40 else []
    cases.append(("10 seasons (simulated)", ten, list(RELEASE_10Y.season_names)))
    for label, d, seasons in cases:
        bn = time_bayesnu(d, seasons, args.repeat)
        sk = None if args.skip_skyllh else time_skyllh(d, seasons, args.repeat)
        rows.append((label, bn, sk))
    print(f"\njax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU cores")
    print(f"{'data':<24} {'quantity':<22} {'bayesnu':>12} {'SkyLLH':>12} {'ratio':>8}")
    for label, bn, sk in rows:
        print(f"{label:<24} {'load files [s]':<22} {bn['load_s']:12.3f} {'':>12} {'':>8}")
        for key, name in (("setup_s", "set-up per source [s]"), ("fit_s", "fit after compile [ms]")):
            scale = 1e3 if key == "fit_s" else 1.0
            b = bn[key] * scale
            s = None if sk is None else sk[key] * scale
            ratio = "" if s is None else f"{s / b:8.1f}x"
            print(f"{label:<24} {name:<22} {b:12.3f} {'' if s is None else f'{s:12.3f}':>12} {ratio:>8}")
        print(f"{label:<24} {'compile [s]':<22} {bn['compile_s']:12.3f}")
    print(f"peak RSS after the 10-season analysis: {peak_rss_mb():.0f} MB")
    if ic40:
        n = nuts_ic40(ic40)
        print(f"NUTS IC40 4x1000 (+1000 warm-up): {n['wall_s']:.1f} s wall incl. compilation, "
              f"min ESS {n['ess_min']:.0f} -> {n['ess_per_s']:.0f} ESS/s, r_hat max {n['r_hat_max']:.3f}, "
              f"{n['divergences']} divergences")  # fmt: skip


if __name__ == "__main__":
    main()
