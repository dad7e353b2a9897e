"""The ``bayesnu`` command line.

Top-level verbs are created here; each analysis module adds its own sub-command under
the verbs it supports through a ``register(verbs)`` function (see ``COMMAND_MODULES``).
Every command that takes ``--json`` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bayesnu.errors import BayesnuError

#: Top-level verbs that take a TARGET (``bayesnu fit point-source ...``), with help text.
VERBS: dict[str, str] = {
    "data": "inspect, simulate and download release files",
    "fit": "maximum-likelihood / MAP fit of an analysis",
    "sample": "NUTS posterior sampling of an analysis (ArviZ netCDF output)",
    "trials": "background / signal pseudo-experiments",
    "sensitivity": "sensitivity and discovery potential from pseudo-experiments",
    "upper-limit": "upper limits (Wilks, Neyman, Bayesian)",
    "flux-points": "flux points (gammapy / GADF SED table)",
}

#: Top-level verbs without a TARGET (``bayesnu run CARD``); a module fills in the parser.
DIRECT_VERBS: dict[str, str] = {
    "run": "run a YAML model card (models/*.yaml)",
    "scan": "all-sky scan (HEALPix TS maps)",
}

#: Modules that contribute sub-commands: each defines ``register(verbs)``.
COMMAND_MODULES: tuple[str, ...] = (
    "bayesnu.cli.data_cmd",
    "bayesnu.cli.point_source_cmd",
    "bayesnu.cli.run_cmd",
    "bayesnu.cli.diffuse_cmd",
    "bayesnu.cli.sky_cmd",
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


def report(obj: dict[str, Any], as_json: bool, key_width: int = 18) -> int:
    """Print ``obj`` as one JSON object (``as_json``) or as ``key: value`` lines; returns 0."""
    if as_json:
        emit_json(obj)
    else:
        for k, v in obj.items():
            print(f"{k:>{key_width}}: {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser (all verbs and registered sub-commands)."""
    parser = argparse.ArgumentParser(
        prog="bayesnu",
        description="Bayesian and frequentist analysis of IceCube-style neutrino data.",
    )
    parser.add_argument("--version", action="version", version=_version())
    top = parser.add_subparsers(dest="verb", metavar="VERB")
    top.required = True
    verbs = _Verbs(top)
    for modname in COMMAND_MODULES:
        importlib.import_module(modname).register(verbs)
    return parser


class _Verbs(dict):
    """Creates a verb's parser on first use, so that only verbs with commands are listed.

    ``verbs["fit"]`` is the sub-parsers action of a TARGET verb (``add_parser(target)``);
    ``verbs["run"]`` is the parser of a direct verb.
    """

    def __init__(self, top: argparse._SubParsersAction) -> None:
        super().__init__()
        self._top = top

    def __missing__(self, verb: str) -> Any:
        if verb in VERBS:
            p = self._top.add_parser(verb, help=VERBS[verb], description=VERBS[verb])
            sub = p.add_subparsers(dest="target", metavar="TARGET")
            sub.required = True
            self[verb] = sub
        elif verb in DIRECT_VERBS:
            self[verb] = self._top.add_parser(verb, help=DIRECT_VERBS[verb], description=DIRECT_VERBS[verb])
        else:
            raise KeyError(f"unknown verb {verb!r}; add it to VERBS or DIRECT_VERBS")
        return self[verb]


def _version() -> str:
    from bayesnu import __version__

    return f"bayesnu {__version__}"


def _enable_compilation_cache() -> None:
    """Persistent JAX compilation cache for command-line runs (``BAYESNU_JAX_CACHE=0`` disables)."""
    if os.environ.get("BAYESNU_JAX_CACHE", "1") == "0":
        return
    import jax

    from bayesnu.config import cache_root

    jax.config.update("jax_compilation_cache_dir", str(cache_root() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesnu`` console script."""
    _enable_compilation_cache()
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
