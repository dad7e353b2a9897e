"""Side-by-side table of SkyLLH and bayesnu point-source results on identical files.

Runs the two comparisons of ``tests/test_ps_skyllh.py`` (real IC40 events with a
simulated IC40 smearing matrix; a simulated three-season release with injected
sources) and prints TS, ns, gamma and flux for SkyLLH, for bayesnu with SkyLLH's
conventions (``interp="parabola"``, ``dec_axis="skyllh"``) and for bayesnu's defaults.

Usage::

    python benchmarks/compare_point_source_skyllh.py [--real DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bayesnu.data.simulate import SourceSpec, simulate_release
from tests.test_ps_skyllh import INJECT, SIM_SEASONS, compare


def show(label: str, rows: list[dict]) -> None:
    print(f"\n{label}")
    hdr = f"{'source':<16} {'dec':>6} | {'TS':>7} {'ns':>6} {'gamma':>6} {'flux':>9} |"
    print(hdr + " SkyLLH-conv dTS dns dgamma dflux% | bayesnu dTS dns dgamma dflux%")
    for r in rows:
        ref, a, b = r["ref"], r["skyllh_conv"], r["bayesnu"]
        head = f"{r['name']:<16} {r['dec']:6.1f} | {ref.ts:7.3f} {ref.ns:6.2f} {ref.gamma:6.3f}"
        head += f" {ref.flux_norm:9.2e}"
        print(f"{head} | {_diff(a, ref)} | {_diff(b, ref)}")


def _diff(f, ref) -> str:
    dflux = 100 * (f.flux_norm / ref.flux_norm - 1) if ref.flux_norm > 0 else 0.0
    return f"{f.ts - ref.ts:+7.3f} {f.ns - ref.ns:+6.2f} {f.gamma - ref.gamma:+6.3f} {dflux:+6.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_real = Path(os.environ.get("BAYESNU_TEST_DATA", "../shared/data")) / "icecube_10year_ps"
    ap.add_argument("--real", type=Path, default=default_real)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if (args.real / "events" / "IC40_exp.csv").exists():
            d = Path(tmp) / "a" / "icecube_10year_ps"
            simulate_release(d, seasons=["IC40"], complete_from=args.real, seed=11)
            show("IC40: real events + simulated smearing", compare(d, ["IC40"]))
        d = Path(tmp) / "b" / "icecube_10year_ps"
        simulate_release(d, seasons=SIM_SEASONS, seed=5, n_events=30000,
                         sources=[SourceSpec(ra, dec, phi, g) for ra, dec, phi, g in INJECT])  # fmt: skip
        show(f"simulated {', '.join(SIM_SEASONS)} with injected sources", compare(d, SIM_SEASONS))


if __name__ == "__main__":
    main()
