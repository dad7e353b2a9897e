"""Plots of the diffuse analysis: energy projection, 2D profile contours with posterior, corner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

COMPONENT_LABELS: dict[str, str] = {
    "muon": "Atmo. muons",
    "conv": "Atmo. conventional",
    "prompt": "Atmo. prompt",
    "astro": "Astrophysical",
}


def poisson_interval(k: np.ndarray, confidence: float = 0.6827) -> tuple[np.ndarray, np.ndarray]:
    """Central (Garwood) Poisson interval for observed counts ``k``."""
    k = np.asarray(k, dtype=float)
    a = 1.0 - confidence
    lo = np.where(k > 0, stats.chi2.ppf(a / 2, 2 * k) / 2, 0.0)
    hi = stats.chi2.ppf(1 - a / 2, 2 * (k + 1)) / 2
    return lo, hi


def plot_energy_projection(
    analysis, params: Mapping[str, float], ax=None, livetime_days: float | None = None
):
    """Observed events per deposited-energy bin with the stacked expectation of each component.

    Parameters
    ----------
    analysis
        A :class:`~bayesnu.analyses.diffuse.DiffuseAnalysis`.
    params
        Parameter values (e.g. the best fit).
    ax
        Matplotlib axes (default: a new figure).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5))
    b = analysis.binning
    edges = np.asarray(b.energy_edges_gev)
    e_bin = b.energy_bin(np.arange(b.n_bins))
    exp = analysis.expected_counts(params)
    bottom = np.zeros(b.n_energy)
    colors = {"muon": "#3b0f70", "conv": "#8c2981", "prompt": "#de4968", "astro": "#fe9f6d"}
    for comp in ("muon", "conv", "prompt", "astro"):
        per_e = np.bincount(e_bin, weights=exp[comp], minlength=b.n_energy)
        ax.bar(
            edges[:-1],
            per_e,
            width=np.diff(edges),
            bottom=bottom,
            align="edge",
            color=colors[comp],
            label=COMPONENT_LABELS[comp],
            alpha=0.9,
        )
        bottom += per_e
    k = np.bincount(e_bin, weights=analysis.counts, minlength=b.n_energy)
    centers = np.sqrt(edges[:-1] * edges[1:])
    lo, hi = poisson_interval(k)
    ax.errorbar(
        centers,
        k,
        yerr=[k - lo, hi - k],
        xerr=[centers - edges[:-1], edges[1:] - centers],
        fmt="o",
        color="black",
        ms=4,
        capsize=2,
        label="Data",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(0.05, max(40.0, float(np.max(hi)) * 1.5))
    ax.set_xlabel("Deposited energy [GeV]")
    days = analysis.livetime_s / 86400.0 if livetime_days is None else livetime_days
    ax.set_ylabel(f"Events per {days:.0f} days")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def plot_profile_contours(
    scan,
    ax=None,
    confidences: Sequence[float] = (0.6827, 0.9545),
    posterior: Any = None,
    label: str = "profile likelihood (Wilks)",
    color: str = "C0",
):
    """68.3% / 95.4% Wilks contours (2 dof) of a :class:`~bayesnu.analyses.diffuse.profile.ProfileScan`.

    ``posterior`` (an ArviZ DataTree or a dict with ``astro_gamma`` and ``astro_norm``
    draws) adds the highest-density contours of the same probabilities.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    levels = [0.5 * stats.chi2.ppf(c, 2) for c in confidences]
    g, n = np.meshgrid(scan.gamma, scan.norm, indexing="ij")
    ax.contour(g, n, scan.delta(), levels=levels, colors=color, linestyles=["solid", "dashed"][: len(levels)])
    gm, nm, _ = scan.minimum()
    ax.plot([gm], [nm], marker="*", color=color, ms=10, ls="none", label=f"{label}: best fit")
    ax.plot([], [], color=color, label=label)
    if posterior is not None:
        gs, ns = _draws(posterior)
        h, xe, ye = np.histogram2d(gs, ns, bins=40)
        from scipy.ndimage import gaussian_filter

        h = gaussian_filter(h, 1.0)
        flat = np.sort(h.ravel())[::-1]
        cum = np.cumsum(flat) / flat.sum()
        lv = sorted({float(flat[min(np.searchsorted(cum, c), flat.size - 1)]) for c in confidences})
        xc, yc = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
        ax.contour(
            *np.meshgrid(xc, yc, indexing="ij"),
            h,
            levels=lv,
            colors="C3",
            linestyles=["dashed", "solid"][: len(lv)],
        )
        ax.plot([], [], color="C3", label="posterior (HPD)")
    ax.set_xlabel(r"$\gamma_\mathrm{astro}$")
    ax.set_ylabel(r"$\Phi_\mathrm{astro}$ [$10^{-18}$ GeV$^{-1}$ cm$^{-2}$ s$^{-1}$ sr$^{-1}$, 6 $\nu$]")
    ax.legend(fontsize="small")
    return ax


def _draws(posterior: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(posterior, Mapping) and "astro_gamma" in posterior:
        return np.ravel(posterior["astro_gamma"]), np.ravel(posterior["astro_norm"])
    post = posterior["posterior"].to_dataset()
    return np.ravel(post["astro_gamma"].values), np.ravel(post["astro_norm"].values)


def plot_corner(posterior: Any, var_names: Sequence[str] | None = None, **kwargs: Any):
    """Corner plot of posterior draws (an ArviZ DataTree) with the ``corner`` package."""
    import corner

    post = posterior["posterior"].to_dataset()
    names = list(var_names or [n for n, v in post.data_vars.items() if set(v.dims) == {"chain", "draw"}])
    data = np.column_stack([np.ravel(post[n].values) for n in names])
    return corner.corner(data, labels=names, **kwargs)
