"""Photospline tensor-product B-spline tables: FITS reader and JAX evaluation.

IceCube stores smooth detector responses as *photospline* tables
(https://github.com/icecube/photospline): a FITS file whose primary image holds the
coefficients :math:`c_{i_1 \\dots i_D}` (``float32``), with one extension ``KNOTSd``
per dimension holding the knot vector :math:`t^{(d)}`, header keys ``ORDER`` or
``ORDERd`` (the polynomial degree :math:`k_d`) and an optional ``EXTENTS`` extension.
The surface is

.. math::

   f(x) = \\sum_{i_1 \\dots i_D} c_{i_1 \\dots i_D} \\prod_d B^{(d)}_{i_d}(x_d),

with :math:`B^{(d)}_i` the B-spline basis of degree :math:`k_d` on :math:`t^{(d)}`,
:math:`i = 0 \\dots n_d - 1`, :math:`n_d = \\mathrm{len}(t^{(d)}) - k_d - 1`.
This module reproduces photospline's ``evaluate_simple`` semantics without the C++
library:

* a point with :math:`x_d \\le t^{(d)}_0` or :math:`x_d > t^{(d)}_{\\mathrm{last}}` in any
  dimension evaluates to 0;
* otherwise, on the knot interval :math:`t_l \\le x < t_{l+1}`, the :math:`k+1`
  non-zero basis functions :math:`B_{l-k} \\dots B_l` (de Boor's recursion) are summed
  with their coefficients, and basis functions without a coefficient (indices outside
  :math:`0 \\dots n-1`, near the ends of the knot vector) are dropped.

Photospline accumulates in single precision; bayesnu evaluates in double precision
(the ``float32`` coefficients are exact in ``float64``), so values agree to a few
units of ``float32`` rounding (about 1e-7 relative). Gradients come from JAX.

For fits where all coordinates but one are fixed per event (detector systematics:
event observables fixed, one nuisance parameter varying), :func:`contract` sums out
the fixed dimensions once and :func:`evaluate_contracted` evaluates the remaining
one-dimensional spline for all events with ``k + 1`` dynamically indexed rows (value
and slope from the same read, see its custom JVP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from astropy.io import fits
from jax.custom_derivatives import SymbolicZero

from bayesnu.errors import DataFormatError


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class SplineTable:
    """A photospline table (a JAX pytree).

    Attributes
    ----------
    coefficients
        Coefficient array, shape ``(n_0, ..., n_{D-1})`` (float64 copies of the file's float32).
    knots
        One knot vector per dimension (float64).
    order
        Polynomial degree per dimension (photospline calls it "order"); static.
    extents
        Per dimension ``(low, high)``: the range where the table is meant to be used (the
        file's ``EXTENTS`` or, as photospline does without it, ``[t_k, t_n]``); static.
    path
        The file the table was read from.
    """

    coefficients: jax.Array
    knots: tuple[jax.Array, ...]
    order: tuple[int, ...] = field(metadata=dict(static=True))
    extents: tuple[tuple[float, float], ...] = field(metadata=dict(static=True))
    path: str = field(default="", metadata=dict(static=True))

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.knots)

    @property
    def naxes(self) -> tuple[int, ...]:
        """Number of basis functions (coefficients) per dimension."""
        return tuple(int(n) for n in self.coefficients.shape)


def read_photospline(path: str | Path) -> SplineTable:
    """Read a photospline FITS table with astropy.

    Parameters
    ----------
    path
        FITS file written by photospline (``SplineTable.write`` / ``glam_fit``).

    Returns
    -------
    SplineTable

    Raises
    ------
    DataFormatError
        Not a FITS file, no coefficient image, a missing ``KNOTSd`` extension or order
        keyword, or knot and coefficient counts that do not match.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError("spline table not found", path=path, fix="check the path")
    try:
        hdul = fits.open(path, memmap=False)
    except OSError as exc:
        raise DataFormatError(
            f"not a readable FITS file ({exc})", path=path, fix="photospline tables are FITS files"
        ) from None
    with hdul:
        prim = hdul[0]
        if prim.data is None or prim.data.ndim < 1:
            raise DataFormatError(
                "primary HDU holds no coefficient image",
                path=path,
                field="PRIMARY",
                fix="the coefficients are the primary image of a photospline file",
            )
        coeff = np.asarray(prim.data, dtype=np.float32).astype(np.float64)
        ndim = coeff.ndim
        hdr = prim.header
        if "ORDER" in hdr:
            order = (int(hdr["ORDER"]),) * ndim
        else:
            missing = [f"ORDER{i}" for i in range(ndim) if f"ORDER{i}" not in hdr]
            if missing:
                raise DataFormatError(
                    "spline order keyword missing",
                    path=path,
                    field=missing[0],
                    fix="photospline writes ORDER or ORDER0..ORDERn",
                )
            order = tuple(int(hdr[f"ORDER{i}"]) for i in range(ndim))
        names = [h.name for h in hdul]
        knots = []
        for i in range(ndim):
            name = f"KNOTS{i}"
            if name not in names:
                raise DataFormatError(
                    "knot extension missing",
                    path=path,
                    field=name,
                    fix="photospline stores knots in extensions KNOTS0..KNOTSn",
                )
            t = np.asarray(hdul[name].data, dtype=np.float64).ravel()
            if t.shape[0] != coeff.shape[i] + order[i] + 1:
                raise DataFormatError(
                    f"{t.shape[0]} knots for {coeff.shape[i]} coefficients of degree {order[i]} "
                    f"(expected {coeff.shape[i] + order[i] + 1})",
                    path=path,
                    field=name,
                    fix="the table is inconsistent; re-export it with photospline",
                )
            if np.any(np.diff(t) < 0):
                raise DataFormatError(
                    "knots are not sorted", path=path, field=name, fix="knot vectors must be non-decreasing"
                )
            knots.append(t)
        if "EXTENTS" in names:
            ext = np.asarray(hdul["EXTENTS"].data, dtype=np.float64).ravel()
            if ext.shape[0] != 2 * ndim:
                raise DataFormatError(
                    f"{ext.shape[0]} extent values for {ndim} dimensions",
                    path=path,
                    field="EXTENTS",
                    fix="EXTENTS holds (low, high) per dimension",
                )
            extents = tuple((float(ext[2 * i]), float(ext[2 * i + 1])) for i in range(ndim))
        else:
            extents = tuple((float(knots[i][order[i]]), float(knots[i][coeff.shape[i]])) for i in range(ndim))
    return SplineTable(jnp.asarray(coeff), tuple(jnp.asarray(t) for t in knots), order, extents, str(path))


def _padded_knots(t, k: int, xp=jnp):
    """Knots extended by ``k + 1`` extrapolated points on each side (finite, distinct spacing)."""
    if k == 0:
        return t
    lo_step = xp.maximum(t[1] - t[0], 1.0)
    hi_step = xp.maximum(t[-1] - t[-2], 1.0)
    steps = xp.arange(1, k + 2, dtype=t.dtype)
    return xp.concatenate([t[0] - steps[::-1] * lo_step, t, t[-1] + steps * hi_step])


def basis_window(t, k: int, x, xp=jnp):
    """Non-zero B-splines of degree ``k`` at ``x`` (de Boor's recursion).

    Parameters
    ----------
    t
        Knot vector (length ``m``).
    k
        Degree.
    x
        Points, any shape.
    xp
        Array namespace: :mod:`jax.numpy` (default, differentiable) or :mod:`numpy`.

    Returns
    -------
    left : array of int
        Knot interval ``l`` with ``t[l] <= x < t[l+1]`` (clipped to ``[0, m-2]``).
    values : array
        Shape ``x.shape + (k + 1,)``: :math:`B_{l-k+i}(x)`, ``i = 0..k``; basis
        functions whose index lies outside ``0..n-1`` are set to 0.
    inside : array of bool
        ``t[0] < x <= t[-1]`` (photospline's table-support test).
    """
    m = t.shape[0]
    n = m - k - 1
    left = xp.clip(xp.searchsorted(t, x, side="right") - 1, 0, m - 2)
    tp = _padded_knots(t, k, xp)
    off = k + 1 if k > 0 else 0
    biatx = [xp.ones_like(x)]
    for j in range(k):
        tr = [tp[left + off + i + 1] for i in range(j + 1)]
        tl = [tp[left + off - i] for i in range(j + 1)]
        saved = xp.zeros_like(x)
        new = []
        for i in range(j + 1):
            delta_r = tr[i] - x
            delta_l = x - tl[j - i]
            term = biatx[i] / (delta_r + delta_l)
            new.append(saved + delta_r * term)
            saved = delta_l * term
        new.append(saved)
        biatx = new
    values = xp.stack(biatx, axis=-1)
    idx = left[..., None] - k + xp.arange(k + 1)
    values = xp.where((idx >= 0) & (idx < n), values, 0.0)
    inside = (x > t[0]) & (x <= t[-1])
    return left, values, inside


def evaluate(table: SplineTable, x: jax.Array) -> jax.Array:
    """Evaluate the spline surface at points ``x`` (shape ``(..., D)``), photospline semantics.

    Differentiable in ``x`` with JAX (``jax.grad`` / ``jax.jacfwd``).
    """
    x = jnp.asarray(x, dtype=jnp.float64)
    d = table.ndim
    if x.shape[-1] != d:
        raise ValueError(f"points have {x.shape[-1]} coordinates, the table has {d} dimensions")
    lead = x.shape[:-1]
    xf = x.reshape(-1, d)
    coeff = table.coefficients
    pads = [(k, k) for k in table.order]
    cpad = jnp.pad(coeff, pads)
    result = None
    inside_all = jnp.ones(xf.shape[0], dtype=bool)
    lefts, vals = [], []
    for i in range(d):
        left, v, inside = basis_window(table.knots[i], table.order[i], xf[:, i])
        lefts.append(left)
        vals.append(v)
        inside_all &= inside
    # gather the (k+1)^D coefficient block of each point; padded index of B_{l-k+i} is l + i
    grids = jnp.meshgrid(*[jnp.arange(k + 1) for k in table.order], indexing="ij")
    idx = tuple(lefts[i][:, None] + grids[i].ravel()[None, :] for i in range(d))
    block = cpad[idx]  # (N, prod(k+1))
    w = vals[0]
    for i in range(1, d):
        w = (w[:, :, None] * vals[i][:, None, :]).reshape(w.shape[0], -1)
    result = jnp.sum(block * w, axis=1)
    result = jnp.where(inside_all, result, 0.0)
    return result.reshape(lead)


def in_extents(table: SplineTable, x: np.ndarray, extents: np.ndarray | None = None) -> np.ndarray:
    """Whether points ``x`` (shape ``(N, D)``) lie inside the table's extents (inclusive)."""
    ext = np.asarray(table.extents if extents is None else extents, dtype=float)
    x = np.asarray(x, dtype=float)
    return np.all((x >= ext[:, 0]) & (x <= ext[:, 1]), axis=1)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class ContractedSpline:
    """A spline with all dimensions but the last summed out per event (a JAX pytree).

    Attributes
    ----------
    rows
        ``(n + 2k, N)``: row ``j`` holds, for every event, the coefficient of basis
        function ``j - k`` of the last dimension (``k`` zero rows on both sides), so that
        :func:`evaluate_contracted` gives :math:`f(x_e, s)` for all events at once.
        Extra axes between the two, ``(n + 2k, ..., N)``, stack several tables with the
        same last-dimension knots; the result then has shape ``(..., N)``.
    knots
        Knot vector of the last dimension.
    order
        Degree of the last dimension (static).
    """

    rows: jax.Array
    knots: jax.Array
    order: int = field(metadata=dict(static=True))


def contract(table: SplineTable, x_fixed: np.ndarray) -> ContractedSpline:
    """Sum out dimensions ``0..D-2`` at per-event coordinates ``x_fixed`` (shape ``(N, D-1)``).

    Runs once per analysis set-up, in numpy (the contraction is linear in the
    coefficients, so the result is exact). Events outside the table support in a fixed
    dimension get all-zero rows (their spline value is 0, as photospline returns).
    """
    x_fixed = np.asarray(x_fixed, dtype=np.float64)
    d = table.ndim
    if x_fixed.ndim != 2 or x_fixed.shape[1] != d - 1:
        raise ValueError(f"need {d - 1} fixed coordinates per event, got shape {x_fixed.shape}")
    k_last = table.order[-1]
    coeff = np.asarray(table.coefficients)
    cpad = np.pad(coeff, [(k, k) for k in table.order[:-1]] + [(k_last, k_last)])
    knots = [np.asarray(t) for t in table.knots]
    lefts, vals = [], []
    inside_all = np.ones(x_fixed.shape[0], dtype=bool)
    for i in range(d - 1):
        left, v, inside = basis_window(knots[i], table.order[i], x_fixed[:, i], xp=np)
        lefts.append(left)
        vals.append(v)
        inside_all &= inside
    grids = np.meshgrid(*[np.arange(k + 1) for k in table.order[:-1]], indexing="ij")
    idx = tuple(lefts[i][:, None] + grids[i].ravel()[None, :] for i in range(d - 1))
    block = cpad[idx]  # (N, prod(k+1), n_last + 2k)
    w = vals[0]
    for i in range(1, d - 1):
        w = (w[:, :, None] * vals[i][:, None, :]).reshape(w.shape[0], -1)
    rows = np.einsum("nb,nbj->jn", w, block)
    rows[:, ~inside_all] = 0.0
    return ContractedSpline(jnp.asarray(rows), jnp.asarray(knots[-1]), k_last)


def evaluate_contracted(spline: ContractedSpline, s: jax.Array) -> jax.Array:
    r"""Values :math:`f(x_e, s)` for all events at one scalar coordinate ``s`` of the last dimension.

    Costs ``N * (k + 1)`` multiply-adds over ``k + 1`` dynamically indexed rows of
    ``rows``. Differentiable in ``s`` (and in ``rows``): the derivative
    :math:`\partial f / \partial s` is formed in the same pass over the rows as the value
    (a custom JVP), so a gradient reads the ``k + 1`` rows once, not twice. The sums are
    written element-wise (not as a matrix product) so that XLA fuses them with the
    caller's other per-event arithmetic.
    """
    return _evaluate_rows(spline.rows, spline.knots, jnp.asarray(s, dtype=jnp.float64), spline.order)


def _window_sum(rows: jax.Array, left: jax.Array, coeffs: jax.Array) -> jax.Array:
    """``sum_j coeffs[j, ...] * rows[left + j]`` over the ``len(coeffs)`` rows from ``left``.

    Trailing dimensions of ``coeffs`` give several sums from one read of the rows
    (result shape ``coeffs.shape[1:] + rows.shape[1:]``).
    """
    expand = (...,) + (None,) * (rows.ndim - 1)
    out = coeffs[0][expand] * jax.lax.dynamic_index_in_dim(rows, left, axis=0, keepdims=False)
    for j in range(1, coeffs.shape[0]):
        row = jax.lax.dynamic_index_in_dim(rows, left + j, axis=0, keepdims=False)
        out = out + coeffs[j][expand] * row
    return out


def _basis_at(knots: jax.Array, k: int, s: jax.Array) -> tuple[jax.Array, jax.Array]:
    left, v, inside = basis_window(knots, k, s)
    return left, jnp.where(inside, v, 0.0)


@partial(jax.custom_jvp, nondiff_argnums=(3,))
def _evaluate_rows(rows: jax.Array, knots: jax.Array, s: jax.Array, k: int) -> jax.Array:
    left, v = _basis_at(knots, k, s)
    return _window_sum(rows, left, v)


@partial(_evaluate_rows.defjvp, symbolic_zeros=True)
def _evaluate_rows_jvp(k: int, primals, tangents):
    rows, knots, s = primals
    d_rows, _, d_s = tangents
    # basis values, their d/ds and the window start from one evaluation (knots are data: no tangent)
    v, dv, left = jax.jvp(lambda x: _basis_at(knots, k, x)[::-1], (s,), (jnp.ones_like(s),), has_aux=True)
    # value and d/ds from one read of the k + 1 rows
    both = _window_sum(rows, left, jnp.stack([v, dv], axis=1))
    value, slope = both[0], both[1]
    tangent = jnp.zeros_like(value) if isinstance(d_s, SymbolicZero) else slope * d_s
    if not isinstance(d_rows, SymbolicZero):
        tangent = tangent + _window_sum(d_rows, left, v)
    return value, tangent
