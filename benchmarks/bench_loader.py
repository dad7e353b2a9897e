"""Loader benchmark: a full simulated 10-season release, loaded by bayesnu and by SkyLLH.

1. Simulates the complete 10-year release once (10 seasons, the published event
   counts, ~1.1 million events; smearing matrices with the default Monte Carlo size)
   and reports the simulation time and the size on disk.
2. Loads all seasons (events, good-run lists, effective areas, smearing matrices)
   with :func:`bayesnu.data.ps_release.load_ps_release`, and the same files with
   SkyLLH (``PublicData_10y_ps`` datasets: ``load_and_prepare_data`` of every season,
   plus ``PDSmearingMatrix`` and ``PDAeff`` of every distinct response file), each in a
   fresh subprocess so that peak RSS is that of the load alone; reports the best and
   median wall time over ``--repeat`` runs, the peak RSS, and the SkyLLH/bayesnu ratios.

    .venv/bin/python benchmarks/bench_loader.py [--dir DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Peak RSS of this process: VmHWM (reset at exec, unlike ru_maxrss, which a forked
# child inherits from a large parent); ru_maxrss where /proc is not available.
PEAK_RSS = r"""
def peak_rss_mb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

BAYESNU_LOAD = (
    PEAK_RSS
    + r"""
import json, sys, time
t0 = time.perf_counter()
import bayesnu
from bayesnu.data.ps_release import load_ps_release
t1 = time.perf_counter()
rel = load_ps_release(sys.argv[1], require_smearing=True)
t2 = time.perf_counter()
n = sum(s.n_events for s in rel)
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "n_events": n,
                  "rss_mb": peak_rss_mb()}))
"""
)

SKYLLH_LOAD = (
    PEAK_RSS
    + r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from skyllh.core.config import Config
from skyllh.datasets.i3 import PublicData_10y_ps
from skyllh.analyses.i3.publicdata_ps.smearing_matrix import PDSmearingMatrix
from skyllh.analyses.i3.publicdata_ps.aeff import PDAeff
t1 = time.perf_counter()
d = Path(sys.argv[1])
cfg = Config()
cfg["datafields"].pop("run", None)
dsc = PublicData_10y_ps.create_dataset_collection(cfg, base_path=str(d.parent), sub_path_fmt=d.name)
names = ["IC40", "IC59", "IC79", "IC86_I", "IC86_II", "IC86_III", "IC86_IV", "IC86_V", "IC86_VI", "IC86_VII"]
n = 0
response = {}
for ds in dsc.get_datasets(names):
    data = ds.load_and_prepare_data(keep_fields=["azi", "zen"])
    n += len(data.exp)
    for key, cls in (("smearing_datafile", PDSmearingMatrix), ("eff_area_datafile", PDAeff)):
        files = tuple(ds.get_abs_pathfilename_list(ds.get_aux_data_definition(key)))
        if files not in response:
            response[files] = cls(pathfilenames=list(files))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "n_events": n,
                  "rss_mb": peak_rss_mb()}))
"""
)

IMPORT_ONLY = (
    PEAK_RSS.replace("{", "{{").replace("}", "}}")
    + r"""
import json
import {module}
print(json.dumps({{"rss_mb": peak_rss_mb()}}))
"""
)


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to simulate (default: a temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="reuse a release already simulated in --dir")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from bayesnu.data.simulate import TRUTH_FILE, simulate_release

    tmp = None
    base = Path(args.dir) if args.dir else Path(tmp := tempfile.mkdtemp(prefix="bayesnu-bench-"))
    rel_dir = base / "icecube_10year_ps"
    if args.reuse and (rel_dir / TRUTH_FILE).is_file():
        sim_s = float("nan")
    else:
        t0 = time.perf_counter()
        simulate_release(rel_dir, release="10y", seed=args.seed, overwrite=True, progress=False)
        sim_s = time.perf_counter() - t0
    sizes = {sub: _size_mb(rel_dir / sub) for sub in ("events", "uptime", "irfs")}
    print(f"simulated release: {rel_dir}")
    print(f"  simulation time {sim_s:.1f} s; size " + ", ".join(f"{k} {v:.1f} MB" for k, v in sizes.items()))
    print(f"  total {sum(sizes.values()):.1f} MB")

    runs = range(args.repeat)
    results: dict[str, list[dict]] = {"bayesnu": [_run(BAYESNU_LOAD, str(rel_dir)) for _ in runs]}
    base_rss = {"bayesnu": _run(IMPORT_ONLY.format(module="bayesnu.data.ps_release"))["rss_mb"]}
    try:
        import skyllh  # noqa: F401

        have_skyllh = True
    except ImportError:
        have_skyllh = False
    if have_skyllh:
        results["SkyLLH"] = [_run(SKYLLH_LOAD, str(rel_dir)) for _ in runs]
        mods = "skyllh.datasets.i3.PublicData_10y_ps, skyllh.analyses.i3.publicdata_ps.aeff"
        base_rss["SkyLLH"] = _run(IMPORT_ONLY.format(module=mods))["rss_mb"]

    print()
    head = f"{'loader':<9} {'events':>9} {'best [s]':>9} {'median [s]':>11} {'peak RSS [MB]':>14}"
    print(f"{head} {'RSS - import':>13}")
    rows = {}
    for name, runs in results.items():
        times = [r["load_s"] for r in runs]
        rss = max(r["rss_mb"] for r in runs)
        rows[name] = (min(times), statistics.median(times), rss, rss - base_rss[name])
        print(
            f"{name:<9} {runs[0]['n_events']:>9} {rows[name][0]:>9.2f} {rows[name][1]:>11.2f} "
            f"{rss:>14.0f} {rows[name][3]:>13.0f}"
        )
    if "SkyLLH" in rows:
        b, s = rows["bayesnu"], rows["SkyLLH"]
        print(
            f"ratio SkyLLH / bayesnu: time {s[0] / b[0]:.2f}x (best), {s[1] / b[1]:.2f}x (median); "
            f"peak RSS {s[2] / b[2]:.2f}x; RSS above import {s[3] / b[3]:.2f}x"
        )
    else:
        print("SkyLLH not installed: no peer comparison (pip install skyllh)")
    if tmp is not None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
