"""Analysis binning of the HESE-style diffuse fit (the release's default, fully configurable).

The release bins every morphology in reconstructed deposited energy and one second
observable: cascades and tracks in reconstructed zenith angle, double cascades in
reconstructed length. Energy edges start at 60 TeV and step by 0.111 in
:math:`\\log_{10} E` until 10 PeV is covered (21 bins, last edge 12.86 PeV); zenith
edges are :math:`\\arccos` of 11 equally spaced :math:`\\cos\\theta` in [-1, 1] (10 bins
in zenith, i.e. equal in :math:`\\cos\\theta`); length edges start at 10 m and step by
0.1 in :math:`\\log_{10} L` up to 1000 m (20 bins). Total: 210 + 210 + 420 = 840 bins.

A value falls in bin :math:`j` when ``edges[j] <= x < edges[j+1]`` (numpy's
``digitize``); values outside all bins belong to no bin. Flattened bin numbers run over
morphologies in the order given, then over the second observable, then energy:
``offset[m] + j2 * n_energy + j_energy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesnu.data.hese import HESEData
from bayesnu.errors import ConfigError

#: Observables a morphology can be binned in: name -> HESEData attribute.
OBSERVABLES: dict[str, str] = {
    "zenith_rad": "reco_zenith_rad",
    "length_m": "reco_length_m",
    "cos_zenith": "reco_zenith_rad",
}


def walk_edges(lo_target: float, hi_target: float, anchor: float, log_width: float) -> np.ndarray:
    """Logarithmic edges through ``anchor`` with ``log_width`` decades, covering [lo, hi].

    Steps outwards from ``anchor`` (dividing, then multiplying by ``10**log_width``)
    until the target range is covered, then returns ``np.logspace`` between the two
    extremes, as the release computes its energy and length edges.
    """
    n_edges = 1
    lo = anchor
    while lo > lo_target:
        n_edges += 1
        lo /= 10.0**log_width
    hi = anchor
    while hi < hi_target:
        n_edges += 1
        hi *= 10.0**log_width
    return np.logspace(np.log10(lo), np.log10(hi), n_edges)


@dataclass(frozen=True)
class MorphologyBinning:
    """Binning of one morphology: its code, second observable and that observable's edges."""

    morphology: int
    observable: str
    edges: np.ndarray

    def __post_init__(self) -> None:
        if self.observable not in OBSERVABLES:
            raise ConfigError(f"unknown observable {self.observable!r}; choose one of {sorted(OBSERVABLES)}")
        e = np.asarray(self.edges, dtype=float)
        if e.ndim != 1 or e.shape[0] < 2 or np.any(np.diff(e) <= 0):
            raise ConfigError(f"edges of morphology {self.morphology} must be increasing, >= 2 values")


@dataclass(frozen=True)
class DiffuseBinning:
    """Energy edges [GeV] shared by all morphologies, plus one :class:`MorphologyBinning` each."""

    energy_edges_gev: np.ndarray
    morphologies: tuple[MorphologyBinning, ...]
    label: str = field(default="custom")

    def __post_init__(self) -> None:
        e = np.asarray(self.energy_edges_gev, dtype=float)
        if e.ndim != 1 or e.shape[0] < 2 or np.any(np.diff(e) <= 0) or e[0] <= 0:
            raise ConfigError("energy edges must be positive and increasing (>= 2 values)")
        codes = [m.morphology for m in self.morphologies]
        if len(set(codes)) != len(codes):
            raise ConfigError(f"morphology listed twice in the binning: {codes}")

    @property
    def n_energy(self) -> int:
        """Number of energy bins."""
        return int(len(self.energy_edges_gev) - 1)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of bins per morphology."""
        return tuple(self.n_energy * (len(m.edges) - 1) for m in self.morphologies)

    @property
    def n_bins(self) -> int:
        """Total number of bins."""
        return int(sum(self.sizes))

    def offsets(self) -> np.ndarray:
        """First flattened bin number of each morphology."""
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    def bin_index(self, events: HESEData) -> np.ndarray:
        """Flattened bin number of each event (-1: in no bin)."""
        out = np.full(len(events), -1, dtype=np.int64)
        e_idx = np.digitize(events.reco_energy_gev, self.energy_edges_gev) - 1
        ne = self.n_energy
        for off, mb in zip(self.offsets(), self.morphologies):
            sel = events.morphology == mb.morphology
            x = np.asarray(getattr(events, OBSERVABLES[mb.observable]), dtype=float)
            if mb.observable == "cos_zenith":
                x = np.cos(x)
            with np.errstate(invalid="ignore"):
                j = np.digitize(x, mb.edges) - 1
            n2 = len(mb.edges) - 1
            ok = sel & (e_idx >= 0) & (e_idx < ne) & (j >= 0) & (j < n2) & np.isfinite(x)
            out[ok] = off + j[ok] * ne + e_idx[ok]
        return out

    def energy_bin(self, flat: np.ndarray) -> np.ndarray:
        """Energy-bin number of flattened bin numbers."""
        return np.asarray(flat) % self.n_energy

    def morphology_of(self, flat: np.ndarray) -> np.ndarray:
        """Morphology code of flattened bin numbers."""
        flat = np.asarray(flat)
        codes = np.array([m.morphology for m in self.morphologies])
        which = np.searchsorted(np.cumsum(self.sizes), flat, side="right")
        return codes[which]

    def to_dict(self) -> dict:
        """JSON-friendly description."""
        return {
            "label": self.label,
            "energy_edges_gev": [float(x) for x in self.energy_edges_gev],
            "morphologies": [
                {"morphology": m.morphology, "observable": m.observable, "edges": [float(x) for x in m.edges]}
                for m in self.morphologies
            ],
            "n_bins": self.n_bins,
        }


def hese_binning(
    emin_gev: float = 60.0e3,
    emax_gev: float = 1.0e7,
    energy_log_width: float = 0.111,
    energy_anchor_gev: float = 60.0e3,
    lmin_m: float = 10.0,
    lmax_m: float = 1000.0,
    length_log_width: float = 0.1,
    length_anchor_m: float = 10.0,
    n_zenith: int = 10,
) -> DiffuseBinning:
    """The release's binning (default arguments give its 840 bins)."""
    e_edges = walk_edges(emin_gev, emax_gev, energy_anchor_gev, energy_log_width)
    z_edges = np.arccos(np.linspace(-1.0, 1.0, n_zenith + 1))[::-1]
    l_edges = walk_edges(lmin_m, lmax_m, length_anchor_m, length_log_width)
    return DiffuseBinning(
        e_edges,
        (
            MorphologyBinning(0, "zenith_rad", z_edges),
            MorphologyBinning(1, "zenith_rad", z_edges),
            MorphologyBinning(2, "length_m", l_edges),
        ),
        label="hese",
    )


def energy_zenith_binning(
    energy_edges_gev: np.ndarray | list[float],
    cos_zenith_edges: np.ndarray | list[float],
    morphologies: tuple[int, ...] = (1,),
    label: str = "energy x cos zenith",
) -> DiffuseBinning:
    """Reconstructed energy x :math:`\\cos\\theta` bins for every morphology in ``morphologies``.

    The usual binning of a generic sample (e.g. northern tracks: ``morphologies=(1,)``
    and ``cos_zenith_edges`` up to about 0.1).

    Parameters
    ----------
    energy_edges_gev
        Increasing reconstructed-energy edges [GeV].
    cos_zenith_edges
        Increasing :math:`\\cos\\theta_\\mathrm{reco}` edges in [-1, 1].
    morphologies
        Morphology codes binned (events of other codes fall in no bin).
    label
        Name stored with the binning.
    """
    cz = np.asarray(cos_zenith_edges, dtype=float)
    if cz.size and (cz.min() < -1.0 or cz.max() > 1.0):
        raise ConfigError(f"cos zenith edges must lie in [-1, 1], got [{cz.min()}, {cz.max()}]")
    return DiffuseBinning(
        np.asarray(energy_edges_gev, dtype=float),
        tuple(MorphologyBinning(int(m), "cos_zenith", cz) for m in morphologies),
        label=label,
    )
