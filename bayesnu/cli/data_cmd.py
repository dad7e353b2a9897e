"""``bayesnu data ...``: inspect, simulate and download release files."""

from __future__ import annotations

import argparse

from bayesnu.cli import emit_json


def _info(args: argparse.Namespace) -> int:
    from bayesnu.data.ps_release import release_info

    info = release_info(args.dir, release=None if args.release == "auto" else args.release)
    if args.json:
        emit_json(info)
        return 0
    print(f"{info['path']}  (release {info['release']})")
    print(f"{'season':<10} {'events':>8} {'livetime[d]':>12}  events aeff smearing uptime")
    for name, s in info["seasons"].items():
        n = "-" if s["n_events"] is None else str(s["n_events"])
        lt = "-" if s["livetime_days"] is None else f"{s['livetime_days']:.2f}"
        flags = "  ".join(
            ("yes" if s[k] else "no ").ljust(w)
            for k, w in (("events", 6), ("effective_area", 4), ("smearing", 8), ("uptime", 6))
        )
        print(f"{name:<10} {n:>8} {lt:>12}  {flags}")
    return 0


def register(verbs: dict[str, argparse._SubParsersAction]) -> None:
    """Add the ``data`` sub-commands."""
    p = verbs["data"].add_parser("info", help="list which release files are present")
    p.add_argument("dir", help="release directory (holds events/, uptime/, irfs/)")
    p.add_argument("--release", choices=["auto", "10y", "14y"], default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_info)
