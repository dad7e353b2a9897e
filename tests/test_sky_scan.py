"""All-sky scans: exactness against single-source fits, maps, files and bad input."""

from __future__ import annotations

from pathlib import Path

import healpy as hp
import jax
import numpy as np
import pytest

from bayesnu.errors import ConfigError, DataFormatError

SRC = (150.0, 20.0)


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bayesnu.data.simulate import SourceSpec, simulate_release

    out = tmp_path_factory.mktemp("scan_release")
    simulate_release(out, seasons=["IC40"], seed=5, n_events=15000, sources=[SourceSpec(*SRC, 3e-14, 2.0)])
    return out


@pytest.fixture(scope="module")
def models(sim_dir: Path):
    from bayesnu.analyses.ps_inputs import season_models
    from bayesnu.data.ps_release import load_ps_release

    return season_models(load_ps_release(sim_dir, seasons="IC40"))


@pytest.fixture(scope="module")
def scanner(models):
    from bayesnu.sky.scan import SkyScanner

    return SkyScanner(models)


def _single_fits(models, ra_deg, dec_deg, gamma_fixed):
    """Reference: the point-source fit on *all* events (no selection) at each position."""
    from functools import partial

    from bayesnu.analyses.ps_inputs import build_inputs
    from bayesnu.likelihood.ps_fit import fit_ns_gamma

    fit = jax.jit(partial(fit_ns_gamma, gamma_fixed=gamma_fixed))
    out = []
    for ra, dec in zip(ra_deg, dec_deg):
        inp = build_inputs(models, np.radians(ra), np.radians(dec), selection_deg=None, pad_to=16384)
        r = fit(inp)
        out.append((float(r.ts), float(r.ns), float(r.gamma)))
    return np.array(out)


@pytest.mark.parametrize("gamma_fixed", [None, 2.5])
def test_scan_equals_single_source_fits(models, scanner, gamma_fixed) -> None:
    """Scan TS at 50 random pixels (and the source pixel) equals the point-source fit there."""
    nside = 16
    rng = np.random.default_rng(3)
    pix = rng.choice(hp.nside2npix(nside), 50, replace=False)
    pix = np.append(pix, hp.ang2pix(nside, *SRC, lonlat=True))
    res = scanner.scan(nside, pixels=pix, gamma_fixed=gamma_fixed)
    ref = _single_fits(models, res.ra_deg, res.dec_deg, gamma_fixed)
    np.testing.assert_allclose(res.ts, ref[:, 0], atol=1e-3)
    strong = ref[:, 0] > 1
    assert strong.sum() >= 1
    np.testing.assert_allclose(res.ns[strong], ref[strong, 1], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(res.gamma[strong], ref[strong, 2], atol=1e-3)
    assert res.converged.all()
    assert res.ts.max() > 25  # the injected source


def test_full_sky_scan_maps_and_file(scanner, tmp_path: Path) -> None:
    from bayesnu.sky.scan import SkyScan

    nside = 8
    res = scanner.scan(nside, dec_range_deg=(-80.0, 80.0))
    th, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    dec = 90 - np.degrees(th)
    assert res.n_pixels == int(np.sum((dec > -80) & (dec < 80)))
    h = res.hottest()
    assert hp.rotator.angdist(SRC, (h["ra_deg"], h["dec_deg"]), lonlat=True)[0] < np.radians(8)
    full = res.full_map("ts")
    assert np.isnan(full[dec > 80]).all() and np.isfinite(full[res.pixels]).all()
    # -log10 p grows with TS and is 0 at TS = 0
    order = np.argsort(res.ts)
    assert np.all(np.diff(res.mlog10p[order]) >= -1e-12)
    assert np.all(res.mlog10p[res.ts <= 0] == 0)
    s = res.summary()
    for k in ("n_pixels", "hottest_ra", "hottest_dec", "ts_max", "wall_s", "compile_s"):
        assert k in s
    assert s["ts_max"] == pytest.approx(res.ts.max())
    path = res.write(tmp_path / "scan.fits")
    back = SkyScan.read(path)
    assert back.nside == nside and np.array_equal(back.pixels, res.pixels)
    np.testing.assert_array_equal(back.ts, res.ts)
    np.testing.assert_array_equal(back.gamma, res.gamma)
    with pytest.raises(ConfigError, match="exists"):
        res.write(path)
    (tmp_path / "junk.fits").write_text("not a fits file")
    with pytest.raises(DataFormatError, match=r"junk\.fits"):
        SkyScan.read(tmp_path / "junk.fits")


def test_scrambled_right_ascensions(scanner) -> None:
    """RA are a kernel argument: the data's RA reproduce the scan, scrambled RA lose the source."""
    nside = 16
    pix = hp.query_disc(nside, hp.ang2vec(*SRC, lonlat=True), np.radians(6))
    base = scanner.scan(nside, pixels=pix, gamma_fixed=2.0)
    same = scanner.scan(nside, pixels=pix, gamma_fixed=2.0, ra_rad=scanner.events["ra"].copy())
    np.testing.assert_array_equal(same.ts, base.ts)
    rng = np.random.default_rng(0)
    scr = scanner.scan(
        nside, pixels=pix, gamma_fixed=2.0, ra_rad=rng.uniform(0, 2 * np.pi, len(scanner.events["ra"]))
    )
    assert scr.ts.max() < base.ts.max() - 10


def test_scan_bad_input(scanner) -> None:
    with pytest.raises(ConfigError, match="nside"):
        scanner.scan(3)
    with pytest.raises(ConfigError, match="no pixel"):
        scanner.scan(8, pixels=[])
    with pytest.raises(ConfigError, match="inverted"):
        scanner.scan(8, dec_range_deg=(10.0, -10.0))
    with pytest.raises(ConfigError, match="gamma_fixed"):
        scanner.scan(8, gamma_fixed=5.0)
    with pytest.raises(ConfigError, match="pixel indices"):
        scanner.scan(8, pixels=[10_000])
    with pytest.raises(ConfigError, match="ra_rad"):
        scanner.scan(8, ra_rad=np.zeros(3))


def test_log_marginal_matches_numerical_integral() -> None:
    """The Laplace-in-ns / trapezoid-in-gamma Bayes factor equals a brute-force 2D integral."""
    import jax.numpy as jnp

    from bayesnu.likelihood.pointsource import log_lambda
    from bayesnu.likelihood.ps_fit import fit_ns_gamma_nodes, log_marginal
    from tests.test_ps_likelihood import synthetic_inputs

    f = jax.jit(
        jax.vmap(
            jax.vmap(lambda n, g, inp: log_lambda({"ns": n, "gamma": g}, inp), (0, None, None)),
            (None, 0, None),
        )
    )
    for seed, n_sig in ((0, 12), (1, 0), (2, 30)):
        inp = synthetic_inputs(seed=seed, n_sig=n_sig)
        ns = np.linspace(0, 100.0, 2001)
        gs = np.linspace(1, 4, 121)
        ll = np.asarray(f(jnp.asarray(ns), jnp.asarray(gs), inp))
        mx = ll.max()
        ref = np.log(np.trapezoid(np.trapezoid(np.exp(ll - mx), ns, axis=1), gs)) + mx - np.log(100.0 * 3.0)
        _, nodes = fit_ns_gamma_nodes(inp, ns_max=100.0)
        assert float(log_marginal(nodes, 100.0, 1.0, 4.0)) == pytest.approx(ref, abs=0.1)
        _, one = fit_ns_gamma_nodes(inp, ns_max=100.0, gamma_fixed=2.0)
        ref1 = np.log(np.trapezoid(np.exp(ll[np.argmin(np.abs(gs - 2.0))] - mx), ns)) + mx - np.log(100.0)
        assert float(log_marginal(one, 100.0, 1.0, 4.0)) == pytest.approx(ref1, abs=0.1)
