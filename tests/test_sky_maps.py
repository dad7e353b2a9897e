"""HEALPix sky maps: FITS I/O (flat, partial, multi-order), priors, prior TS term, credible regions."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from bayesnu.errors import ConfigError, DataFormatError
from bayesnu.sky.maps import (
    SkyMap,
    contains,
    credible_area_deg2,
    credible_levels,
    credible_region_mask,
    pixel_radec_deg,
    pixels_in_dec_range,
    prior_from_array,
    prior_gaussian,
    prior_ts_term,
    prior_vmf,
    ts_with_prior,
    uniq_to_order_ipix,
)


def _random_prior(nside: int = 8, seed: int = 0) -> SkyMap:
    rng = np.random.default_rng(seed)
    return prior_from_array(rng.uniform(0.0, 1.0, hp.nside2npix(nside)))


# --------------------------------------------------------------------------------------------
# SkyMap basics
# --------------------------------------------------------------------------------------------


def test_skymap_geometry_and_validation():
    m = _random_prior(16)
    assert m.nside == 16 and m.npix == 3072
    assert m.pixel_area_sr == pytest.approx(4 * np.pi / 3072)
    assert m.pixel_area_deg2 * m.npix == pytest.approx(41252.96, rel=1e-6)
    assert not m.values.flags.writeable
    with pytest.raises(ConfigError, match=r"12 \* nside"):
        SkyMap(np.ones(100))
    with pytest.raises(ConfigError, match="non-finite"):
        SkyMap(np.full(12, np.nan))
    with pytest.raises(ConfigError, match="negative"):
        SkyMap(-np.ones(12), kind="probability")
    with pytest.raises(ConfigError, match="negative"):
        prior_from_array(np.r_[-1.0, np.ones(47)])
    with pytest.raises(ConfigError, match="kind"):
        SkyMap(np.ones(12), kind="tsmap")
    assert SkyMap(-np.ones(12), kind="value").values.min() == -1.0  # value maps may be negative


def test_conversions_normalise_floor_smooth():
    p = _random_prior(16)
    assert p.values.sum() == pytest.approx(1.0, abs=1e-14)
    d = p.to_density()
    assert d.kind == "density"
    assert d.values.sum() * d.pixel_area_sr == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(d.to_probability().values, p.values, rtol=1e-14)
    d2 = SkyMap(d.values * 7.0, kind="density").normalised()
    assert d2.values.sum() * d2.pixel_area_sr == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ConfigError):
        SkyMap(np.ones(12), kind="value").normalised()
    with pytest.raises(ConfigError):
        SkyMap(np.ones(12), kind="value").to_probability()

    g = prior_gaussian(0.0, 0.0, 2.0, 32)
    assert (g.values == 0).any()
    f = g.floored(1e-8)
    assert f.values.min() > 0 and f.values.sum() == pytest.approx(1.0, abs=1e-12)

    s = g.smoothed(5.0)
    assert s.values.min() >= 0.0
    assert s.values.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.argmax(s.values) == np.argmax(g.values)
    # smoothing widens: 2 deg (+) 5 deg -> sqrt(29) deg
    assert credible_area_deg2(s, 0.9) > 4 * credible_area_deg2(g, 0.9)


def test_ud_grade_preserves_probability():
    p = _random_prior(32, seed=3)
    for nside in (4, 16, 64, 128):
        q = p.ud_grade(nside)
        assert q.nside == nside and q.kind == "probability"
        assert q.values.sum() == pytest.approx(1.0, abs=1e-12)
    # density maps keep their integral (plain averaging / repetition)
    d = p.to_density()
    for nside in (8, 64):
        dd = d.ud_grade(nside)
        assert dd.values.sum() * dd.pixel_area_sr == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ConfigError):
        p.ud_grade(3)


def test_pixel_geometry():
    ra, dec = pixel_radec_deg(8)
    assert ra.shape == dec.shape == (768,)
    assert ra.min() >= 0 and ra.max() < 360 and -90 < dec.min() < dec.max() < 90
    pix = pixels_in_dec_range(8, -10.0, 30.0)
    assert np.all((dec[pix] >= -10) & (dec[pix] <= 30))
    outside = np.setdiff1d(np.arange(768), pix)
    assert np.all((dec[outside] < -10) | (dec[outside] > 30))
    assert pixels_in_dec_range(8, -90, 90).size == 768
    with pytest.raises(ConfigError):
        pixels_in_dec_range(8, 30, -10)


# --------------------------------------------------------------------------------------------
# FITS I/O
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nest", [False, True])
@pytest.mark.parametrize("kind", ["probability", "density", "value"])
def test_write_read_round_trip_exact(tmp_path, nest, kind):
    rng = np.random.default_rng(7)
    v = rng.uniform(0.0, 1.0, hp.nside2npix(16))
    if kind == "value":
        v = v - 0.5
    m = SkyMap(v, kind=kind)
    path = m.write(tmp_path / "map.fits", nest=nest)
    back = SkyMap.read(path)  # kind from the BNU_KIND keyword
    assert back.kind == kind
    np.testing.assert_array_equal(back.values, m.values)
    with fits.open(path) as h:
        hdr = h[1].header
        assert hdr["ORDERING"] == ("NESTED" if nest else "RING")
        assert hdr["NSIDE"] == 16 and hdr["COORDSYS"] == "C" and hdr["INDXSCHM"] == "IMPLICIT"
    # healpy reads it (and converts NESTED to RING itself)
    np.testing.assert_array_equal(hp.read_map(path, nest=False), m.values)
    # no silent overwrite; no temporary files left beside it
    with pytest.raises(ConfigError, match="overwrite"):
        m.write(path)
    m.write(path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.fits"]


def test_read_healpy_nested_map_and_resample(tmp_path):
    rng = np.random.default_rng(11)
    ring = rng.uniform(0.1, 1.0, hp.nside2npix(8))
    ring /= ring.sum()
    path = tmp_path / "nested.fits"
    hp.write_map(path, hp.reorder(ring, r2n=True), nest=True, dtype=np.float64, column_names=["PROB"])
    m = SkyMap.read(path)
    assert m.meta["ordering"] == "NESTED" and m.meta["column"] == "PROB"
    np.testing.assert_array_equal(m.values, ring)
    up = SkyMap.read(path, nside=32)
    assert up.nside == 32 and up.values.sum() == pytest.approx(1.0, abs=1e-12)
    # per-pixel probability read as a density is divided by the pixel area
    dens = SkyMap.read(path, kind="density")
    np.testing.assert_allclose(dens.values * dens.pixel_area_sr, ring, rtol=1e-14)


def test_read_explicit_partial_sky_map(tmp_path):
    nside = 16
    npix = hp.nside2npix(nside)
    full = np.full(npix, hp.UNSEEN)
    rng = np.random.default_rng(2)
    seen = np.sort(rng.choice(npix, 200, replace=False))
    full[seen] = rng.uniform(0.5, 1.0, seen.size)
    path = tmp_path / "partial.fits"
    hp.write_map(path, full, partial=True, dtype=np.float64)
    m = SkyMap.read(path, kind="value")
    assert m.meta["indxschm"] == "EXPLICIT"
    expect = np.zeros(npix)
    expect[seen] = full[seen]
    np.testing.assert_array_equal(m.values, expect)


def _refine(cells: list[tuple[int, int]], cell: tuple[int, int]) -> list[tuple[int, int]]:
    cells.remove(cell)
    order, ipix = cell
    children = [(order + 1, 4 * ipix + k) for k in range(4)]
    return cells + children


def _moc_cells(max_order: int) -> list[tuple[int, int]]:
    """A valid multi-order tiling of the sphere: all order-1 pixels, one branch refined to max_order."""
    cells = [(1, i) for i in range(48)]
    cell = (1, 5)
    for _ in range(max_order - 1):
        cells = _refine(cells, cell)
        cell = (cell[0] + 1, 4 * cell[1] + 1)
    # a second, shallower refinement elsewhere
    return _refine(cells, (1, 30))


def _write_moc(path, cells, seed=0):
    rng = np.random.default_rng(seed)
    order = np.array([c[0] for c in cells], dtype=np.int64)
    ipix = np.array([c[1] for c in cells], dtype=np.int64)
    area = 4 * np.pi / (12 * 4.0**order)
    dens = rng.uniform(0.1, 1.0, order.size)
    dens[order == order.max()] *= 50.0  # put a lot of mass in the finest cells
    dens /= np.sum(dens * area)
    perm = rng.permutation(order.size)  # row order must not matter
    uniq = 4 * 4**order + ipix
    cols = [
        fits.Column(name="UNIQ", format="K", array=uniq[perm]),
        fits.Column(name="PROBDENSITY", format="D", unit="sr-1", array=dens[perm]),
        fits.Column(name="DISTMU", format="D", unit="Mpc", array=np.full(order.size, 100.0)),
    ]
    table = fits.BinTableHDU.from_columns(cols)
    table.header["PIXTYPE"] = "HEALPIX"
    table.header["ORDERING"] = "NUNIQ"
    table.header["COORDSYS"] = "C"
    table.header["MOC"] = True
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return order, ipix, dens * area


@pytest.mark.parametrize("nside", [None, 16, 32])
def test_read_multi_order_map(tmp_path, nside):
    path = tmp_path / "gw_moc.fits"
    order, ipix, prob = _write_moc(path, _moc_cells(max_order=5))
    m = SkyMap.read(path, nside=nside)
    target = 32 if nside is None else nside  # default: the finest order present (5 -> nside 32)
    assert m.nside == target and m.kind == "probability"
    assert m.meta["ordering"] == "NUNIQ" and m.meta["column"] == "PROBDENSITY"
    assert m.values.sum() == pytest.approx(1.0, abs=1e-12)
    # the mass is where it was: sum the flattened map over each MOC cell (or over the parent of
    # cells finer than the target)
    nested = hp.reorder(m.values, r2n=True)
    t_order = int(np.log2(target))
    per_target_parent: dict[int, float] = {}
    for o, i, p in zip(order, ipix, prob, strict=True):
        if o <= t_order:
            n = 4 ** (t_order - o)
            assert nested[i * n : (i + 1) * n].sum() == pytest.approx(p, rel=1e-12, abs=1e-15)
        else:
            parent = int(i) >> (2 * (int(o) - t_order))
            per_target_parent[parent] = per_target_parent.get(parent, 0.0) + p
    for parent, p in per_target_parent.items():
        assert nested[parent] == pytest.approx(p, rel=1e-12)
    # the densest pixel is in the finest cell
    finest = ipix[np.argmax(np.where(order == order.max(), prob, -1))]
    ra_true, dec_true = hp.pix2ang(2 ** int(order.max()), int(finest), nest=True, lonlat=True)
    ra_m, dec_m = hp.pix2ang(target, int(np.argmax(m.values)), lonlat=True)
    assert hp.rotator.angdist([ra_true, dec_true], [ra_m, dec_m], lonlat=True)[0] < np.radians(8.0)
    # as a density it integrates to 1
    d = SkyMap.read(path, nside=nside, kind="density")
    assert d.values.sum() * d.pixel_area_sr == pytest.approx(1.0, abs=1e-12)
    # another column by name, flattened as a plain value
    mu = SkyMap.read(path, field="DISTMU", kind="value", nside=nside)
    np.testing.assert_allclose(mu.values, 100.0)


def test_multi_order_default_resolution_is_capped(tmp_path):
    path = tmp_path / "deep_moc.fits"
    _write_moc(path, _moc_cells(max_order=9))
    m = SkyMap.read(path)
    assert m.nside == 256 and m.meta["moc_max_order"] == 9
    assert m.values.sum() == pytest.approx(1.0, abs=1e-12)
    assert SkyMap.read(path, nside=512).nside == 512


def test_uniq_decoding_is_exact_at_order_boundaries():
    orders = np.arange(0, 30, dtype=np.int64)
    first = 4 * 4**orders
    last = 16 * 4**orders - 1  # ipix = 12 * 4**order - 1
    o1, i1 = uniq_to_order_ipix(first)
    o2, i2 = uniq_to_order_ipix(last)
    np.testing.assert_array_equal(o1, orders)
    np.testing.assert_array_equal(i1, 0)
    np.testing.assert_array_equal(o2, orders)
    np.testing.assert_array_equal(i2, 12 * 4**orders - 1)


def test_bad_files_raise_data_format_error(tmp_path):
    missing = tmp_path / "nope.fits"
    with pytest.raises(DataFormatError, match=r"nope\.fits"):
        SkyMap.read(missing)

    text = tmp_path / "notfits.fits"
    text.write_text("ra,dec\n1,2\n")
    with pytest.raises(DataFormatError, match=r"notfits\.fits") as exc:
        SkyMap.read(text)
    assert exc.value.fix

    def table(n, **hdr):
        t = fits.BinTableHDU.from_columns([fits.Column(name="PROB", format="D", array=np.full(n, 1.0 / n))])
        for k, val in hdr.items():
            t.header[k] = val
        return t

    bad_npix = tmp_path / "badnpix.fits"
    table(100, ORDERING="RING").writeto(bad_npix)
    with pytest.raises(DataFormatError, match=r"badnpix\.fits.*PROB.*not a HEALPix pixel count"):
        SkyMap.read(bad_npix)

    bad_order = tmp_path / "badorder.fits"
    table(192, ORDERING="ZORDER").writeto(bad_order)
    with pytest.raises(DataFormatError, match=r"badorder\.fits.*ordering"):
        SkyMap.read(bad_order)

    wrong_nside = tmp_path / "wrongnside.fits"
    table(192, ORDERING="RING", NSIDE=8).writeto(wrong_nside)
    with pytest.raises(DataFormatError, match="NSIDE"):
        SkyMap.read(wrong_nside)

    negative = tmp_path / "negative.fits"
    t = table(192, ORDERING="RING")
    t.data["PROB"][3] = -0.5
    t.writeto(negative)
    with pytest.raises(DataFormatError, match=r"negative\.fits.*negative pixel"):
        SkyMap.read(negative)
    assert SkyMap.read(negative, kind="value").values[3] == -0.5

    with pytest.raises(DataFormatError, match="no column 'FOO'"):
        SkyMap.read(negative, field="FOO", kind="value")

    image_only = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(image_only)
    with pytest.raises(DataFormatError, match=r"image\.fits.*binary-table"):
        SkyMap.read(image_only)


# --------------------------------------------------------------------------------------------
# priors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("builder", [prior_gaussian, prior_vmf])
def test_gaussian_and_vmf_priors(builder):
    ra0, dec0, sigma = 123.4, -37.0, 3.0
    p = builder(ra0, dec0, sigma, 128)
    assert p.kind == "probability" and p.nside == 128
    assert p.values.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.argmax(p.values) == hp.ang2pix(128, ra0, dec0, lonlat=True)
    # 90% region of a 2D Gaussian: area = 2 pi sigma^2 ln 10
    analytic = 2 * np.pi * sigma**2 * np.log(10.0)
    assert credible_area_deg2(p, 0.9) == pytest.approx(analytic, rel=0.05)
    assert credible_area_deg2(p, 0.5) == pytest.approx(2 * np.pi * sigma**2 * np.log(2.0), rel=0.05)
    assert contains(p, ra0 + 0.5, dec0, 0.5)
    assert not contains(p, ra0 + 180.0, -dec0, 0.99)


def test_vmf_equals_gaussian_for_small_sigma():
    g = prior_gaussian(10.0, 50.0, 2.0, 64)
    v = prior_vmf(10.0, 50.0, 2.0, 64)
    assert np.abs(g.values - v.values).max() < 1e-3 * g.values.max()


def test_oversampling_helps_when_sigma_is_pixel_sized():
    ra0, dec0, sigma, nside = 40.0, 10.0, 1.0, 32  # pixel size ~1.8 deg
    truth = prior_gaussian(ra0, dec0, sigma, 1024).ud_grade(nside)
    coarse = prior_gaussian(ra0, dec0, sigma, nside)
    fine = prior_gaussian(ra0, dec0, sigma, nside, oversample=16)
    assert fine.values.sum() == pytest.approx(1.0, abs=1e-12)
    err_coarse = np.abs(coarse.values - truth.values).sum()
    err_fine = np.abs(fine.values - truth.values).sum()
    assert err_fine < 0.1 * err_coarse
    with pytest.raises(ConfigError):
        prior_gaussian(ra0, dec0, sigma, nside, oversample=3)
    with pytest.raises(ConfigError):
        prior_vmf(ra0, dec0, -1.0, nside)
    with pytest.raises(ConfigError):
        prior_gaussian(ra0, 95.0, 1.0, nside)


def test_tiny_sigma_never_gives_an_empty_prior():
    p = prior_vmf(10.0, 10.0, 1e-4, 8)
    assert p.values.max() == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# prior term of TS maps
# --------------------------------------------------------------------------------------------


def test_prior_ts_term():
    p = _random_prior(16, seed=5)
    term = prior_ts_term(p)
    imax = int(np.argmax(p.values))
    assert term[imax] == 0.0
    assert np.all(term <= 0.0)
    np.testing.assert_allclose(term, 2.0 * np.log(p.values / p.values.max()), rtol=1e-14)
    # independent of normalisation and of probability vs density
    np.testing.assert_allclose(prior_ts_term(p.to_density()), term, rtol=1e-12, atol=1e-12)

    v = np.array(p.values)
    v[:10] = 0.0
    z = SkyMap(v, kind="probability")
    tz = prior_ts_term(z)
    assert np.all(np.isneginf(tz[:10])) and np.all(np.isfinite(tz[10:]))
    tf = prior_ts_term(z, floor=1e-10)
    assert np.all(np.isfinite(tf))
    np.testing.assert_allclose(tf[:10], 2 * np.log(1e-10 / v.max()))
    with pytest.raises(ConfigError):
        prior_ts_term(SkyMap(np.ones(12), kind="value"))


def test_ts_with_prior():
    p = _random_prior(8, seed=9)
    rng = np.random.default_rng(1)
    ts = rng.exponential(2.0, p.npix)
    out = ts_with_prior(ts, p)
    np.testing.assert_allclose(out, ts + prior_ts_term(p))
    clipped = ts_with_prior(ts, p, clip_zero=True)
    assert clipped.min() >= 0 and np.array_equal(clipped, np.maximum(out, 0.0))
    with pytest.raises(ConfigError, match="ud_grade"):
        ts_with_prior(ts[:-1], p)


# --------------------------------------------------------------------------------------------
# credible regions
# --------------------------------------------------------------------------------------------


def test_credible_levels_monotonic_and_greedy():
    p = _random_prior(16, seed=4).values
    lv = credible_levels(p)
    order = np.argsort(-p)
    assert np.all(np.diff(lv[order]) >= 0)
    assert lv[order[0]] == pytest.approx(p.max())
    assert lv.max() == pytest.approx(1.0)
    mask = credible_region_mask(p, 0.9)
    # the smallest region holding at least 90%: without its least probable pixel it holds less
    assert p[mask].sum() >= 0.9 - 1e-12
    assert p[mask].sum() - p[mask].min() < 0.9
    assert p[mask].min() >= p[~mask].max()  # the region holds the most probable pixels
    # a map whose top pixel alone holds more than the level gives that pixel, not an empty region
    peaked = np.full(p.size, 0.01 / (p.size - 1))
    peaked[7] = 0.99
    assert np.flatnonzero(credible_region_mask(peaked, 0.5)).tolist() == [7]
    # unnormalised input is normalised first
    np.testing.assert_allclose(credible_levels(5.0 * p), lv, rtol=1e-12)
    # ties share one level
    flat = np.full(48, 1.0 / 48)
    assert np.all(credible_levels(flat) == pytest.approx(1.0))
    with pytest.raises(ConfigError):
        credible_area_deg2(p, 1.5)
    with pytest.raises(ConfigError):
        credible_levels(np.zeros(48))
