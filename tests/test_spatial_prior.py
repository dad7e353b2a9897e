"""Spatial-prior analysis: prior term, posterior map, trials, NUTS refinement."""

from __future__ import annotations

from pathlib import Path

import healpy as hp
import jax
import numpy as np
import pytest

from bayesnu.errors import ConfigError

SRC = (150.0, 20.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    from bayesnu.analyses.ps_inputs import season_models
    from bayesnu.data.ps_release import load_ps_release
    from bayesnu.data.simulate import SourceSpec, simulate_release

    out = tmp_path_factory.mktemp("sp_release")
    simulate_release(out, seasons=["IC40"], seed=8, n_events=15000, sources=[SourceSpec(*SRC, 3e-14, 2.0)])
    return season_models(load_ps_release(Path(out), seasons="IC40"))


@pytest.fixture(scope="module")
def analysis(models):
    from bayesnu.analyses.spatial_prior import SpatialPriorAnalysis
    from bayesnu.sky.maps import prior_gaussian

    return SpatialPriorAnalysis(models, prior_gaussian(152.0, 21.0, 3.0, 32))


@pytest.fixture(scope="module")
def result(analysis):
    return analysis.unblind()


def test_unblind_prior_term_and_posterior(analysis, result) -> None:
    s = result.summary()
    assert hp.rotator.angdist(SRC, (s["hottest_ra"], s["hottest_dec"]), lonlat=True)[0] < np.radians(3)
    assert s["ts_pixel"] > 25
    # the prior term is <= 0, 0 at the prior's peak, so TS with the term <= TS
    assert np.all(result.prior_term <= 1e-12) and result.prior_term.max() == pytest.approx(0.0, abs=1e-12)
    assert np.all(result.ts_with_prior <= result.scan.ts + 1e-12)
    post = result.posterior
    assert post.values.sum() == pytest.approx(1.0)
    assert set(np.flatnonzero(post.values)) <= set(analysis.pixels)
    mode = np.argmax(post.values)
    assert hp.rotator.angdist(SRC, hp.pix2ang(32, mode, lonlat=True), lonlat=True)[0] < np.radians(3)
    assert s["area_90_deg2"] >= s["area_50_deg2"] > 0
    assert s["log_bayes_factor"] > 10  # a strong source inside the prior


def test_flat_prior_posterior_is_marginal_likelihood(models) -> None:
    from bayesnu.analyses.spatial_prior import SpatialPriorAnalysis
    from bayesnu.sky.maps import SkyMap

    nside = 8
    flat = SkyMap(np.full(hp.nside2npix(nside), 1.0 / hp.nside2npix(nside)))
    ana = SpatialPriorAnalysis(models, flat, region_level=1.0)
    res = ana.result(ana.scan(gamma_fixed=2.0))
    assert len(res.scan.pixels) == hp.nside2npix(nside)
    like = np.exp(res.scan.log_bayes - res.scan.log_bayes.max())
    np.testing.assert_allclose(res.posterior.values[res.scan.pixels], like / like.sum(), rtol=1e-10)
    assert np.all(res.prior_term == 0)


def test_region_trial_without_scrambling_equals_scan(analysis, result) -> None:
    from bayesnu.analyses.spatial_prior import region_trial

    data = analysis.trial_inputs(inject=False, scramble=False)
    r = jax.jit(region_trial)(jax.random.key(0), data, 0.0, 2.0)
    assert float(r["ts_raw"]) == pytest.approx(result.summary()["ts_raw"], abs=1e-6)
    assert int(analysis.pixels[int(r["pixel"])]) == result.scan.hottest(result.ts_with_prior)["pixel"]


def test_background_and_signal_trials(analysis, tmp_path: Path) -> None:
    bg = analysis.background_trials(6, seed=3)
    again = analysis.background_trials(6, seed=3)
    np.testing.assert_array_equal(bg.columns["ts"], again.columns["ts"])
    assert np.all(bg.columns["ts"] >= 0) and not np.any(bg.columns["overflow"])
    assert np.all(bg.columns["ts"] < 30)
    sig = analysis.signal_trials(6, ns=25.0, gamma=2.0, seed=4)
    c = sig.columns
    assert np.all(c["true_pixel"] >= 0) and np.all(c["true_pixel"] < len(analysis.pixels))
    assert 10 < c["n_inj"].mean() < 40
    assert np.median(c["ts"]) > np.max(bg.columns["ts"])
    # a strong source: the posterior mode lands within a pixel or two of the true one
    true = analysis.pixels[c["true_pixel"]]
    mode = analysis.pixels[c["posterior_mode"]]
    d = hp.rotator.angdist(hp.pix2ang(32, true, lonlat=True), hp.pix2ang(32, mode, lonlat=True), lonlat=True)
    assert np.median(np.degrees(d)) < 2.5
    assert np.all((c["true_level"] >= 0) & (c["true_level"] <= 1))
    path = sig.save(tmp_path / "sig.npz")
    assert Path(path).exists()


def test_true_positions_follow_the_prior(analysis) -> None:
    """Signal trials draw the source pixel from the prior map."""
    sig = analysis.signal_trials(40, ns=3.0, gamma=2.0, seed=9, progress=False)
    ra, dec = hp.pix2ang(32, analysis.pixels[sig.columns["true_pixel"]], lonlat=True)
    d = np.degrees(hp.rotator.angdist((152.0, 21.0), (ra, dec), lonlat=True))
    # 2D Gaussian of sigma 3 deg: mean distance sigma sqrt(pi/2) = 3.76 deg
    assert 2.5 < d.mean() < 5.0


def test_nuts_refinement(analysis, result) -> None:
    dt = analysis.sample(result, chains=2, draws=300, warmup=300, seed=1, progress_bar=False)
    post = dt["posterior"].to_dataset()
    for v in ("ra_deg", "dec_deg", "ns", "gamma", "flux_norm"):
        assert v in post
    assert abs(float(post["ra_deg"].mean()) - SRC[0]) < 1.0
    assert abs(float(post["dec_deg"].mean()) - SRC[1]) < 1.0
    assert 5 < float(post["ns"].mean()) < 60
    assert "sample_stats" in dt and "diverging" in dt["sample_stats"]
    assert dt.attrs["analysis"] == "spatial_prior"


def test_flux_conversion_averaged_over_prior(models, analysis) -> None:
    from bayesnu.analyses.point_source import PointSourceAnalysis, Source
    from bayesnu.analyses.spatial_prior import SpatialPriorAnalysis
    from bayesnu.sky.maps import prior_gaussian

    # A prior concentrated in one pixel gives the point-source conversion at that pixel.
    narrow = SpatialPriorAnalysis(models, prior_gaussian(150.0, 20.0, 0.05, 32))
    pix = narrow.pixels[np.argmax(narrow.prior.values[narrow.pixels])]
    ra, dec = hp.pix2ang(32, pix, lonlat=True)
    ana = PointSourceAnalysis(models, Source(float(ra), float(dec)))
    assert narrow.flux_per_ns(2.0) == pytest.approx(ana.flux_norm(1.0, 2.0), rel=1e-6)
    assert analysis.flux_per_ns(2.0) > 0


def test_bad_input(models) -> None:
    from bayesnu.analyses.spatial_prior import SpatialPriorAnalysis
    from bayesnu.sky.maps import SkyMap, prior_gaussian

    with pytest.raises(ConfigError, match="value"):
        SpatialPriorAnalysis(models, SkyMap(np.ones(hp.nside2npix(4)), kind="value"))
    with pytest.raises(ConfigError, match="nside"):
        SpatialPriorAnalysis(models, prior_gaussian(10.0, 0.0, 3.0, 16), nside=5)
    with pytest.raises(ConfigError, match="region_level"):
        SpatialPriorAnalysis(models, prior_gaussian(10.0, 0.0, 3.0, 16), region_level=0.0)
