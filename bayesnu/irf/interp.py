"""Interpolants evaluated in JAX: piecewise polynomials and uniform-grid cubic Hermite.

Response tables are built once with numpy/scipy (splines exactly as the reference
construction prescribes) and converted into these pytrees, so that the likelihood can
evaluate them inside ``jit``/``vmap``/``grad``:

* :class:`PiecewisePoly` holds the local power-basis coefficients of any scipy
  spline (``PPoly``, ``PchipInterpolator``, ``make_interp_spline``,
  ``InterpolatedUnivariateSpline``), possibly a stack of them sharing breakpoints.
* :func:`hermite_uniform` interpolates tabulated values on a uniform grid with
  cubic Hermite polynomials and centred-difference slopes (C1: values and first
  derivatives continuous), used along the spectral-index axis.
* :func:`parabola_nearest` is SkyLLH's scheme along the same axis (a parabola
  through the nearest grid point and its two neighbours; continuous neither in
  value nor in slope at the mid-points), kept for exact comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy import interpolate


def array_namespace(*xs: object):
    """``jax.numpy`` if any argument is a JAX array or tracer, else ``numpy``.

    Response tables are stored as numpy arrays and evaluated with numpy on the host
    (no per-shape compilation while building inputs) and with JAX inside ``jit``.
    """
    return jnp if any(isinstance(x, jax.Array) for x in xs) else np


@dataclass(frozen=True)
class PiecewisePoly:
    """Stack of piecewise cubic (or lower-order) polynomials on shared breakpoints.

    Attributes
    ----------
    breaks
        ``(n + 1,)`` increasing breakpoints.
    coeffs
        ``(..., n, 4)`` coefficients ``c`` such that on interval ``j`` the value is
        ``c0 + c1 t + c2 t^2 + c3 t^3`` with ``t = x - breaks[j]``.
    extrapolate
        ``"poly"`` (continue the end polynomials), ``"clamp"`` (constant beyond the
        ends, as FITPACK's bivariate evaluation does), or ``"nan"`` (NaN outside,
        as scipy's ``extrapolate=False``).
    """

    breaks: jax.Array
    coeffs: jax.Array
    extrapolate: str = "poly"

    @classmethod
    def from_scipy(cls, spline: interpolate.PPoly | interpolate.BSpline | object, extrapolate: str = "poly"):
        """Convert a scipy spline (PPoly, BSpline, PCHIP, UnivariateSpline) of order <= 3."""
        if isinstance(spline, interpolate.BSpline):
            return cls.from_bspline(spline, extrapolate)
        if isinstance(spline, interpolate.UnivariateSpline):
            pp = interpolate.PPoly.from_spline(spline._eval_args)
        elif isinstance(spline, interpolate.PPoly):
            pp = spline
        else:
            raise TypeError(f"cannot convert {type(spline).__name__} to PiecewisePoly")
        return cls.from_ppoly_arrays(pp.x, pp.c, extrapolate)

    @classmethod
    def from_bspline(cls, spline: interpolate.BSpline, extrapolate: str = "poly") -> PiecewisePoly:
        """Convert a (possibly vector-valued, ``axis=0``) scipy BSpline of degree <= 3.

        The local coefficients are the scaled derivatives at each interval's left end.
        """
        k = spline.k
        if k > 3:
            raise ValueError("only splines up to cubic are supported")
        t = spline.t
        breaks = np.unique(t[k : len(t) - k])
        left = breaks[:-1]
        c = np.stack([spline(left, nu=m) / math.factorial(m) for m in range(k, -1, -1)])  # (k+1, n, ...)
        return cls.from_ppoly_arrays(breaks, c, extrapolate)

    @classmethod
    def from_ppoly_arrays(cls, x: np.ndarray, c: np.ndarray, extrapolate: str = "poly") -> PiecewisePoly:
        """Build from scipy PPoly arrays ``x`` (breaks) and ``c`` ``(k+1, n, ...)`` (highest order first)."""
        x = np.asarray(x, dtype=float)
        c = np.asarray(c, dtype=float)
        k1 = c.shape[0]
        if k1 > 4:
            raise ValueError("only polynomials up to cubic are supported")
        # Drop zero-length intervals (repeated knots of B-splines).
        keep = np.diff(x) > 0
        xb = np.concatenate([x[:-1][keep], x[-1:]])
        c = c[:, keep]
        # scipy: highest order first -> ours: lowest first, padded to 4, interval axis before last.
        low_first = c[::-1]
        pad = np.zeros((4 - k1, *low_first.shape[1:]))
        full = np.concatenate([low_first, pad], axis=0)  # (4, n, ...)
        full = np.moveaxis(full, 0, -1)  # (n, ..., 4)
        full = np.moveaxis(full, 0, -2) if full.ndim > 2 else full  # (..., n, 4)
        return cls(xb, full, extrapolate)

    @property
    def x_min(self) -> float:
        """First breakpoint."""
        return float(self.breaks[0])

    @property
    def x_max(self) -> float:
        """Last breakpoint."""
        return float(self.breaks[-1])

    def interval(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Interval index and local coordinate ``t`` for each ``x`` (after clamping if requested)."""
        xp = array_namespace(x, self.breaks)
        xb = xp.asarray(self.breaks)
        xx = xp.clip(x, xb[0], xb[-1]) if self.extrapolate == "clamp" else x
        j = xp.clip(xp.searchsorted(xb, xx, side="right") - 1, 0, xb.shape[0] - 2)
        return j, xx - xb[j]

    def __call__(self, x: jax.Array, index: jax.Array | None = None) -> jax.Array:
        """Evaluate at ``x``.

        Parameters
        ----------
        x
            Points, any shape.
        index
            For a stack of polynomials (``coeffs`` of shape ``(m, n, 4)``), which
            member to evaluate for each point (same shape as ``x``). Without it, all
            stacked members are evaluated at every point (shape ``(..., *x.shape)``).
        """
        xp = array_namespace(x, self.breaks, self.coeffs, index)
        x = xp.asarray(x, dtype=float)
        j, t = self.interval(x)
        coeffs = xp.asarray(self.coeffs)
        if index is None:
            c = coeffs[..., j, :]  # (..., *x.shape, 4)
        else:
            c = coeffs[index, j, :]
        val = ((c[..., 3] * t + c[..., 2]) * t + c[..., 1]) * t + c[..., 0]
        if self.extrapolate == "nan":
            val = xp.where((x < self.breaks[0]) | (x > self.breaks[-1]), xp.nan, val)
        return val


jax.tree_util.register_dataclass(PiecewisePoly, data_fields=["breaks", "coeffs"], meta_fields=["extrapolate"])


def hermite_uniform(values: jax.Array, x0: float, dx: float, x: jax.Array) -> jax.Array:
    """C1 cubic Hermite interpolation of tabulated values on a uniform grid.

    Parameters
    ----------
    values
        ``(..., K)`` table on the grid ``x0 + dx * k``.
    x0, dx
        Grid origin and spacing.
    x
        Point(s) to evaluate at; a scalar or an array broadcastable against
        ``values.shape[:-1]``. Points outside the grid use the end polynomials.

    Returns
    -------
    jax.Array
        Interpolated values, shape ``broadcast(values.shape[:-1], x.shape)``.
    """
    return hermite_uniform_d2(values, x0, dx, x)[0]


def hermite_uniform_d2(
    values: jax.Array, x0: float, dx: float, x: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """:func:`hermite_uniform` with its first and second derivatives in ``x`` (one pass)."""
    values = jnp.asarray(values)
    k_max = values.shape[-1] - 1
    u = (jnp.asarray(x, dtype=float) - x0) / dx
    k = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, k_max - 1)
    t = u - k
    shape = jnp.broadcast_shapes(values.shape[:-1], jnp.shape(u))
    kb = jnp.broadcast_to(k, shape)
    vb = jnp.broadcast_to(values, (*shape, values.shape[-1]))

    def take(idx: jax.Array) -> jax.Array:
        return jnp.take_along_axis(vb, jnp.clip(idx, 0, k_max)[..., None], axis=-1)[..., 0]

    # Only the four nodes around each point: slopes are centred differences, one-sided at the ends.
    ym, y0, y1, y2 = take(kb - 1), take(kb), take(kb + 1), take(kb + 2)
    m0 = jnp.where(kb > 0, 0.5 * (y1 - ym), y1 - y0)
    m1 = jnp.where(kb + 1 < k_max, 0.5 * (y2 - y0), y1 - y0)
    t2, t3 = t * t, t * t * t
    v = (2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * m0 + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * m1
    d1 = ((6 * t2 - 6 * t) * (y0 - y1) + (3 * t2 - 4 * t + 1) * m0 + (3 * t2 - 2 * t) * m1) / dx
    d2 = ((12 * t - 6) * (y0 - y1) + (6 * t - 4) * m0 + (6 * t - 2) * m1) / (dx * dx)
    return v, d1, d2


def hermite_weights(n: int, x0: float, dx: float, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Weights ``w`` such that ``table @ w`` is :func:`hermite_uniform` of every row at one ``x``.

    For a scalar ``x`` shared by all rows the interpolation (and its first and second
    derivatives) is a fixed linear combination of the table's columns: three dense
    matrix-vector products replace per-row gathers.

    Returns
    -------
    tuple of jax.Array
        ``(w, w1, w2)``, each of shape ``(n,)``, for the value and the first and second
        derivatives in ``x``.
    """
    k_max = n - 1
    u = (jnp.asarray(x, dtype=float) - x0) / dx
    k = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, k_max - 1)
    t = u - k
    t2, t3 = t * t, t * t * t
    # Basis functions and their derivatives (per unit of t).
    h = jnp.stack([2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t, -2 * t3 + 3 * t2, t3 - t2])
    h1 = jnp.stack([6 * t2 - 6 * t, 3 * t2 - 4 * t + 1, -6 * t2 + 6 * t, 3 * t2 - 2 * t]) / dx
    h2 = jnp.stack([12 * t - 6, 6 * t - 4, -12 * t + 6, 6 * t - 2]) / (dx * dx)
    left = k == 0
    right = k + 1 == k_max

    def weights(b: jax.Array) -> jax.Array:
        h00, h10, h01, h11 = b
        # m0 = (y1 - y_{k-1})/2, or y1 - y0 at the left end;
        # m1 = (y2 - y0)/2, or y1 - y0 at the right end.
        c_m = jnp.where(left, 0.0, -0.5 * h10)
        c_0 = h00 + jnp.where(left, -h10, 0.0) + jnp.where(right, -h11, -0.5 * h11)
        c_1 = h01 + jnp.where(left, h10, 0.5 * h10) + jnp.where(right, h11, 0.0)
        c_2 = jnp.where(right, 0.0, 0.5 * h11)
        idx = jnp.stack([k - 1, k, k + 1, k + 2])
        vals = jnp.stack([c_m, c_0, c_1, c_2])
        return jnp.zeros(n).at[jnp.clip(idx, 0, k_max)].add(vals)

    return weights(h), weights(h1), weights(h2)


def parabola_nearest(values: jax.Array, x0: float, dx: float, x: jax.Array) -> jax.Array:
    """SkyLLH's grid interpolation: parabola through the nearest grid point and its neighbours.

    With ``x1`` the grid point nearest to ``x`` and ``M0, M1, M2`` the table values
    at ``x1 - dx, x1, x1 + dx``: ``M(x) = a (x - x1)^2 + b (x - x1) + M1`` with
    ``a = (M0 - 2 M1 + M2) / (2 dx^2)`` and ``b = (M2 - M0) / (2 dx)``.
    The nearest point is kept one node away from the table ends.
    """
    values = jnp.asarray(values)
    k_max = values.shape[-1] - 1
    x = jnp.asarray(x, dtype=float)
    # Nearest node as SkyLLH rounds it: exact mid-points go to the lower node.
    grid = x0 + dx * np.arange(k_max + 1)
    k = jnp.searchsorted(jnp.asarray(0.5 * (grid[1:] + grid[:-1])), x, side="left")
    k = jnp.clip(k, 1, k_max - 1)
    u = (x - x0) / dx
    shape = jnp.broadcast_shapes(values.shape[:-1], jnp.shape(u))

    def take(idx: jax.Array) -> jax.Array:
        a = jnp.broadcast_to(values, (*shape, values.shape[-1]))
        return jnp.take_along_axis(a, jnp.broadcast_to(idx, shape)[..., None], axis=-1)[..., 0]

    m0, m1, m2 = take(k - 1), take(k), take(k + 1)
    d = (u - k) * dx
    a = 0.5 * (m0 - 2.0 * m1 + m2) / dx**2
    b = 0.5 * (m2 - m0) / dx
    return a * d * d + b * d + m1
