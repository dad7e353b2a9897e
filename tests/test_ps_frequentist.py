"""Point-source pseudo-experiments and frequentist products."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from bayesnu.analyses import ps_frequentist as pf
from bayesnu.analyses import ps_trials as pt
from bayesnu.analyses.point_source import PointSourceAnalysis, Source
from bayesnu.data.ps_release import load_ps_release
from bayesnu.likelihood.ps_fit import fit_ns_gamma
from tests.conftest import require_peer

SRC = (150.0, 20.0)


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bayesnu.data.simulate import SourceSpec, simulate_release

    out = tmp_path_factory.mktemp("psf") / "rel"
    simulate_release(out, seasons=["IC40"], seed=3, n_events=15000, sources=[SourceSpec(*SRC, 2.5e-14, 2.0)])
    return out


@pytest.fixture(scope="module")
def ana(sim_dir: Path) -> PointSourceAnalysis:
    return PointSourceAnalysis(load_ps_release(sim_dir, "IC40"), Source(*SRC, "sim"))


def test_selection_in_trials_equals_exact_likelihood(ana: PointSourceAnalysis) -> None:
    """The reach-based selection of a trial reproduces the all-events likelihood."""
    data = pf.trial_inputs(ana)

    def both(key):
        pd = pt.pseudo_data(key, data, 10.0, 2.0)
        sel, over = pt.as_inputs(data, pd, data.buffer)
        whole = pt.full_pseudo_data(key, data, 10.0, 2.0)
        full, _ = pt.as_inputs(data, whole, whole.valid.shape[0], select=False)
        return fit_ns_gamma(sel).ts, fit_ns_gamma(full).ts, over

    a, b, over = jax.jit(jax.vmap(both))(jax.random.split(jax.random.key(3), 32))
    assert not np.any(np.asarray(over))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_reach_draws_have_the_law_of_a_full_scramble(ana: PointSourceAnalysis) -> None:
    """Drawing only the events within reach (Poisson points on the hazard line) is a uniform
    RA scramble of the band: per-event selection frequencies, the count's mean and variance,
    and uniform right ascensions of the completed draw."""
    from dataclasses import replace

    from scipy import stats

    data = replace(pf.trial_inputs(ana, inject=False), injection=None)
    n = 3000

    def one(k):
        pd = pt.full_pseudo_data(k, data, 0.0, 2.0)
        return pd.cols["near"], pd.cols["ra"], pd.overflow

    near, ra, over = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(11), n))
    near, ra = np.asarray(near), np.asarray(ra)
    assert not np.any(np.asarray(over))
    valid = np.asarray(data.band.events.valid)
    near, ra = near[:, valid], ra[:, valid]
    dra = np.asarray(data.dra_reach)[valid]
    p = dra / np.pi
    # "near" is exactly "within the reach arc" for the drawn right ascension.
    d = np.abs(ra - float(data.band.src_ra))
    d = np.minimum(d, 2 * np.pi - d)
    assert np.array_equal(near[:, p > 0], (d < dra)[:, p > 0] | (p[p > 0] >= 1.0))
    # Each event is selected with probability p_i, independently.
    mid = (p > 0.02) & (p < 0.98)
    assert mid.sum() > 50
    z2 = (near[:, mid].mean(axis=0) - p[mid]) ** 2 * n / (p[mid] * (1 - p[mid]))
    assert stats.chi2.sf(z2.sum(), mid.sum()) > 1e-3
    count = near.sum(axis=1)
    mean, var = p.sum(), np.sum(p * (1 - p))
    assert abs(count.mean() - mean) < 5 * np.sqrt(var / n)
    assert 0.85 < count.var() / var < 1.15
    # Every event's right ascension is uniform on [0, 2 pi), selected or not.
    for i in np.flatnonzero(mid)[:5]:
        assert stats.kstest(ra[:, i] / (2 * np.pi), "uniform").pvalue > 1e-3
    assert stats.kstest(ra[:200].ravel() / (2 * np.pi), "uniform").pvalue > 1e-3


def test_trials_reproducible_and_batch_independent(ana: PointSourceAnalysis) -> None:
    r1 = pf.background_trials(ana, 300, seed=7, batch_size=128)
    r2 = pf.background_trials(ana, 300, seed=7, batch_size=64)
    np.testing.assert_array_equal(r1.columns["ts"], r2.columns["ts"])
    r3 = pf.background_trials(ana, 300, seed=8, batch_size=128)
    assert not np.array_equal(r1.columns["ts"], r3.columns["ts"])
    ts = r1.columns["ts"]
    assert np.all(ts >= 0) and np.all(r1.columns["converged"])
    # About half of the background trials end at ns = 0 (the boundary), TS is small.
    assert 0.3 < np.mean(r1.columns["ns"] == 0) < 0.75
    assert np.median(ts) < 0.5


def test_tight_buffer_with_retry_equals_the_full_buffer(ana: PointSourceAnalysis) -> None:
    """A tight selection buffer (rerunning the trials that overflow it) gives the fits of the
    7-sd buffer; the trials' draws do not depend on the buffer."""
    from dataclasses import replace

    import jax.numpy as jnp

    from bayesnu.frequentist.trials import run_trials

    data = pf.trial_inputs(ana, inject=True, n_inj_max=64)
    three = pt.with_buffer_sigma(data, 3.0)
    assert three.buffer < data.buffer and three.n_points == data.n_points
    # a buffer at the mean count (background within reach + 8 injected): many trials overflow
    tight = replace(data, buffer=int(np.sum(np.asarray(data.dra_reach)) / np.pi) + 8)
    args = (jnp.asarray(8.0), jnp.asarray(2.0))
    full = run_trials(pf._trial_fn, 192, seed=3, inputs=(data, *args), batch_size=64)
    res = run_trials(
        pf._trial_fn, 192, seed=3, inputs=(tight, *args), retry_inputs=(data, *args), batch_size=64
    )
    assert 10 < res.meta["n_retried"] < 192 and not res["overflow"].any()
    np.testing.assert_array_equal(res["n_inj"], full["n_inj"])
    np.testing.assert_allclose(res["ts"], full["ts"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res["ns"], full["ns"], rtol=1e-9, atol=1e-9)
    # the library's trials use the 3-sd buffer with this retry
    bg = pf.background_trials(ana, 64, seed=3)
    assert "n_retried" in bg.meta


def test_signal_trials_recover_injection(ana: PointSourceAnalysis) -> None:
    res = pf.signal_trials(ana, 256, ns=15.0, gamma=2.0, seed=2)
    assert res.meta["mean_ns_injected"] == 15.0
    assert np.mean(res.columns["n_inj"]) == pytest.approx(15.0, abs=1.0)
    # The response's PSF has heavier tails than the Rayleigh PSF the likelihood assumes
    # (as IceCube's public response does), so ns comes out somewhat low for E^-2 (about -8%).
    ns = res.columns["ns"]
    assert 0.8 * np.mean(res.columns["n_inj"]) < np.mean(ns) < 1.05 * np.mean(res.columns["n_inj"])
    assert np.median(res.columns["gamma"]) == pytest.approx(2.0, abs=0.2)
    flux = pf.signal_trials(ana, 64, flux_norm=2.5e-14, gamma=2.0, seed=2)
    assert flux.meta["mean_ns_injected"] > 1


def test_large_injections_fit_the_selection_buffer(ana: PointSourceAnalysis) -> None:
    """Injections up to n_inj_max never overflow the selection buffer (soft-spectrum discovery
    potentials inject many events)."""
    bg = pf.trial_inputs(ana, inject=False)
    sig = pf.trial_inputs(ana, inject=True, n_inj_max=96)
    assert sig.buffer >= bg.buffer + 96 or sig.buffer == sig.band.events.ra.shape[0] + 96
    res = pf.signal_trials(ana, 16, ns=60.0, gamma=2.0, seed=5, n_inj_max=96)
    assert not np.any(res.columns["overflow"])
    assert np.mean(res.columns["n_inj"]) == pytest.approx(60.0, abs=8.0)


def test_pvalue_limits_sensitivity(ana: PointSourceAnalysis) -> None:
    fit = ana.fit()
    bg = pf.background_trials(ana, 1000, seed=1)
    p = pf.pvalue(ana, fit.ts, bg)
    assert float(p.pvalue) < 1e-6
    ts80 = float(np.quantile(bg.columns["ts"], 0.8))
    p0 = pf.pvalue(ana, ts80, bg)
    assert 0.15 < float(p0.pvalue) < 0.25
    wilks = pf.upper_limit(ana, method="wilks", cl=0.9)
    assert wilks.upper > fit.ns
    assert wilks.flux["upper_phi0_per_gev_cm2_s"] == pytest.approx(
        ana.flux_norm(wilks.upper, fit.gamma), rel=1e-6
    )
    sens = pf.sensitivity(ana, bg, gamma=2.0, seed=3, n_trials=200)
    assert 0.5 < sens.strength < 20
    assert sens.flux["phi0_per_gev_cm2_s"] == pytest.approx(ana.flux_norm(sens.strength, 2.0), rel=1e-6)


def test_flux_points_table_and_gammapy(ana: PointSourceAnalysis, tmp_path: Path) -> None:
    table = pf.flux_points(ana, [1e2, 1e3, 1e4, 1e5, 1e6], gamma_ref=2.0)
    assert len(table) == 4
    for col in ("e_ref", "e_min", "e_max", "norm", "norm_errn", "norm_errp", "norm_ul", "ts", "sqrt_ts",
                "norm_scan", "stat_scan", "dnde", "e2dnde"):  # fmt: skip
        assert col in table.colnames
    assert table.meta["SED_TYPE"] == "likelihood"
    assert np.all(np.asarray(table["norm"]) >= 0)
    # The bins that hold most of an E^-2 source's events are significant.
    assert np.max(np.asarray(table["ts"])) > 25
    from bayesnu.frequentist.flux_points import write_flux_points

    path = write_flux_points(table, tmp_path / "fp.ecsv")
    gp = require_peer("gammapy")
    from gammapy.estimators import FluxPoints

    fp = FluxPoints.read(path)
    assert fp.sed_type_init == "likelihood"
    np.testing.assert_allclose(fp.norm.data.ravel(), np.asarray(table["norm"]), rtol=1e-9)
    _ = gp


def test_cli_trials_json(sim_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bayesnu.cli import main

    out = tmp_path / "trials.npz"
    args = ["--data", str(sim_dir), "--ra", str(SRC[0]), "--dec", str(SRC[1])]
    assert (
        main(["trials", "point-source", *args, "--n", "256", "--seed", "1", "--out", str(out), "--json"]) == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["n_trials"] == 256 and "ts_median" in res and res["trials_per_s"] > 0
    with np.load(out, allow_pickle=False) as z:
        assert z["col_ts"].shape == (256,)
    assert main(["trials", "point-source", *args, "--n", "64", "--inject-ns", "10", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["mean_ns_injected"] == 10.0
    fp = tmp_path / "fp.fits"
    assert (
        main(["flux-points", "point-source", *args, "--energy-edges", "1e2,1e4,1e6", "--out", str(fp)]) == 0
    )
    assert fp.exists()
