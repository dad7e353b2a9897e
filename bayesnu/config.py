"""YAML model cards: loading, validation and dispatch to the analysis runners.

A model card (``models/*.yaml``) describes one analysis end to end: data, source(s),
fit settings, priors, sampling and output. It is read with ``yaml.safe_load`` (nothing
in it is executed), validated by the analysis' pydantic schema, and run by
``bayesnu run CARD``. Paths in a card are relative to the card's folder;
``${VAR}`` and ``${VAR:-default}`` expand environment variables.

Each analysis registers a runner ``run(card: dict, card_dir: Path, out_dir: Path) -> dict``
in :data:`RUNNERS` (module path and function name, imported lazily).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from bayesnu.errors import ConfigError

#: analysis name -> "module:function" of its model-card runner.
RUNNERS: dict[str, str] = {
    "point_source": "bayesnu.analyses.point_source_card:run_card",
    "diffuse": "bayesnu.analyses.diffuse.card:run_card",
    "spatial_prior": "bayesnu.analyses.spatial_prior_card:run_card",
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_vars(text: str) -> str:
    """Expand ``${VAR}`` / ``${VAR:-default}``; an unset variable without default is an error."""

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (used as ${{{name}}} in a model card)")

    return _VAR.sub(repl, text)


def load_card(path: str | Path) -> dict[str, Any]:
    """Read a model card (safe YAML) and check its ``analysis`` key.

    Raises
    ------
    ConfigError
        Not a mapping, unknown analysis, or YAML syntax errors (with line numbers).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a model card must be a YAML mapping")
    analysis = raw.get("analysis")
    if analysis not in RUNNERS:
        raise ConfigError(f"{path}: field 'analysis' must be one of {sorted(RUNNERS)}, got {analysis!r}")
    return raw


def resolve_path(value: str | os.PathLike[str], card_dir: Path) -> Path:
    """A card path: variables expanded, ``~`` expanded, relative to the card's folder."""
    p = Path(os.path.expanduser(expand_vars(str(value))))
    return p if p.is_absolute() else (card_dir / p).resolve()


def cache_root() -> Path:
    """bayesnu's cache folder: ``BAYESNU_CACHE`` or the platform's user cache directory."""
    env = os.environ.get("BAYESNU_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bayesnu"))


def spec_hash(spec: Any) -> str:
    """Short stable hash of a JSON-serialisable specification (cache keys)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_card(path: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Run a model card; returns the runner's summary (also written into the output folder)."""
    path = Path(path)
    card = load_card(path)
    modname, func = RUNNERS[card["analysis"]].split(":")
    runner = getattr(importlib.import_module(modname), func)
    out = Path(out_dir) if out_dir is not None else None
    return runner(card, path.parent.resolve(), out)
