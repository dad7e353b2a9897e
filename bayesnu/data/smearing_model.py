r"""Smearing matrices in the release's 5D layout, generated from the parametric detector model.

The release describes its smearing files as "fractional counts of simulated events"
per (E_nu, Dec_nu) bin, with reconstructed-energy, PSF and AngErr bins "selected in
each (E_nu, Dec_nu) bin independently". :func:`make_smearing_matrix` builds exactly
that structure from :class:`~bayesnu.data.detector_model.DetectorModel`:

1. in each true bin :math:`(E_\nu, \delta_\nu)`, ``n_mc`` events are drawn with
   density proportional to :math:`A_\mathrm{eff}(E_\nu, \delta_\nu)` in (log10 E_nu,
   sin dec_nu) (importance sampling on a 16 x 16 grid of cells, uniform inside a
   cell, weight :math:`A_\mathrm{eff}/A_\mathrm{eff}(\text{cell})`) and passed through
   :meth:`~bayesnu.data.detector_model.DetectorModel.sample_response`;
2. each event's weight is multiplied by the southern reconstructed-energy selection
   :math:`P_\mathrm{sel}(E_\mathrm{reco}, \delta_\nu)`; events of weight 0 are dropped,
   so the block describes detected events at the bin's detection-rate weighting;
3. reconstructed-energy edges of the block are weighted quantiles of log10 E_reco
   (levels :math:`q_k = (1 - \cos(\pi k / n))/2`, denser in the tails; outer edges the
   minimum and maximum), PSF edges are weighted quantiles of the PSF angle inside each
   reco bin (lowest edge 0), AngErr edges weighted quantiles inside each PSF bin;
   edges are rounded to the precision the release writes (4 decimals for energy,
   5 for angles) and made strictly increasing;
4. ``Fractional_Counts`` is the summed weight in each 5D bin over the summed weight
   of the true bin, so every valid block sums to 1; a true bin without any detected
   event is written with all edges and counts 0 (the release's empty blocks).

Everything is vectorised over the Monte Carlo events (no Python loop over events or
bins); a 10-year configuration (35 x 3 true bins, 10 x 5 x 4 reco bins) takes about
a second for 10,000 events per true bin.
"""

from __future__ import annotations

import numpy as np

from bayesnu.data.detector_model import DetectorModel, detector_config
from bayesnu.data.ps_formats import SmearingMatrix

#: True-energy edges of the simulated smearing matrices, log10(E_nu/GeV) 2..9 step 0.2.
SMEARING_LOG10_ENU_EDGES = np.round(np.linspace(2.0, 9.0, 36), 2)

#: Coarse true-declination binning of the 10-year release's smearing files [deg].
SMEARING_DEC_EDGES_10Y = np.array([-90.0, -10.0, 10.0, 90.0])

#: Finer true-declination binning used for the 14-year release [deg].
SMEARING_DEC_EDGES_14Y = np.array([-90.0, -45.0, -20.0, -5.0, 0.0, 10.0, 30.0, 60.0, 90.0])


def quantile_levels(n_bins: int) -> np.ndarray:
    """Quantile levels of bin edges, :math:`(1 - \\cos(\\pi k/n))/2`, k = 0..n (denser in the tails)."""
    return 0.5 * (1.0 - np.cos(np.pi * np.arange(n_bins + 1) / n_bins))


def _round_edges(edges: np.ndarray, decimals: int, fixed_lower: float | None = None) -> np.ndarray:
    """Round edges as the release writes them: outer edges outwards, strictly increasing."""
    scale = 10.0**decimals
    out = np.round(edges * scale)
    out[..., 0] = np.floor(edges[..., 0] * scale + 1e-6)
    out[..., -1] = np.ceil(edges[..., -1] * scale - 1e-6)
    if fixed_lower is not None:
        out[..., 0] = np.round(fixed_lower * scale)
    # Strictly increasing in units of the last written digit: e_k >= e_{k-1} + 1.
    k = np.arange(out.shape[-1])
    out = np.maximum.accumulate(out - k, axis=-1) + k
    return out / scale


def _group_edges(
    values: np.ndarray,
    weights: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    n_bins: int,
    decimals: int,
    fallback: tuple[float, float],
    fixed_lower: float | None = None,
) -> np.ndarray:
    """Weighted-quantile bin edges of ``values`` inside each group, shape ``(n_groups, n_bins + 1)``.

    Groups without events get ``n_bins`` equal bins over ``fallback``.
    """
    order = np.lexsort((values, group))
    v, w, g = values[order], weights[order], group[order]
    counts = np.bincount(g, minlength=n_groups)
    wsum = np.bincount(g, weights=w, minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cw = np.cumsum(w)
    cw_before = np.concatenate([[0.0], cw])[start]
    frac = (cw - cw_before[g]) / np.where(wsum[g] > 0, wsum[g], 1.0)
    key = g + np.minimum(frac, 1.0 - 1e-12)
    levels = quantile_levels(n_bins)[1:-1]
    idx = np.searchsorted(key, np.arange(n_groups)[:, None] + levels[None, :], side="left")
    nonempty = counts > 0
    last = start + np.maximum(counts, 1) - 1
    idx = np.clip(idx, start[:, None], last[:, None])
    safe = np.minimum(idx, len(v) - 1) if len(v) else np.zeros_like(idx)
    vv = v if len(v) else np.zeros(1)
    edges = np.empty((n_groups, n_bins + 1))
    edges[:, 1:-1] = vv[safe]
    edges[:, 0] = vv[np.minimum(start, len(vv) - 1)]
    edges[:, -1] = vv[np.minimum(last, len(vv) - 1)]
    edges[~nonempty] = np.linspace(*fallback, n_bins + 1)
    return _round_edges(edges, decimals, fixed_lower)


def _bin_index(values: np.ndarray, edges_per_event: np.ndarray) -> np.ndarray:
    """Bin index of each value in its own edges (values lie within the outer edges)."""
    return np.sum(values[:, None] >= edges_per_event[:, 1:-1], axis=1)


def make_smearing_matrix(
    config: str,
    model: DetectorModel | None = None,
    *,
    seed: int | np.random.SeedSequence = 0,
    n_mc: int = 10_000,
    log10_enu_edges: np.ndarray | None = None,
    dec_edges_deg: np.ndarray | None = None,
    n_reco: int = 10,
    n_psf: int = 5,
    n_ang_err: int = 4,
) -> SmearingMatrix:
    """Generate a 5D smearing matrix of one detector configuration from the detector model.

    Parameters
    ----------
    config
        Detector configuration (``"IC40"``, ..., ``"IC86_II"``, ``"IC86"``).
    model
        Detector model (default: the calibrated :class:`DetectorModel`).
    seed
        Seed of the Monte Carlo (same seed -> identical matrix).
    n_mc
        Monte Carlo events drawn per true (E_nu, Dec_nu) bin.
    log10_enu_edges
        True-energy edges, log10(E_nu/GeV) (default :data:`SMEARING_LOG10_ENU_EDGES`).
    dec_edges_deg
        True-declination edges [deg] (default :data:`SMEARING_DEC_EDGES_10Y`).
    n_reco, n_psf, n_ang_err
        Number of reconstructed-energy bins per true bin, PSF bins per reco bin and
        AngErr bins per PSF bin.

    Returns
    -------
    SmearingMatrix
        Ready for :func:`bayesnu.data.ps_formats.write_smearing`.
    """
    model = model or DetectorModel()
    cfg = detector_config(config)
    le = np.asarray(SMEARING_LOG10_ENU_EDGES if log10_enu_edges is None else log10_enu_edges, dtype=float)
    de = np.asarray(SMEARING_DEC_EDGES_10Y if dec_edges_deg is None else dec_edges_deg, dtype=float)
    if n_mc < 10 or min(n_reco, n_psf, n_ang_err) < 1:
        raise ValueError("n_mc must be >= 10 and every bin count >= 1")
    n_e, n_d = len(le) - 1, len(de) - 1
    n_blocks = n_e * n_d
    rng = np.random.default_rng(seed)
    block = np.repeat(np.arange(n_blocks), n_mc)
    ie, idec = np.divmod(block, n_d)
    # Importance sampling inside each true bin: cells of a (16 x 16) grid in
    # (log10 E, sin dec) are drawn in proportion to A_eff x cell size, the point
    # uniformly inside the cell; the weight A_eff(x, s) / A_eff(cell) stays close to 1.
    sd = np.sin(np.radians(de))
    n_cell = 16
    f = (np.arange(n_cell) + 0.5) / n_cell
    xc = le[:-1, None] + np.diff(le)[:, None] * f  # (n_e, n_cell)
    sc = sd[:-1, None] + np.diff(sd)[:, None] * f  # (n_d, n_cell)
    a_cell = model.aeff_cm2(
        cfg, xc[:, None, :, None], np.degrees(np.arcsin(np.clip(sc, -1, 1)))[None, :, None, :]
    ).reshape(n_blocks, n_cell * n_cell)
    a_sum = a_cell.sum(axis=1)
    p_cell = np.where(
        a_sum[:, None] > 0, a_cell / np.where(a_sum > 0, a_sum, 1.0)[:, None], 1.0 / a_cell.shape[1]
    )
    cdf = np.cumsum(p_cell, axis=1)
    cdf[:, -1] = 1.0
    # Categorical draw per block with one global searchsorted: keys b + cdf_b are sorted.
    keys = (np.arange(n_blocks)[:, None] + np.minimum(cdf, 1.0 - 1e-12)).ravel()
    u = rng.random(block.size) * (1.0 - 2e-12)
    cell = np.searchsorted(keys, block + u, side="right") - block * a_cell.shape[1]
    cell = np.clip(cell, 0, a_cell.shape[1] - 1)
    cx, cs = np.divmod(cell, n_cell)
    x = le[ie] + np.diff(le)[ie] * (cx + rng.random(block.size)) / n_cell
    s_ = sd[idec] + np.diff(sd)[idec] * (cs + rng.random(block.size)) / n_cell
    dec = np.degrees(np.arcsin(np.clip(s_, -1.0, 1.0)))
    y, psi, ang_err = model.sample_response(rng, cfg, x)
    a_ref = a_cell[block, cell]
    w = np.where(a_ref > 0, model.aeff_cm2(cfg, x, dec) / np.where(a_ref > 0, a_ref, 1.0), 0.0)
    w = w * model.selection_weight(cfg, y, dec)
    keep = w > 0
    block, y, psi, ang_err, w = block[keep], y[keep], psi[keep], ang_err[keep], w[keep]
    w_block = np.bincount(block, weights=w, minlength=n_blocks)
    valid = w_block > 0

    reco_edges = _group_edges(y, w, block, n_blocks, n_reco, 4, (1.0, 2.0))
    ir = _bin_index(y, reco_edges[block])
    g2 = block * n_reco + ir
    psf_edges = _group_edges(psi, w, g2, n_blocks * n_reco, n_psf, 5, (0.0, 1.0), fixed_lower=0.0)
    ip = _bin_index(psi, psf_edges[g2])
    g3 = g2 * n_psf + ip
    ang_edges = _group_edges(ang_err, w, g3, n_blocks * n_reco * n_psf, n_ang_err, 5, (0.2, 1.2))
    ia = _bin_index(ang_err, ang_edges[g3])
    flat = g3 * n_ang_err + ia
    n_cells = n_blocks * n_reco * n_psf * n_ang_err
    counts = np.bincount(flat, weights=w, minlength=n_cells).reshape(n_blocks, -1)
    frac = counts / np.where(valid, w_block, 1.0)[:, None]

    shape5 = (n_e, n_d, n_reco, n_psf, n_ang_err)
    reco_edges = reco_edges.reshape(n_e, n_d, n_reco + 1)
    psf_edges = psf_edges.reshape(n_e, n_d, n_reco, n_psf + 1)
    ang_edges = ang_edges.reshape(n_e, n_d, n_reco, n_psf, n_ang_err + 1)
    empty = ~valid.reshape(n_e, n_d)
    reco_edges[empty] = 0.0
    psf_edges[empty] = 0.0
    ang_edges[empty] = 0.0
    return SmearingMatrix(
        log10_enu_edges=le,
        dec_edges_deg=de,
        reco_edges=reco_edges,
        psf_edges_deg=psf_edges,
        ang_err_edges_deg=ang_edges,
        fractional_counts=frac.reshape(shape5),
        source=f"{model.version}:{config}",
    )


__all__ = [
    "SMEARING_DEC_EDGES_10Y",
    "SMEARING_DEC_EDGES_14Y",
    "SMEARING_LOG10_ENU_EDGES",
    "make_smearing_matrix",
    "quantile_levels",
]
