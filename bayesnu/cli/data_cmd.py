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


def _simulate(args: argparse.Namespace) -> int:
    import json
    import time

    from bayesnu.data.simulate import TRUTH_FILE, simulate_release

    t0 = time.perf_counter()
    out = simulate_release(
        args.out,
        release=args.release,
        seasons=args.seasons,
        seed=args.seed,
        sources=args.source or (),
        n_events=args.n_events,
        complete_from=args.complete_from,
        n_mc=args.n_mc,
        overwrite=args.force,
        progress=False if args.json else None,
    )
    truth = json.loads((out / TRUTH_FILE).read_text())
    summary = {
        "path": str(out),
        "release": truth["release"],
        "seed": truth["seed"],
        "seasons": truth["seasons"],
        "sources": truth["sources"],
        "files": truth["files"],
        "truth_file": str(out / TRUTH_FILE),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if args.json:
        emit_json(summary)
        return 0
    print(f"wrote {out} (release {truth['release']}, seed {truth['seed']}) in {summary['seconds']:.1f} s")
    for name, s in truth["seasons"].items():
        if s["events"] == "copied":
            print(f"  {name:<10} events copied from {truth['complete_from']}")
        else:
            print(
                f"  {name:<10} {s['n_events']:>8} events ({s['n_signal']} signal), {s['livetime_days']:.2f} d"
            )
    for i, src in enumerate(truth["sources"]):
        print(
            f"  source {i}: RA {src['ra_deg']} Dec {src['dec_deg']} gamma {src['gamma']}: "
            f"expected {src['expected_total']:.2f}, injected {src['injected_total']} events"
        )
    copied = [k for k, v in truth["files"].items() if v == "copied"]
    if copied:
        print(f"  copied verbatim: {', '.join(copied)}")
    print(f"  truth: {out / TRUTH_FILE}")
    return 0


_FETCH_NAMES = {"icecube-10y-ps": "10y", "icecube-14y-ps": "14y"}


def _fetch(args: argparse.Namespace) -> int:
    from bayesnu.data.fetch import fetch_release
    from bayesnu.errors import ConfigError

    by_name = _FETCH_NAMES.get(args.name) if args.name else None
    if by_name and args.release not in ("auto", by_name):
        raise ConfigError(f"{args.name} is the {by_name} release, but --release {args.release} was given")
    release = by_name or (args.release if args.release != "auto" else "10y")
    res = fetch_release(
        release,
        dest_dir=args.dir,
        url=args.url,
        sha256=args.sha256,
        allow_unpinned=args.allow_unpinned,
        timeout_s=args.timeout,
        force=args.force,
        progress=False if args.json else None,
    )
    if args.json:
        emit_json({"release": release, **res.to_dict()})
        return 0
    state = "already cached" if res.cached else "downloaded"
    pin = "verified against the pinned SHA-256" if res.pinned else "UNPINNED (hash recorded, not verified)"
    print(f"{state}: {res.path} ({res.n_files} files, {res.n_bytes / 1e6:.1f} MB)")
    print(f"sha256 {res.sha256}: {pin}")
    return 0


def register(verbs: dict[str, argparse._SubParsersAction]) -> None:
    """Add the ``data`` sub-commands."""
    p = verbs["data"].add_parser("info", help="list which release files are present")
    p.add_argument("dir", help="release directory (holds events/, uptime/, irfs/)")
    p.add_argument("--release", choices=["auto", "10y", "14y"], default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_info)

    p = verbs["data"].add_parser(
        "simulate",
        help="write a simulated release in the exact release formats (or complete a partial one)",
        description="Write a complete point-source release directory (events, uptime, effective areas, "
        "smearing matrices) from bayesnu's parametric detector model, with optional injected point sources. "
        "Not IceCube's Monte Carlo. A truth file simulation.json is written beside the release folders.",
    )
    p.add_argument(
        "--out", required=True, help="output directory (must not hold release files unless --force)"
    )
    p.add_argument(
        "--release",
        choices=["auto", "10y", "14y"],
        default="auto",
        help="release layout (auto: that of --complete-from, else 10y)",
    )
    p.add_argument(
        "--seasons", default=None, help="comma-separated seasons, e.g. IC40,IC86_II-VII (default all)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical files)")
    p.add_argument(
        "--source",
        action="append",
        metavar="RA,DEC,FLUX,GAMMA",
        help="inject a point source: RA, Dec [deg], FLUX = Phi0 of dN/dE at 1 TeV "
        "[GeV^-1 cm^-2 s^-1] (nu_mu + anti-nu_mu), spectral index; repeatable",
    )
    p.add_argument(
        "--n-events",
        type=int,
        default=None,
        help="events per season (default: the release's published count of each season)",
    )
    p.add_argument(
        "--complete-from",
        default=None,
        metavar="DIR",
        help="copy the files of a partial real release verbatim and simulate only the missing ones",
    )
    p.add_argument(
        "--n-mc", type=int, default=10_000, help="Monte Carlo events per true bin of the smearing matrices"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a directory that already holds release files (files of seasons not simulated "
        "again are left as they are)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_simulate)

    p = verbs["data"].add_parser(
        "fetch",
        help="download, verify (SHA-256) and cache a public release",
        description="Download a public point-source release archive, verify its SHA-256, unpack it safely "
        "and move it atomically into the cache ($BAYESNU_DATA or the platform cache directory).",
    )
    p.add_argument("name", nargs="?", choices=sorted(_FETCH_NAMES), default=None, help="release to fetch")
    p.add_argument("--release", choices=["auto", "10y", "14y"], default="auto")
    p.add_argument("--dir", default=None, help="cache root to use (the release goes into DIR/<sub_path>)")
    p.add_argument("--url", default=None, help="download address (default: the release's public address)")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the archive (hex)")
    p.add_argument(
        "--allow-unpinned",
        action="store_true",
        help="accept a download without an expected SHA-256 (the computed one is recorded)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="connection/read timeout in seconds")
    p.add_argument("--force", action="store_true", help="replace an existing copy")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_fetch)
