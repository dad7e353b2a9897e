r"""Binned Poisson spectrum: forward folding through exposure and energy dispersion, Cash statistic.

The dataset is the one a gamma-ray ``SpectrumDataset`` holds (and gammapy can represent
the same arrays): observed counts in reconstructed-energy bins :math:`j`, an exposure
:math:`A_i` [cm^2 s] in true-energy bins :math:`i`, an energy-dispersion matrix
:math:`D_{ij} = P(\text{reco bin } j \mid \text{true bin } i)` and an optional known
background :math:`b_j` [counts]. Predicted counts of a flux model :math:`\phi(E)`:

.. math::

    \mu_j = \sum_i A_i \left(\int_{E_i}^{E_{i+1}} \phi(E)\,dE\right) D_{ij} + b_j ,

and the fit statistic is the Cash statistic (gammapy's ``cash``, with predicted counts
below :math:`10^{-25}` clipped to :math:`10^{-25}` as gammapy does):

.. math::

    C = -2\log L + \text{const} = 2\sum_j \left(\mu_j - n_j \log \mu_j\right).

It is used for the flux-point cross-check against gammapy and as the minimal binned
likelihood of the flux-point engine; :func:`reco_flux_point_data` and
:func:`true_flux_point_data` build the per-bin inputs of
:func:`bayesnu.frequentist.flux_points.estimate_flux_points` for the two ways of
restricting a flux point to an energy bin (see ``docs/frequentist.rst``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayesnu.errors import ConfigError

__all__ = [
    "CASH_TRUNCATION",
    "BinnedCounts",
    "SpectrumDataset",
    "binned_counts_npred",
    "binned_counts_npred_signal",
    "binned_counts_stat",
    "binned_counts_stat_bkg_norm",
    "cash",
    "flux_points_problem",
    "npred",
    "npred_signal",
    "reco_flux_point_data",
    "simulate_counts",
    "to_gammapy",
    "true_flux_point_data",
]

#: Predicted counts are clipped to this value inside the Cash statistic (gammapy's value).
CASH_TRUNCATION = 1e-25


@dataclass(frozen=True)
class SpectrumDataset:
    """Binned spectrum: counts, exposure, energy dispersion, known background.

    Parameters
    ----------
    counts
        Observed counts per reconstructed-energy bin, shape ``(n_reco,)``.
    exposure_cm2_s
        Exposure per true-energy bin [cm^2 s], shape ``(n_true,)``.
    edisp
        ``(n_true, n_reco)`` matrix: probability that an event in true bin ``i`` is
        reconstructed in bin ``j`` (rows may sum to less than 1: events lost).
    background
        Known expected background counts per reco bin, shape ``(n_reco,)``.
    e_true_edges_gev, e_reco_edges_gev
        Bin edges [GeV], increasing.
    """

    counts: jax.Array
    exposure_cm2_s: jax.Array
    edisp: jax.Array
    background: jax.Array
    e_true_edges_gev: jax.Array
    e_reco_edges_gev: jax.Array

    @classmethod
    def create(
        cls,
        *,
        counts: Any,
        exposure_cm2_s: Any,
        edisp: Any,
        e_true_edges_gev: Any,
        e_reco_edges_gev: Any,
        background: Any = None,
    ) -> SpectrumDataset:
        """Validate shapes and values and build the dataset (float64 JAX arrays)."""
        et = np.asarray(e_true_edges_gev, dtype=float)
        er = np.asarray(e_reco_edges_gev, dtype=float)
        n = np.asarray(counts, dtype=float)
        a = np.asarray(exposure_cm2_s, dtype=float)
        d = np.asarray(edisp, dtype=float)
        b = np.zeros(er.size - 1) if background is None else np.asarray(background, dtype=float)
        for name, edges in (("e_true_edges_gev", et), ("e_reco_edges_gev", er)):
            if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] <= 0:
                raise ConfigError(f"{name} must be increasing positive bin edges in GeV")
        if n.shape != (er.size - 1,) or b.shape != n.shape:
            raise ConfigError(f"counts and background need shape ({er.size - 1},) (one value per reco bin)")
        if a.shape != (et.size - 1,):
            raise ConfigError(f"exposure_cm2_s needs shape ({et.size - 1},) (one value per true bin)")
        if d.shape != (et.size - 1, er.size - 1):
            raise ConfigError(f"edisp needs shape ({et.size - 1}, {er.size - 1}) (true x reco)")
        if (
            np.any(n < 0)
            or np.any(a < 0)
            or np.any(b < 0)
            or np.any(d < 0)
            or np.any(d.sum(axis=1) > 1 + 1e-9)
        ):
            raise ConfigError("counts, exposure and background must be >= 0 and edisp rows probabilities")
        return cls(*(jnp.asarray(x) for x in (n, a, d, b, et, er)))


jax.tree_util.register_dataclass(
    SpectrumDataset,
    data_fields=["counts", "exposure_cm2_s", "edisp", "background", "e_true_edges_gev", "e_reco_edges_gev"],
    meta_fields=[],
)


def _true_integrals(
    model: Any, ds: SpectrumDataset, lo: jax.Array | None = None, hi: jax.Array | None = None
) -> jax.Array:
    e = ds.e_true_edges_gev
    e1, e2 = e[:-1], e[1:]
    if lo is not None and hi is not None:
        a, b = jnp.clip(e1, lo, hi), jnp.clip(e2, lo, hi)
        return jnp.where(b > a, model.integral(jnp.where(b > a, a, e1), jnp.where(b > a, b, e2)), 0.0)
    return model.integral(e1, e2)


def npred_signal(model: Any, ds: SpectrumDataset) -> jax.Array:
    """Predicted signal counts per reco bin of a flux model with ``integral(e1_gev, e2_gev)``."""
    return (_true_integrals(model, ds) * ds.exposure_cm2_s) @ ds.edisp


def npred(model: Any, ds: SpectrumDataset) -> jax.Array:
    """Predicted counts per reco bin (signal plus known background)."""
    return npred_signal(model, ds) + ds.background


def cash(counts: jax.Array, mu: jax.Array) -> jax.Array:
    """Per-bin Cash statistic ``2 (mu - n log mu)`` with ``mu`` clipped at :data:`CASH_TRUNCATION`."""
    mu = jnp.maximum(mu, CASH_TRUNCATION)
    return 2.0 * (mu - counts * jnp.log(mu))


def simulate_counts(key: jax.Array, model: Any, ds: SpectrumDataset) -> jax.Array:
    """Poisson counts drawn from the predicted counts of ``model``."""
    return jax.random.poisson(key, npred(model, ds)).astype(float)


@dataclass(frozen=True)
class BinnedCounts:
    """Per-flux-point inputs of :func:`binned_counts_stat` (all arrays of shape ``(n_reco,)``).

    ``mu = norm * signal_ref + other + background_scale * background`` in the bins where
    ``mask`` is true; ``signal_ref`` is the reference model restricted to the flux-point
    bin, ``other`` the fixed rest of the signal model.
    """

    counts: jax.Array
    signal_ref: jax.Array
    other: jax.Array
    background: jax.Array
    mask: jax.Array


jax.tree_util.register_dataclass(
    BinnedCounts, data_fields=["counts", "signal_ref", "other", "background", "mask"], meta_fields=[]
)


def binned_counts_stat(norm: jax.Array, nuisance: jax.Array, data: BinnedCounts) -> jax.Array:
    """Cash statistic of a flux-point bin; ``nuisance`` is unused (frozen background)."""
    del nuisance
    mu = norm * data.signal_ref + data.other + data.background
    return jnp.sum(jnp.where(data.mask, cash(data.counts, mu), 0.0))


def binned_counts_stat_bkg_norm(norm: jax.Array, nuisance: jax.Array, data: BinnedCounts) -> jax.Array:
    """Cash statistic with ``nuisance[0]`` scaling the background (re-optimised per bin)."""
    mu = norm * data.signal_ref + data.other + nuisance[0] * data.background
    return jnp.sum(jnp.where(data.mask, cash(data.counts, mu), 0.0))


def binned_counts_npred(
    norm: jax.Array, nuisance: jax.Array, data: BinnedCounts, *, bkg_norm: bool = False
) -> jax.Array:
    """Total predicted counts in the masked bins."""
    scale = nuisance[0] if bkg_norm else 1.0
    mu = norm * data.signal_ref + data.other + scale * data.background
    return jnp.sum(jnp.where(data.mask, mu, 0.0))


def binned_counts_npred_signal(norm: jax.Array, nuisance: jax.Array, data: BinnedCounts) -> jax.Array:
    """Predicted counts of the flux-point component ``norm * signal_ref`` in the masked bins."""
    del nuisance
    return jnp.sum(jnp.where(data.mask, norm * data.signal_ref, 0.0))


def _snap_reco_bins(edges: np.ndarray, e_min: float, e_max: float) -> tuple[int, int]:
    """Reco-bin index range [i0, i1) whose edges are closest to (e_min, e_max) in log E.

    This mirrors gammapy's ``MapAxis.group_table`` + ``slice_by_energy``: requested
    edges snap to the nearest existing bin edges.
    """
    le = np.log(edges)
    i0 = int(np.argmin(np.abs(le - np.log(e_min))))
    i1 = int(np.argmin(np.abs(le - np.log(e_max))))
    if i1 <= i0:
        raise ConfigError(
            f"flux-point bin [{e_min:g}, {e_max:g}] GeV contains no reconstructed-energy bin of the dataset "
            f"(edges {edges[0]:g} .. {edges[-1]:g} GeV); choose coarser flux-point edges"
        )
    return i0, i1


def reco_flux_point_data(
    ds: SpectrumDataset, reference: Any, e_min_gev: float, e_max_gev: float
) -> tuple[BinnedCounts, float, float]:
    """Flux-point inputs restricted in *reconstructed* energy (gammapy's convention).

    The whole reference model is folded; only reco bins inside the (snapped) energy
    range enter the statistic. Returns ``(data, e_min_gev, e_max_gev)`` with the
    snapped edges.
    """
    edges = np.asarray(ds.e_reco_edges_gev)
    i0, i1 = _snap_reco_bins(edges, e_min_gev, e_max_gev)
    mask = np.zeros(edges.size - 1, dtype=bool)
    mask[i0:i1] = True
    data = BinnedCounts(
        counts=ds.counts,
        signal_ref=npred_signal(reference, ds),
        other=jnp.zeros_like(ds.counts),
        background=ds.background,
        mask=jnp.asarray(mask),
    )
    return data, float(edges[i0]), float(edges[i1])


def true_flux_point_data(
    ds: SpectrumDataset, reference: Any, e_min_gev: float, e_max_gev: float, *, others: str = "zero"
) -> tuple[BinnedCounts, float, float]:
    """Flux-point inputs restricted in *true* energy (piecewise norm; neutrino convention).

    The reference flux inside ``[e_min_gev, e_max_gev]`` (true energy) is scaled by the
    fitted norm; outside it is set to zero (``others="zero"``: the flux point measures
    the flux in that energy range alone) or kept at the reference (``others="fixed"``).
    All reco bins enter the statistic.
    """
    if others not in ("zero", "fixed"):
        raise ConfigError(f"others must be 'zero' or 'fixed', got {others!r}")
    inside = _true_integrals(reference, ds, jnp.asarray(e_min_gev), jnp.asarray(e_max_gev))
    total = _true_integrals(reference, ds)
    sig = (inside * ds.exposure_cm2_s) @ ds.edisp
    rest = ((total - inside) * ds.exposure_cm2_s) @ ds.edisp
    data = BinnedCounts(
        counts=ds.counts,
        signal_ref=sig,
        other=rest if others == "fixed" else jnp.zeros_like(rest),
        background=ds.background,
        mask=jnp.ones(ds.counts.shape, dtype=bool),
    )
    return data, float(e_min_gev), float(e_max_gev)


def to_gammapy(
    ds: SpectrumDataset, reference: Any = None, *, name: str = "bayesnu", source: str = "source"
) -> Any:
    """The same dataset as a ``gammapy.datasets.SpectrumDataset`` (requires gammapy).

    Counts, known background, exposure and the energy-dispersion kernel are copied as
    they are (energies in GeV, exposure in cm^2 s). With a ``reference``
    :class:`bayesnu.flux.PowerLaw` (no cut-off) the dataset gets a ``SkyModel`` named
    ``source`` with the equivalent ``PowerLawSpectralModel``.
    """
    from astropy import units as u
    from gammapy.datasets import SpectrumDataset as GammapySpectrumDataset
    from gammapy.irf import EDispKernel, EDispKernelMap
    from gammapy.maps import MapAxis, RegionGeom, RegionNDMap

    e_reco = MapAxis.from_edges(np.asarray(ds.e_reco_edges_gev), unit="GeV", name="energy", interp="log")
    e_true = MapAxis.from_edges(np.asarray(ds.e_true_edges_gev), unit="GeV", name="energy_true", interp="log")
    geom = RegionGeom.create(region="icrs;circle(0, 0, 0.1)", axes=[e_reco])
    geom_true = geom.to_image().to_cube([e_true])
    counts = RegionNDMap.from_geom(geom, data=np.asarray(ds.counts).reshape(-1, 1, 1))
    background = RegionNDMap.from_geom(geom, data=np.asarray(ds.background).reshape(-1, 1, 1))
    exposure = RegionNDMap.from_geom(
        geom_true, data=np.asarray(ds.exposure_cm2_s).reshape(-1, 1, 1), unit="cm2 s"
    )
    kernel = EDispKernel(axes=[e_true, e_reco], data=np.asarray(ds.edisp))
    edisp = EDispKernelMap.from_edisp_kernel(kernel, geom=geom_true)
    out = GammapySpectrumDataset(
        counts=counts, background=background, exposure=exposure, edisp=edisp, name=name
    )
    if reference is not None:
        from gammapy.modeling.models import PowerLawSpectralModel, SkyModel

        if getattr(reference, "e_cut_gev", None) is not None:
            raise ConfigError("to_gammapy converts pure power laws only (e_cut_gev=None)")
        spec = PowerLawSpectralModel(
            index=float(reference.gamma),
            amplitude=float(reference.norm) * u.Unit("GeV-1 cm-2 s-1"),
            reference=float(reference.e0_gev) * u.GeV,
        )
        out.models = [SkyModel(spectral_model=spec, name=source)]
    return out


def flux_points_problem(
    ds: SpectrumDataset,
    reference: Any,
    energy_edges_gev: Any,
    *,
    restrict: str = "reco",
    others: str = "zero",
    background_norm: bool = False,
) -> Any:
    """A :class:`bayesnu.frequentist.flux_points.FluxPointsProblem` for this dataset.

    Parameters
    ----------
    ds
        The binned spectrum.
    reference
        Reference flux model (``integral``, ``dnde``, ``energy_flux``; GeV units).
    energy_edges_gev
        Flux-point bin edges [GeV].
    restrict
        ``"reco"``: gammapy's reconstructed-energy restriction (:func:`reco_flux_point_data`;
        edges snap to the dataset's reco edges); ``"true"``: true-energy piecewise norm
        (:func:`true_flux_point_data` with ``others``).
    others
        For ``restrict="true"``: the flux outside the bin is ``"zero"`` or ``"fixed"``.
    background_norm
        Add one nuisance parameter scaling the background (start 1, bounded at 0),
        re-fitted per bin with ``estimate_flux_points(..., reoptimize=True)``.
    """
    import functools

    from bayesnu.frequentist.flux_points import FluxPointBin, FluxPointsProblem

    edges = np.asarray(energy_edges_gev, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ConfigError("energy_edges_gev must be at least two increasing energies in GeV")
    bins = []
    for lo, hi in itertools.pairwise(edges):
        if restrict == "reco":
            data, e1, e2 = reco_flux_point_data(ds, reference, float(lo), float(hi))
        elif restrict == "true":
            data, e1, e2 = true_flux_point_data(ds, reference, float(lo), float(hi), others=others)
        else:
            raise ConfigError(f"restrict must be 'reco' or 'true', got {restrict!r}")
        counts = float(np.sum(np.where(np.asarray(data.mask), np.asarray(data.counts), 0.0)))
        bins.append(FluxPointBin(e1, e2, data, counts=counts))
    return FluxPointsProblem(
        stat=binned_counts_stat_bkg_norm if background_norm else binned_counts_stat,
        bins=bins,
        reference=reference,
        npred=functools.partial(binned_counts_npred, bkg_norm=background_norm),
        npred_signal=binned_counts_npred_signal,
        nuisance_init=(1.0,) if background_norm else (),
        nuisance_bounds=((0.0, float("inf")),) if background_norm else (),
    )
