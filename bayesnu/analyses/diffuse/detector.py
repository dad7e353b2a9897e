"""Detector-systematics reweighting from the HESE release's photospline tables.

For each flux component :math:`c` (astrophysical, conventional, prompt), systematic
:math:`s` (hole-ice forward acceptance ``epsilon_head_on``, DOM efficiency
``epsilon_dom``, ice anisotropy ``anisotropy_scale``) and MC event :math:`i`, the
release multiplies the weight by

.. math::

   \\prod_s 10^{\\,f_{s,c}(x_i, p_s) - f_{s,c}(x_i, p_s^{\\mathrm{nom}})},

where :math:`f_{s,c}` is the photospline table for the event's reconstructed
morphology (and, for the astrophysical component, its neutrino flavour), :math:`x_i`
the event's coordinates and :math:`p^{\\mathrm{nom}} = (0, 0.99, 1)`. Coordinates:
anisotropy :math:`(\\log_{10}E, p)` (double cascades :math:`(\\log_{10}L, p)`, with the
upper :math:`\\log_{10}L` extent lowered to 2.3); hole ice on double cascades
:math:`(\\log_{10}E, \\log_{10}L, p)`; otherwise :math:`(\\log_{10}E, \\cos\\theta, p)`, with
reconstructed deposited energy, length and zenith. Events whose nominal coordinates lie
outside a table's extents, and atmospheric muons, get factor 1 for that table.

Because :math:`x_i` is fixed, :func:`build_detector_model` sums the fixed dimensions
out once (:func:`bayesnu.irf.photospline.contract`); inside the likelihood each
table costs ``k + 1`` multiply-adds per event. Tables of the three components that
share a systematic's knots are stacked into one term, so that one basis evaluation and
one pass over the events serve all three components.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayesnu.errors import ConfigError
from bayesnu.irf.photospline import (
    ContractedSpline,
    SplineTable,
    basis_window,
    contract,
    evaluate_contracted,
    read_photospline,
)

#: Systematic -> (spline sub-directory and file prefix, parameter name, nominal value).
SYSTEMATICS: dict[str, tuple[str, str, float]] = {
    "HoleIce": ("HoleIceSplines/holeice_", "epsilon_head_on", 0.0),
    "DOMEff": ("DOMEffSplines/domefficiency_", "epsilon_dom", 0.99),
    "Anisotropy": ("AnisotropySplines/tauanisotropy_", "anisotropy_scale", 1.0),
}

#: Flux components that get detector corrections.
COMPONENTS: tuple[str, ...] = ("astro", "conv", "prompt")

_MORPH = {0: "shower", 1: "track", 2: "doublebang"}
_FLAVOUR = {12: "e", 14: "mu", 16: "tau"}


def spline_path(directory: str | Path, systematic: str, component: str, ptype: int, morphology: int) -> Path:
    """File of the table for a systematic, component, PDG type and morphology (release naming)."""
    prefix = SYSTEMATICS[systematic][0]
    if component == "astro":
        comp = "diffuseAstro_" + _FLAVOUR[abs(int(ptype))]
    elif component == "conv":
        comp = "atmConv"
    elif component == "prompt":
        comp = "atmPrompt"
    else:
        raise ConfigError(f"unknown component {component!r}")
    return Path(directory) / f"{prefix}{comp}_{_MORPH[int(morphology)]}.fits"


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class DetectorTerm:
    r"""Contracted tables of one systematic for all components, applied to events.

    Attributes
    ----------
    index
        Positions of the member events in the MC arrays, or ``None`` when ``spline``
        covers all events (non-members have zero rows and zero nominal values).
    spline
        The tables contracted at the events' fixed coordinates; ``rows`` has shape
        ``(n_basis, n_components, n_members)`` (components in :data:`COMPONENTS` order;
        a component without a table for these events has zero rows).
    nominal
        :math:`f(x_i, p^{\mathrm{nom}})`, shape ``(n_components, n_members)``.
    parameter
        Name of the systematic parameter (static).
    """

    index: jax.Array | None
    spline: ContractedSpline
    nominal: jax.Array
    parameter: str = field(metadata=dict(static=True))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class DetectorModel:
    """Detector terms for one MC sample, each covering all components of :data:`COMPONENTS`."""

    terms: tuple[DetectorTerm, ...]
    n_events: int = field(metadata=dict(static=True))


def log10_corrections(model: DetectorModel, theta: dict) -> jax.Array:
    r""":math:`\sum_s [f_{s,c}(x_i, p_s) - f_{s,c}(x_i, p_s^{\mathrm{nom}})]`, shape ``(3, n_events)``.

    Rows in :data:`COMPONENTS` order (astrophysical, conventional, prompt).
    """
    out = jnp.zeros((len(COMPONENTS), model.n_events))
    for term in model.terms:
        vals = evaluate_contracted(term.spline, theta[term.parameter]) - term.nominal
        out = out + vals if term.index is None else out.at[:, term.index].add(vals)
    return out


def _nominal(rows: np.ndarray, knots: np.ndarray, k: int, s: float) -> np.ndarray:
    left, v, inside = basis_window(knots, k, np.asarray(s, dtype=float), xp=np)
    if not inside:
        return np.zeros(rows.shape[1])
    return v @ rows[int(left) : int(left) + k + 1]


def _coords(systematic: str, morphology: int, log10e: np.ndarray, cosz: np.ndarray, log10l: np.ndarray):
    if systematic == "Anisotropy":
        return np.stack([log10l if morphology == 2 else log10e], axis=1)
    if systematic == "HoleIce" and morphology == 2:
        return np.stack([log10e, log10l], axis=1)
    return np.stack([log10e, cosz], axis=1)


def build_detector_model(
    spline_dir: str | Path,
    primary_type: np.ndarray,
    morphology: np.ndarray,
    reco_energy_gev: np.ndarray,
    reco_zenith_rad: np.ndarray,
    reco_length_m: np.ndarray,
) -> DetectorModel:
    """Contract the release's tables at the MC events' coordinates.

    Parameters
    ----------
    spline_dir
        Directory with ``HoleIceSplines/``, ``DOMEffSplines/`` and ``AnisotropySplines/``.
    primary_type, morphology, reco_energy_gev, reco_zenith_rad, reco_length_m
        Per-event MC fields (after cuts, in the order the likelihood uses).

    Raises
    ------
    ConfigError
        A needed table is missing.
    """
    spline_dir = Path(spline_dir)
    ptype = np.asarray(primary_type)
    morph = np.asarray(morphology)
    with np.errstate(divide="ignore", invalid="ignore"):
        log10e = np.log10(np.asarray(reco_energy_gev, dtype=float))
        cosz = np.cos(np.asarray(reco_zenith_rad, dtype=float))
        log10l = np.log10(np.asarray(reco_length_m, dtype=float))
    cache: dict[Path, SplineTable] = {}

    def table(path: Path) -> SplineTable:
        if path not in cache:
            if not path.exists():
                raise ConfigError(
                    f"detector-systematics table {path} not found; pass the release's splines directory "
                    "(resources/splines) or fix epsilon_dom, epsilon_head_on and anisotropy_scale at nominal"
                )
            cache[path] = read_photospline(path)
        return cache[path]

    groups = [
        (int(p), int(m))
        for p in np.unique(ptype)
        for m in np.unique(morph)
        if abs(int(p)) != 13 and np.any((ptype == p) & (morph == m))
    ]
    n_events = int(ptype.shape[0])
    n_comp = len(COMPONENTS)
    merged: dict[tuple, list] = {}
    for ci, comp in enumerate(COMPONENTS):
        for systematic, (_, pname, nominal) in SYSTEMATICS.items():
            for p, m in groups:
                tab = table(spline_path(spline_dir, systematic, comp, p, m))
                idx = np.flatnonzero((ptype == p) & (morph == m))
                x = _coords(systematic, m, log10e[idx], cosz[idx], log10l[idx])
                ext = np.array(tab.extents, dtype=float)
                if systematic == "Anisotropy" and m == 2:
                    ext[0, 1] = 2.3
                full = np.column_stack([x, np.full(len(idx), nominal)])
                inside = np.all((full >= ext[:, 0]) & (full <= ext[:, 1]), axis=1)
                idx, x = idx[inside], x[inside]
                if idx.size == 0:
                    continue
                c = contract(tab, x)
                key = (systematic, tuple(np.asarray(tab.knots[-1]).tolist()), tab.order[-1], pname, nominal)
                merged.setdefault(key, []).append((ci, idx, np.asarray(c.rows)))
    terms = []
    for (_, knots, k, pname, nominal), parts in merged.items():
        members = np.unique(np.concatenate([q[1] for q in parts]))
        n_basis = parts[0][2].shape[0]
        rows = np.zeros((n_basis, n_comp, members.size))
        for ci, idx, r in parts:
            rows[:, ci, np.searchsorted(members, idx)] = r
        knots_arr = np.asarray(knots, dtype=float)
        nom = np.stack([_nominal(rows[:, ci, :], knots_arr, k, nominal) for ci in range(n_comp)])
        if members.size >= n_events // 2:
            dense = np.zeros((n_basis, n_comp, n_events))
            dense[:, :, members] = rows
            dnom = np.zeros((n_comp, n_events))
            dnom[:, members] = nom
            spline = ContractedSpline(jnp.asarray(dense), jnp.asarray(knots_arr), k)
            terms.append(DetectorTerm(None, spline, jnp.asarray(dnom), pname))
        else:
            spline = ContractedSpline(jnp.asarray(rows), jnp.asarray(knots_arr), k)
            terms.append(DetectorTerm(jnp.asarray(members), spline, jnp.asarray(nom), pname))
    return DetectorModel(tuple(terms), n_events)
