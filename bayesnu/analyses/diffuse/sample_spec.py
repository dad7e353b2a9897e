"""A generic binned sample described in one mapping (YAML / JSON file or a model card section).

Used by ``bayesnu fit diffuse --sample SPEC`` / ``bayesnu sample diffuse --sample SPEC``
and by the ``binned_sample`` key of a diffuse model card::

    data: tracks_data.csv                   # paths relative to the spec file (or the card)
    mc: tracks_mc.ecsv
    livetime_s: 2.52e8                      # or the data table's livetime_s / LIVETIME metadata
    morphology: 1                           # code of all events without a morphology column
    columns:                                # MC (and data) columns -> analysis fields
      recoDepositedEnergy: {column: logE_reco, log10: true}
      recoCosZenith: cos_zen_reco
      primaryEnergy: E_true
      primaryType: pdg
      weightOverFluxOverLivetime: ow
      pionFlux: conv
      promptFlux: prompt
    data_columns: {recoDepositedEnergy: {column: logE, log10: true}, recoCosZenith: cz}
    binning:
      energy_edges_gev: {log10_min: 3.5, log10_max: 7.0, n: 14}   # or a list of edges
      cos_zenith_edges: {min: -1.0, max: 0.1, n: 5}              # or a list of edges
      morphologies: [1]

See :mod:`bayesnu.data.binned_sample` for the column mapping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bayesnu.analyses.diffuse.analysis import DiffuseAnalysis
from bayesnu.analyses.diffuse.binning import DiffuseBinning, energy_zenith_binning
from bayesnu.data.binned_sample import BinnedSample, read_binned_sample
from bayesnu.errors import ConfigError

SPEC_KEYS = frozenset(
    {"data", "mc", "columns", "data_columns", "livetime_s", "morphology", "name", "binning"}
)
BINNING_KEYS = frozenset({"energy_edges_gev", "cos_zenith_edges", "morphologies"})


def load_sample_spec(path: str | Path) -> dict[str, Any]:
    """Read a sample spec from a YAML (``yaml.safe_load``) or JSON file."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"sample spec {path} not found")
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a valid sample spec ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sample spec is a mapping with keys {sorted(SPEC_KEYS)}")
    return raw


def _edges(spec: Any, what: str, lo_key: str, hi_key: str, log: bool) -> np.ndarray:
    if isinstance(spec, Mapping):
        unknown = set(spec) - {lo_key, hi_key, "n"}
        if unknown or not {lo_key, hi_key, "n"} <= set(spec):
            raise ConfigError(f"binning {what}: give a list of edges or {{{lo_key}, {hi_key}, n}} (n bins)")
        lo, hi, n = float(spec[lo_key]), float(spec[hi_key]), int(spec["n"])
        return np.logspace(lo, hi, n + 1) if log else np.linspace(lo, hi, n + 1)
    try:
        return np.asarray([float(x) for x in spec], dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"binning {what}: {spec!r} is not a list of numbers") from None


def binning_from_spec(spec: Mapping[str, Any]) -> DiffuseBinning:
    """Energy x cos-zenith binning from ``{energy_edges_gev, cos_zenith_edges, morphologies}``."""
    if not isinstance(spec, Mapping):
        raise ConfigError("binning must be a mapping with energy_edges_gev and cos_zenith_edges")
    unknown = set(spec) - BINNING_KEYS
    if unknown:
        raise ConfigError(f"binning: unknown key(s) {sorted(unknown)}; allowed: {sorted(BINNING_KEYS)}")
    for key in ("energy_edges_gev", "cos_zenith_edges"):
        if key not in spec:
            raise ConfigError(f"binning: {key} is missing")
    e = _edges(spec["energy_edges_gev"], "energy_edges_gev", "log10_min", "log10_max", log=True)
    cz = _edges(spec["cos_zenith_edges"], "cos_zenith_edges", "min", "max", log=False)
    morph = tuple(int(m) for m in spec.get("morphologies", (1,)))
    return energy_zenith_binning(e, cz, morph)


def read_sample_from_spec(
    spec: Mapping[str, Any], base_dir: str | Path | None = None
) -> tuple[BinnedSample, DiffuseBinning]:
    """The sample and binning a spec describes (relative paths against ``base_dir``)."""
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"binned sample: unknown key(s) {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}")
    for key in ("data", "mc", "columns", "binning"):
        if key not in spec:
            raise ConfigError(f"binned sample: {key!r} is missing")
    base = Path(base_dir) if base_dir is not None else Path.cwd()

    def resolve(p: str) -> Path:
        from bayesnu.config import expand_vars

        q = Path(expand_vars(str(p))).expanduser()
        return q if q.is_absolute() else base / q

    sample = read_binned_sample(
        resolve(spec["data"]),
        resolve(spec["mc"]),
        spec["columns"],
        data_columns=spec.get("data_columns"),
        livetime_s=spec.get("livetime_s"),
        morphology=int(spec.get("morphology", 0)),
        name=spec.get("name"),
    )
    return sample, binning_from_spec(spec["binning"])


def analysis_from_spec(
    spec: Mapping[str, Any] | str | Path, base_dir: str | Path | None = None, **kwargs: Any
) -> DiffuseAnalysis:
    """:class:`DiffuseAnalysis` of the sample a spec (mapping or file) describes.

    ``kwargs`` go to :meth:`DiffuseAnalysis.from_binned_sample` (``likelihood``,
    ``priors``, ``fixed``). A file's relative paths are taken against its folder.
    """
    if isinstance(spec, (str, Path)):
        base_dir = Path(spec).parent if base_dir is None else base_dir
        spec = load_sample_spec(spec)
    sample, binning = read_sample_from_spec(spec, base_dir)
    return DiffuseAnalysis.from_binned_sample(sample, binning, **kwargs)
