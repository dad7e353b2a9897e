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
