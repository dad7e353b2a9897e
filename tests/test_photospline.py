"""Photospline tables in JAX against photospline's own C++ evaluation and scipy."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy.io import fits
from scipy.interpolate import BSpline

from bayesnu.errors import DataFormatError
from bayesnu.irf.photospline import (
    ContractedSpline,
    SplineTable,
    basis_window,
    contract,
    evaluate,
    evaluate_contracted,
    read_photospline,
)

REF = json.loads((Path(__file__).parent / "data" / "photospline_reference.json").read_text())


@pytest.mark.parametrize("key", sorted(REF)[::4])
def test_matches_photospline_cpp(real_hese_dir, key):
    """Values from photospline 2.4.1 (C++, evaluate_simple) on the real tables, 12 points each.

    photospline accumulates in float32, bayesnu in float64: agreement to float32 rounding.
    """
    ref = REF[key]
    table = read_photospline(real_hese_dir / "splines" / key)
    x = jnp.asarray(ref["x"])
    v = np.asarray(evaluate(table, x))
    np.testing.assert_allclose(v, ref["value"], rtol=0, atol=5e-6)
    grad = np.asarray(jax.vmap(jax.grad(lambda p: evaluate(table, p[None])[0]))(x))[:, -1]
    np.testing.assert_allclose(grad, ref["d_last"], rtol=2e-4, atol=2e-4)
    c = contract(table, np.asarray(ref["x"])[:, :-1])
    vc = np.array([float(evaluate_contracted(c, s)[i]) for i, s in enumerate(np.asarray(ref["x"])[:, -1])])
    np.testing.assert_allclose(vc, v, rtol=0, atol=1e-12)


def test_tensor_product_equals_scipy(tmp_path):
    """A random 2D table inside the fully supported region equals scipy's tensor-product BSpline."""
    rng = np.random.default_rng(5)
    k0, k1 = 2, 1
    t0 = np.sort(np.concatenate([[0, 0.1], rng.uniform(0.2, 2.8, 9), [2.9, 3.0]]))
    t1 = np.linspace(-1, 1, 9)
    c = rng.normal(size=(len(t0) - k0 - 1, len(t1) - k1 - 1)).astype(np.float32)
    path = tmp_path / "t.fits"
    hdr = fits.Header({"TYPE": "Spline Coefficient Table", "ORDER0": k0, "ORDER1": k1})
    fits.HDUList(
        [fits.PrimaryHDU(c, header=hdr), fits.ImageHDU(t0, name="KNOTS0"), fits.ImageHDU(t1, name="KNOTS1")]
    ).writeto(path)
    table = read_photospline(path)
    x0 = rng.uniform(t0[k0], t0[-k0 - 1], 50)
    x1 = rng.uniform(t1[k1], t1[-k1 - 1], 50)
    ours = np.asarray(evaluate(table, jnp.stack([x0, x1], axis=1)))
    c64 = c.astype(float)
    ref = [
        sum(
            BSpline(t0, c64[:, j], k0)(a) * BSpline.basis_element(t1[j : j + k1 + 2])(b)
            for j in range(c.shape[1])
            if t1[j] <= b <= t1[j + k1 + 1]
        )
        for a, b in zip(x0, x1)
    ]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    # outside the knots photospline (and bayesnu) return 0
    assert float(evaluate(table, jnp.array([[-0.5, 0.0]]))[0]) == 0.0


def test_basis_partition_of_unity_inside():
    t = np.linspace(0, 1, 12)
    x = np.linspace(t[2], t[-3], 40, endpoint=False)
    _, v, inside = basis_window(jnp.asarray(t), 2, jnp.asarray(x))
    assert np.all(np.asarray(inside))
    np.testing.assert_allclose(np.asarray(v).sum(axis=1), 1.0, atol=1e-13)


def test_reader_errors(tmp_path):
    p = tmp_path / "x.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(np.zeros((4, 3), np.float32), header=fits.Header({"ORDER": 1})),
            fits.ImageHDU(np.linspace(0, 1, 6), name="KNOTS0"),
        ]
    ).writeto(p)
    with pytest.raises(DataFormatError, match="KNOTS1"):
        read_photospline(p)
    q = tmp_path / "y.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(np.zeros((4,), np.float32), header=fits.Header({"ORDER": 1})),
            fits.ImageHDU(np.linspace(0, 1, 9), name="KNOTS0"),
        ]
    ).writeto(q)
    with pytest.raises(DataFormatError, match="expected 6"):
        read_photospline(q)


def _full_values(table, xe: np.ndarray, s):
    """Full tensor-product evaluation at (xe[i], s) for every event i."""
    pts = jnp.concatenate([jnp.asarray(xe), jnp.full((xe.shape[0], 1), s)], axis=1)
    return evaluate(table, pts)


def _contracted_rows(c, rows):
    return ContractedSpline(rows, c.knots, c.order)


@pytest.mark.parametrize("s", [0.93, 1.01, 1.17])
def test_contracted_derivatives_equal_the_full_table(s):
    """The contracted evaluation's custom JVP (value and slope from one read of the rows)
    gives the same first and second derivatives in the last coordinate as autodiff
    through the full tensor-product evaluation, also for stacked tables, and is linear
    in the rows."""
    rng = np.random.default_rng(11)
    k0, k1 = 2, 2
    t0 = np.linspace(0.0, 3.0, 10)
    t1 = np.sort(np.concatenate([[0.8, 0.85], rng.uniform(0.9, 1.2, 6), [1.25, 1.3]]))
    coeff = rng.normal(size=(len(t0) - k0 - 1, len(t1) - k1 - 1))
    table = SplineTable(
        jnp.asarray(coeff), (jnp.asarray(t0), jnp.asarray(t1)), (k0, k1), ((0.0, 3.0), (0.8, 1.3))
    )
    xe = rng.uniform(0.5, 2.5, (7, 1))
    c = contract(table, xe)
    d1 = jax.jacfwd(lambda u: _full_values(table, xe, u))(jnp.asarray(s))
    d2 = jax.hessian(lambda u: _full_values(table, xe, u).sum())(jnp.asarray(s))
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jax.jacfwd(lambda u: evaluate_contracted(c, u))(s), d1, **tol)
    np.testing.assert_allclose(jax.jacrev(lambda u: evaluate_contracted(c, u))(s), d1, **tol)
    np.testing.assert_allclose(
        jax.hessian(lambda u: evaluate_contracted(c, u).sum())(s), d2, rtol=1e-9, atol=1e-10
    )
    # two stacked copies (the second scaled by 2) give both results at once
    stacked = _contracted_rows(c, jnp.stack([c.rows, 2.0 * c.rows], axis=1))
    np.testing.assert_allclose(
        jax.jacrev(lambda u: evaluate_contracted(stacked, u))(s), np.stack([d1, 2 * d1]), **tol
    )
    # linear in the rows: d/d(rows) . rows == value
    val = evaluate_contracted(c, s)
    tangent = jax.jvp(lambda r: evaluate_contracted(_contracted_rows(c, r), s), (c.rows,), (c.rows,))[1]
    np.testing.assert_allclose(tangent, val, rtol=1e-12, atol=1e-14)
