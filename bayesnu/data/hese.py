"""Readers and writers of the IceCube HESE 7.5-year data-release files.

The release (Phys. Rev. D 104, 022002 (2021), arXiv:2011.03545) ships the observed
events in ``HESE_data.json`` and the Monte Carlo in three JSON files,
``HESE_mc_truth.json``, ``HESE_mc_observable.json`` and ``HESE_mc_flux.json``. Each file
is one JSON object mapping a field name to a list with one value per event (``NaN``
written as the bare ``NaN`` token, as Python's :mod:`json` does). The release's own
loader merges the three MC objects, so which field sits in which file does not matter
to it; :func:`write_hese_mc` writes the split documented in :data:`MC_FILES`.

Every reader validates its input and raises :class:`~bayesnu.errors.DataFormatError`
naming the file, the line (for JSON syntax errors), the field, the first offending
element and the fix. Nothing is dropped silently: the analysis cuts of the release
(:class:`HESECuts`) are applied by :func:`cut_mask`, and callers report how many
events they removed.

Units: energies in GeV, angles in radians (zenith, as in the release files), lengths in
metres, ``weightOverFluxOverLivetime`` in GeV sr cm^2, ``muonWeightOverLivetime`` in
s^-1, fluxes in GeV^-1 s^-1 sr^-1 cm^-2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayesnu.data.atomic import atomic_write_text
from bayesnu.errors import DataFormatError

#: Fields of ``HESE_data.json`` (observed events).
DATA_FIELDS: tuple[str, ...] = ("recoDepositedEnergy", "recoMorphology", "recoZenith", "recoLength")

#: The three MC files of the release and the fields :func:`write_hese_mc` puts in each.
MC_FILES: dict[str, tuple[str, ...]] = {
    "HESE_mc_truth.json": ("primaryType", "primaryEnergy", "primaryZenith", "trueLength", "interactionType"),
    "HESE_mc_observable.json": ("recoDepositedEnergy", "recoMorphology", "recoLength", "recoZenith"),
    "HESE_mc_flux.json": (
        "weightOverFluxOverLivetime",
        "muonWeightOverLivetime",
        "pionFlux",
        "kaonFlux",
        "promptFlux",
        "conventionalSelfVetoCorrection",
        "promptSelfVetoCorrection",
    ),
}

#: All MC fields, in the order of :data:`MC_FILES`.
MC_FIELDS: tuple[str, ...] = tuple(f for fields in MC_FILES.values() for f in fields)

#: Integer-valued fields.
INTEGER_FIELDS: frozenset[str] = frozenset({"recoMorphology", "primaryType", "interactionType"})

#: Fields that may hold NaN (lengths are undefined for most single cascades and tracks).
NAN_ALLOWED: frozenset[str] = frozenset({"recoLength", "trueLength"})

#: PDG codes allowed in ``primaryType``: (anti)neutrinos of three flavours and muons.
PDG_CODES: frozenset[int] = frozenset({12, -12, 14, -14, 16, -16, 13, -13})

#: Morphology codes: 0 cascade, 1 track, 2 double cascade.
MORPHOLOGIES: dict[int, str] = {0: "cascade", 1: "track", 2: "double_cascade"}

#: Interaction codes: 0 atmospheric muon, 1 CC, 2 NC, 3 Glashow resonance.
INTERACTIONS: dict[int, str] = {0: "muon", 1: "CC", 2: "NC", 3: "GR"}

#: HESE 7.5-year livetime used by the release's fit [s] (2635.5 days).
HESE_LIVETIME_S: float = 227708167.68


@dataclass(frozen=True)
class HESECuts:
    """The event selection of the release's loader.

    An event passes when ``emin_gev <= recoDepositedEnergy <= emax_gev`` and, for
    double cascades only, ``lmin_m <= recoLength <= lmax_m`` (a NaN length fails).
    """

    emin_gev: float = 60.0e3
    emax_gev: float = 1.0e7
    lmin_m: float = 10.0
    lmax_m: float = 1000.0


def cut_mask(
    reco_energy_gev: np.ndarray, morphology: np.ndarray, reco_length_m: np.ndarray, cuts: HESECuts
) -> np.ndarray:
    """Boolean mask of events passing ``cuts`` (the release's loader semantics)."""
    e = np.asarray(reco_energy_gev, dtype=float)
    m = np.asarray(morphology)
    length = np.asarray(reco_length_m, dtype=float)
    energy_ok = (e >= cuts.emin_gev) & (e <= cuts.emax_gev)
    with np.errstate(invalid="ignore"):
        length_ok = (length >= cuts.lmin_m) & (length <= cuts.lmax_m)
    return energy_ok & ((m != 2) | length_ok)


@dataclass(frozen=True)
class HESEData:
    """Observed events of a HESE-style sample.

    Attributes
    ----------
    reco_energy_gev
        Reconstructed deposited energy [GeV].
    morphology
        0 cascade, 1 track, 2 double cascade.
    reco_zenith_rad
        Reconstructed zenith angle [rad].
    reco_length_m
        Reconstructed length [m] (NaN where undefined).
    source
        Where the events came from (file path or a description).
    """

    reco_energy_gev: np.ndarray
    morphology: np.ndarray
    reco_zenith_rad: np.ndarray
    reco_length_m: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.reco_energy_gev.shape[0])

    def select(self, mask: np.ndarray) -> HESEData:
        """Events where ``mask`` is true."""
        return HESEData(
            self.reco_energy_gev[mask],
            self.morphology[mask],
            self.reco_zenith_rad[mask],
            self.reco_length_m[mask],
            self.source,
        )

    def as_fields(self) -> dict[str, np.ndarray]:
        """The events as a dict keyed by the release's field names."""
        return {
            "recoDepositedEnergy": self.reco_energy_gev,
            "recoMorphology": self.morphology,
            "recoZenith": self.reco_zenith_rad,
            "recoLength": self.reco_length_m,
        }


@dataclass(frozen=True)
class HESEMonteCarlo:
    """Weighted Monte Carlo events in the HESE release schema.

    Attributes
    ----------
    fields
        One array per field of :data:`MC_FIELDS`, keyed by the release's names
        (``primaryEnergy`` [GeV], ``weightOverFluxOverLivetime`` [GeV sr cm^2], ...).
    source
        Where the events came from.
    extra
        Names of further fields found in the files (kept, not used by the fit).
    """

    fields: Mapping[str, np.ndarray]
    source: str = ""
    extra: tuple[str, ...] = field(default=())

    def __getitem__(self, name: str) -> np.ndarray:
        return self.fields[name]

    def __len__(self) -> int:
        return int(next(iter(self.fields.values())).shape[0])

    def select(self, mask: np.ndarray) -> HESEMonteCarlo:
        """Events where ``mask`` is true."""
        return HESEMonteCarlo({k: v[mask] for k, v in self.fields.items()}, self.source, self.extra)

    def observables(self) -> HESEData:
        """The reconstructed observables as a :class:`HESEData` (for binning)."""
        return HESEData(
            self.fields["recoDepositedEnergy"],
            self.fields["recoMorphology"],
            self.fields["recoZenith"],
            self.fields["recoLength"],
            self.source,
        )


def load_json_object(path: Path) -> dict:
    """Parse a JSON file whose top level is an object (errors name the file, line and fix)."""
    if not path.exists():
        raise DataFormatError(
            "file not found", path=path, fix="check the path (the release's files are named HESE_*.json)"
        )
    text = path.read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"not valid JSON ({exc.msg} at column {exc.colno})",
            path=path,
            line=exc.lineno,
            fix="the release files are one JSON object mapping field names to lists of numbers",
        ) from None
    if not isinstance(obj, dict):
        raise DataFormatError(
            f"top level is a JSON {type(obj).__name__}, not an object",
            path=path,
            line=1,
            fix="write one object mapping each field name to a list with one value per event",
        )
    return obj


def json_key_line(path: Path, key: str) -> int | None:
    """1-based line where ``"key"`` first appears in ``path`` (None if unknown)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    pos = text.find(f'"{key}"')
    return None if pos < 0 else text.count("\n", 0, pos) + 1


def _column(path: Path, obj: dict, name: str) -> np.ndarray:
    """Validated numeric array of field ``name`` (integers for :data:`INTEGER_FIELDS`)."""
    if name not in obj:
        raise DataFormatError(
            f"field is missing (present: {sorted(obj)})",
            path=path,
            field=name,
            fix=f"add the list {name!r} with one value per event",
        )
    values = obj[name]
    line = json_key_line(path, name)
    if not isinstance(values, list):
        raise DataFormatError(
            f"value is a JSON {type(values).__name__}, not a list",
            path=path,
            line=line,
            field=name,
            fix="give one number per event",
        )
    bad = next(
        (i for i, v in enumerate(values) if isinstance(v, bool) or not isinstance(v, (int, float))), None
    )
    if bad is not None:
        raise DataFormatError(
            f"element {bad} is {values[bad]!r}, not a number",
            path=path,
            line=line,
            field=name,
            fix="every element must be a JSON number (NaN only where a length is undefined)",
        )
    arr = np.asarray(values, dtype=float)
    finite = np.isfinite(arr)
    if name in NAN_ALLOWED:
        finite |= np.isnan(arr)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise DataFormatError(
            f"element {i} is {arr[i]} (not finite)",
            path=path,
            line=line,
            field=name,
            fix="replace non-finite values; only recoLength and trueLength may be NaN",
        )
    if name in INTEGER_FIELDS:
        frac = arr != np.round(arr)
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise DataFormatError(
                f"element {i} is {arr[i]}, not an integer",
                path=path,
                line=line,
                field=name,
                fix="integer codes are required for this field",
            )
        return arr.astype(np.int64)
    return arr


def _check(path: Path, obj: dict, name: str, arr: np.ndarray, ok: np.ndarray, what: str, fix: str) -> None:
    if not np.all(ok):
        i = int(np.flatnonzero(~ok)[0])
        raise DataFormatError(
            f"element {i} is {arr[i]!r}: {what} ({int(np.count_nonzero(~ok))} elements fail)",
            path=path,
            line=json_key_line(path, name),
            field=name,
            fix=fix,
        )


def _validate_observables(path: Path, obj: dict, cols: dict[str, np.ndarray]) -> None:
    e = cols["recoDepositedEnergy"]
    _check(path, obj, "recoDepositedEnergy", e, e > 0, "energies must be > 0 GeV", "energies are in GeV")
    m = cols["recoMorphology"]
    _check(
        path,
        obj,
        "recoMorphology",
        m,
        np.isin(m, list(MORPHOLOGIES)),
        "morphology must be 0 (cascade), 1 (track) or 2 (double cascade)",
        "use the release's codes",
    )
    z = cols["recoZenith"]
    _check(
        path,
        obj,
        "recoZenith",
        z,
        (z >= 0) & (z <= math.pi),
        "zenith must lie in [0, pi] rad",
        "zenith angles are in radians",
    )
    length = cols["recoLength"]
    _check(
        path,
        obj,
        "recoLength",
        length,
        np.isnan(length) | (length >= 0),
        "lengths must be >= 0 m or NaN",
        "lengths are in metres; write NaN where undefined",
    )


def _check_lengths(path: Path, cols: Mapping[str, np.ndarray]) -> None:
    sizes = {k: v.shape[0] for k, v in cols.items()}
    if len(set(sizes.values())) > 1:
        ref = max(set(sizes.values()), key=list(sizes.values()).count)
        bad = sorted(k for k, n in sizes.items() if n != ref)
        raise DataFormatError(
            f"fields have differing lengths ({', '.join(f'{k}: {sizes[k]}' for k in bad)}; most have {ref})",
            path=path,
            field=bad[0],
            fix="every field must have one value per event",
        )


def read_hese_data(path: str | Path) -> HESEData:
    """Read observed events from a ``HESE_data.json``-style file.

    Parameters
    ----------
    path
        JSON file with the fields of :data:`DATA_FIELDS`.

    Returns
    -------
    HESEData
        All events of the file (no cut applied; see :func:`cut_mask`).

    Raises
    ------
    DataFormatError
        Invalid JSON, a missing or non-numeric field, differing field lengths, or a value
        out of its domain (message names file, line, field and element).
    """
    path = Path(path)
    obj = load_json_object(path)
    cols = {name: _column(path, obj, name) for name in DATA_FIELDS}
    _check_lengths(path, cols)
    _validate_observables(path, obj, cols)
    return HESEData(
        cols["recoDepositedEnergy"], cols["recoMorphology"], cols["recoZenith"], cols["recoLength"], str(path)
    )


def _mc_paths(source: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            paths = [p / name for name in MC_FILES]
            missing = [q.name for q in paths if not q.exists()]
            if missing:
                raise DataFormatError(
                    f"MC file(s) {missing} not found in the directory",
                    path=p,
                    fix="the HESE MC is three files: "
                    + ", ".join(MC_FILES)
                    + " (write simulated ones with `bayesnu data simulate-hese`)",
                )
            return paths
        return [p]
    return [Path(s) for s in source]


def read_hese_mc(source: str | Path | Sequence[str | Path]) -> HESEMonteCarlo:
    """Read HESE-schema Monte Carlo.

    Parameters
    ----------
    source
        A directory holding the three release files (:data:`MC_FILES`), or the list of
        JSON files whose objects together hold all of :data:`MC_FIELDS`.

    Returns
    -------
    HESEMonteCarlo

    Raises
    ------
    DataFormatError
        A file or field is missing, a field appears in two files with different values,
        values are non-numeric / out of domain, or lengths differ.
    """
    paths = _mc_paths(source)
    merged: dict[str, np.ndarray] = {}
    where: dict[str, Path] = {}
    raw: dict[str, tuple[Path, dict]] = {}
    for path in paths:
        obj = load_json_object(path)
        for name in obj:
            if name in MC_FIELDS:
                arr = _column(path, obj, name)
                if name in merged and not np.array_equal(merged[name], arr, equal_nan=True):
                    raise DataFormatError(
                        f"field also given in {where[name]} with different values",
                        path=path,
                        line=json_key_line(path, name),
                        field=name,
                        fix="keep each field in one file",
                    )
                merged[name] = arr
                where[name] = path
                raw[name] = (path, obj)
            else:
                raw.setdefault(name, (path, obj))
    missing = [f for f in MC_FIELDS if f not in merged]
    if missing:
        raise DataFormatError(
            f"MC field(s) {missing} not found in {[str(p) for p in paths]}",
            path=paths[0],
            field=missing[0],
            fix="the HESE MC schema needs all of " + ", ".join(MC_FIELDS),
        )
    first = paths[0]
    _check_lengths(first, merged)

    def chk(name: str, ok: np.ndarray, what: str, fix: str) -> None:
        path, obj = raw[name]
        _check(path, obj, name, merged[name], ok, what, fix)

    obs_path, obs_obj = raw["recoDepositedEnergy"]
    _validate_observables(obs_path, obs_obj, {n: merged[n] for n in DATA_FIELDS})
    ptype = merged["primaryType"]
    chk(
        "primaryType",
        np.isin(ptype, sorted(PDG_CODES)),
        f"PDG code must be one of {sorted(PDG_CODES)}",
        "use +-12, +-14, +-16 for neutrinos and +-13 for atmospheric muons",
    )
    chk(
        "interactionType",
        np.isin(merged["interactionType"], list(INTERACTIONS)),
        "interaction must be 0 (muon), 1 (CC), 2 (NC) or 3 (GR)",
        "use the release's codes",
    )
    chk("primaryEnergy", merged["primaryEnergy"] > 0, "energies must be > 0 GeV", "energies are in GeV")
    for name in (
        "weightOverFluxOverLivetime",
        "muonWeightOverLivetime",
        "pionFlux",
        "kaonFlux",
        "promptFlux",
    ):
        chk(name, merged[name] >= 0, "weights and fluxes must be >= 0", "check the units and sign")
    for name in ("conventionalSelfVetoCorrection", "promptSelfVetoCorrection"):
        v = merged[name]
        chk(name, (v >= 0) & (v <= 1), "veto passing fractions lie in [0, 1]", "check the field")
    is_muon = np.abs(ptype) == 13
    chk(
        "interactionType",
        (merged["interactionType"] == 0) == is_muon,
        "interactionType 0 is for atmospheric muons (primaryType +-13) only",
        "give muons interactionType 0 and neutrinos 1, 2 or 3",
    )
    extra = tuple(sorted(n for n in raw if n not in MC_FIELDS))
    return HESEMonteCarlo(merged, ", ".join(str(p) for p in paths), extra)


def _dump(fields: Mapping[str, np.ndarray], names: Sequence[str]) -> str:
    out = {}
    for name in names:
        arr = np.asarray(fields[name])
        out[name] = [int(v) for v in arr] if name in INTEGER_FIELDS else [float(v) for v in arr]
    return json.dumps(out, allow_nan=True)


def write_hese_data(path: str | Path, data: HESEData) -> Path:
    """Write events as a ``HESE_data.json``-style file (atomically)."""
    path = Path(path)
    atomic_write_text(path, _dump(data.as_fields(), DATA_FIELDS))
    return path


def write_hese_mc(directory: str | Path, mc: HESEMonteCarlo | Mapping[str, np.ndarray]) -> list[Path]:
    """Write MC as the release's three files in ``directory`` (atomically, one by one).

    Returns
    -------
    list of Path
        The written files, in the order of :data:`MC_FILES`.
    """
    fields = mc.fields if isinstance(mc, HESEMonteCarlo) else mc
    missing = [f for f in MC_FIELDS if f not in fields]
    if missing:
        raise DataFormatError(
            f"cannot write MC without field(s) {missing}",
            field=missing[0],
            fix="provide every field of the HESE MC schema",
        )
    directory = Path(directory)
    out = []
    for name, names in MC_FILES.items():
        p = directory / name
        atomic_write_text(p, _dump(fields, names))
        out.append(p)
    return out
