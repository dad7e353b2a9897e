"""The ``bayesnu`` command line.

Top-level verbs are created here; each analysis module adds its own sub-command under
the verbs it supports through a ``register(verbs)`` function (see ``COMMAND_MODULES``).
Every command that takes ``--json`` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bayesnu.errors import BayesnuError

#: Top-level verbs and their help text.
VERBS: dict[str, str] = {
    "data": "inspect, simulate and download release files",
    "fit": "maximum-likelihood / MAP fit of an analysis",
    "sample": "NUTS posterior sampling of an analysis (ArviZ netCDF output)",
    "run": "run a YAML model card from models/",
    "trials": "background / signal pseudo-experiments",
    "sensitivity": "sensitivity and discovery potential from pseudo-experiments",
    "upper-limit": "upper limits (Wilks, Neyman, Bayesian)",
    "flux-points": "flux points (gammapy / GADF SED table)",
    "scan": "all-sky scan (HEALPix TS maps)",
}

#: Modules that contribute sub-commands: each defines ``register(verbs)``.
COMMAND_MODULES: tuple[str, ...] = (
    "bayesnu.cli.data_cmd",
    "bayesnu.cli.point_source_cmd",
)


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (numpy scalars and arrays converted)."""
    import numpy as np

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if hasattr(o, "__fspath__"):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    json.dump(obj, sys.stdout, default=default, allow_nan=True)
    sys.stdout.write("\n")
    sys.stdout.flush()


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser (all verbs and registered sub-commands)."""
    parser = argparse.ArgumentParser(
        prog="bayesnu",
        description="Bayesian and frequentist analysis of IceCube-style neutrino data.",
    )
    parser.add_argument("--version", action="version", version=_version())
    top = parser.add_subparsers(dest="verb", metavar="VERB")
    top.required = True
    verbs: dict[str, argparse._SubParsersAction] = {}
    for verb, help_text in VERBS.items():
        p = top.add_parser(verb, help=help_text, description=help_text)
        sub = p.add_subparsers(dest="target", metavar="TARGET")
        sub.required = True
        verbs[verb] = sub
    for modname in COMMAND_MODULES:
        importlib.import_module(modname).register(verbs)
    return parser


def _version() -> str:
    from bayesnu import __version__

    return f"bayesnu {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesnu`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        rc = func(args)
    except BayesnuError as exc:
        print(f"bayesnu: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"bayesnu: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
