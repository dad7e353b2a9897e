"""Flux points: estimator definitions, GADF/gammapy tables, gammapy cross-check, SED plot."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from astropy import units as u
from scipy import stats

from bayesnu.errors import ConfigError
from bayesnu.flux import PowerLaw
from bayesnu.frequentist.flux_points import (
    DEFAULT_NORM_SCAN,
    estimate_flux_points,
    read_flux_points,
    write_flux_points,
)
from bayesnu.likelihood.spectrum import (
    SpectrumDataset,
    binned_counts_stat_bkg_norm,
    cash,
    flux_points_problem,
    npred,
    to_gammapy,
)
from bayesnu.plotting.sed import band_from_covariance, band_from_samples, plot_sed
from tests.conftest import require_peer

matplotlib.use("Agg")

REF = PowerLaw(norm=3e-11, gamma=2.5, e0_gev=1000.0)
EDGES = np.geomspace(100.0, 1e5, 7)  # half decades; the reco bins are 1/8 decade


def make_dataset(counts: np.ndarray | None = None, seed: int = 1) -> SpectrumDataset:
    """48 true x 24 reco bins (100 GeV - 100 TeV), 0.1-dex Gaussian dispersion, known background."""
    et, er = np.geomspace(100, 1e5, 49), np.geomspace(100, 1e5, 25)
    lt = np.log10(np.sqrt(et[:-1] * et[1:]))
    edisp = np.diff(stats.norm.cdf((np.log10(er)[None, :] - lt[:, None]) / 0.1), axis=1)
    exposure = 1e9 * (1 - np.exp(-np.sqrt(et[:-1] * et[1:]) / 300.0))
    bkg = 5 * (np.sqrt(er[:-1] * er[1:]) / 100) ** -0.5
    kw = dict(exposure_cm2_s=exposure, edisp=edisp, e_true_edges_gev=et, e_reco_edges_gev=er, background=bkg)
    if counts is None:
        mu = np.asarray(npred(REF, SpectrumDataset.create(counts=np.zeros(24), **kw)))
        counts = np.random.default_rng(seed).poisson(mu).astype(float)
    return SpectrumDataset.create(counts=counts, **kw)


@pytest.fixture(scope="module")
def dataset() -> SpectrumDataset:
    return make_dataset()


@pytest.fixture(scope="module")
def table(dataset):
    return estimate_flux_points(flux_points_problem(dataset, REF, EDGES))


def test_estimator_definitions(dataset, table):
    prob = flux_points_problem(dataset, REF, EDGES)
    assert len(table) == 6
    np.testing.assert_allclose(table["e_min"].quantity.to_value("GeV"), EDGES[:-1], rtol=1e-12)
    np.testing.assert_allclose(table["e_ref"], np.sqrt(table["e_min"] * table["e_max"]))
    for i, b in enumerate(prob.bins):
        f = lambda x, b=b: float(prob.stat(jnp.asarray(x), jnp.zeros(0), b.data))  # noqa: E731
        n, s0 = table["norm"][i], table["stat"][i]
        assert f(n) == pytest.approx(s0, abs=1e-9)
        assert f(n * 1.001 + 1e-6) > s0 and f(n * 0.999 - 1e-6) > s0  # a minimum
        assert table["ts"][i] == pytest.approx(f(0.0) - s0, abs=1e-8)
        assert f(n + table["norm_errp"][i]) - s0 == pytest.approx(1.0, abs=1e-7)
        assert f(n - table["norm_errn"][i]) - s0 == pytest.approx(1.0, abs=1e-7)
        assert f(table["norm_ul"][i]) - s0 == pytest.approx(4.0, abs=1e-7)
        h = (f(n * 1.0001) - 2 * s0 + f(n * 0.9999)) / (n * 1e-4) ** 2
        assert table["norm_err"][i] == pytest.approx(np.sqrt(2 / h), rel=1e-3)
        np.testing.assert_allclose(table["stat_scan"][i], [f(v) for v in DEFAULT_NORM_SCAN], rtol=1e-12)
        assert table["counts"][i, 0] == float(np.sum(np.asarray(dataset.counts)[np.asarray(b.data.mask)]))
    assert np.all(table["success"])
    np.testing.assert_allclose(table["sqrt_ts"], np.sign(table["norm"]) * np.sqrt(table["ts"]))
    assert table.meta["SED_TYPE"] == "likelihood"
    assert table.meta["UL_CONF"] == pytest.approx(0.9544997)


def test_gadf_and_gammapy_likelihood_columns_are_consistent(table):
    # GADF: ts = 2 (loglike - loglike_null); dloglike_scan relative to the zero-norm model
    np.testing.assert_allclose(table["ts"], 2 * (table["loglike"] - table["loglike_null"]), rtol=1e-12)
    np.testing.assert_allclose(
        table["dloglike_scan"], -0.5 * (table["stat_scan"] - table["stat_null"][:, None]), rtol=1e-12
    )
    # gammapy: absolute stat_scan with its minimum near stat
    assert np.all(table["stat_scan"].min(axis=1) >= table["stat"] - 1e-9)
    # flux columns: dnde = norm * ref_dnde; e2dnde = e_ref^2 dnde, with units
    assert table["dnde"].unit == u.Unit("GeV-1 cm-2 s-1")
    np.testing.assert_allclose(table["dnde_ul"], table["norm_ul"] * table["ref_dnde"])
    e2 = (table["e_ref"].quantity ** 2 * table["dnde"].quantity).to_value("GeV cm-2 s-1")
    np.testing.assert_allclose(table["e2dnde"].quantity.to_value("GeV cm-2 s-1"), e2, rtol=1e-12)
    np.testing.assert_allclose(table["ref_dnde"], REF.dnde(np.asarray(table["e_ref"])), rtol=1e-12)


def test_asimov_data_give_norm_one_for_both_restrictions():
    asimov = make_dataset(counts=np.asarray(npred(REF, make_dataset())))
    reco = estimate_flux_points(flux_points_problem(asimov, REF, EDGES))
    np.testing.assert_allclose(reco["norm"], 1.0, atol=1e-7)
    true_fixed = estimate_flux_points(
        flux_points_problem(asimov, REF, EDGES, restrict="true", others="fixed")
    )
    np.testing.assert_allclose(true_fixed["norm"], 1.0, atol=1e-7)
    # with the rest of the spectrum set to zero the norm absorbs the spill-over from
    # neighbouring true-energy bins: above 1, by more where the spectrum falls steeply
    true_zero = estimate_flux_points(flux_points_problem(asimov, REF, EDGES, restrict="true", others="zero"))
    assert np.all(true_zero["norm"] > 1.0)
    assert np.all(true_zero["ts"] > reco["ts"] - 1e-9)  # all events enter the fit


def test_reoptimized_profiles_are_minima_over_the_nuisance(dataset):
    prob = flux_points_problem(dataset, REF, EDGES[:3], background_norm=True)
    fixed = estimate_flux_points(prob)
    reopt = estimate_flux_points(prob, reoptimize=True)
    assert np.all(reopt["stat_scan"] <= fixed["stat_scan"] + 1e-9)
    assert np.all(reopt["stat"] <= fixed["stat"] + 1e-9)
    # the joint minimum agrees with a brute-force grid over (norm, background norm)
    b = prob.bins[0]
    nn, bb = np.meshgrid(np.linspace(0.0, 2.5, 251), np.linspace(0.0, 3.0, 301))
    stat = jax.jit(jax.vmap(lambda n, k: binned_counts_stat_bkg_norm(n, k[None], b.data)))
    vals = np.asarray(stat(jnp.asarray(nn.ravel()), jnp.asarray(bb.ravel())))
    assert reopt["stat"][0] <= vals.min() + 1e-9
    assert reopt["stat"][0] > vals.min() - 0.05


def test_write_read_round_trip(tmp_path, table):
    for name in ("fp.ecsv", "fp.fits"):
        path = write_flux_points(table, tmp_path / name)
        back = read_flux_points(path)
        for col in ("norm", "norm_ul", "ts", "stat_scan", "dloglike_scan", "e_ref"):
            np.testing.assert_allclose(np.asarray(back[col]), np.asarray(table[col]), rtol=1e-12)
        assert back.meta["SED_TYPE"] == "likelihood"
    with pytest.raises(ConfigError, match="ecsv"):
        write_flux_points(table, tmp_path / "fp.txt")


def test_sed_plot(tmp_path, table):
    e = np.geomspace(100, 1e5, 50)

    def dnde(energy, p):
        return p["norm"] * (energy / 1000.0) ** -p["gamma"]

    fit_band = band_from_covariance(e, dnde, {"norm": 3e-11, "gamma": 2.5}, np.diag([3e-12**2, 0.05**2]))
    rng = np.random.default_rng(0)
    post = band_from_samples(
        e, dnde, {"norm": rng.normal(3e-11, 2e-12, 500), "gamma": rng.normal(2.5, 0.04, 500)}
    )
    assert np.all(fit_band.low < fit_band.mid) and np.all(fit_band.mid < fit_band.high)
    # an ArviZ-style posterior group works as the samples
    xr = pytest.importorskip("xarray")
    draws = {"norm": rng.normal(3e-11, 2e-12, (2, 250)), "gamma": rng.normal(2.5, 0.04, (2, 250))}
    tree = xr.DataTree.from_dict(
        {"posterior": xr.Dataset({k: (("chain", "draw"), v) for k, v in draws.items()})}
    )
    from_tree = band_from_samples(e, dnde, tree.posterior)
    assert from_tree.mid[0] == pytest.approx(100.0**2 * 3e-11 * 0.1**-2.5, rel=0.05)
    ax = plot_sed(table, bands=[fit_band, post])
    assert ax.get_xscale() == "log" and len(ax.collections) >= 2
    ax.figure.savefig(tmp_path / "sed.png")
    assert (tmp_path / "sed.png").stat().st_size > 1000


def test_gammapy_reads_and_plots_the_tables(tmp_path, table):
    require_peer("gammapy")
    from gammapy.estimators import FluxPoints

    for name in ("fp.ecsv", "fp.fits"):
        path = write_flux_points(table, tmp_path / name)
        fp = FluxPoints.read(path)
        assert fp.sed_type_init == "likelihood"
        assert fp.n_sigma_ul == 2.0
        np.testing.assert_allclose(fp.norm.data.ravel(), table["norm"], rtol=1e-12)
        np.testing.assert_allclose(fp.norm_ul.data.ravel(), table["norm_ul"], rtol=1e-12)
        np.testing.assert_allclose(fp.ts.data.ravel(), table["ts"], rtol=1e-12)
        # gammapy uses the absolute stat_scan (not 2 * dloglike_scan)
        np.testing.assert_allclose(fp.stat_scan.data.reshape(len(table), -1), table["stat_scan"], rtol=1e-12)
        dnde = fp.dnde.quantity.ravel().to_value("GeV-1 cm-2 s-1")
        np.testing.assert_allclose(dnde, table["dnde"], rtol=1e-6)
        e2 = fp.e2dnde.quantity.ravel().to_value("GeV cm-2 s-1")
        np.testing.assert_allclose(e2, table["e2dnde"], rtol=1e-6)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        fp.plot(ax=ax, sed_type="e2dnde")
        fp.plot_ts_profiles(ax=ax, sed_type="e2dnde")
        fig.savefig(tmp_path / f"{name}.png")
        plt.close(fig)


def _gammapy_points(dataset, fit=None):
    from gammapy.estimators import FluxPointsEstimator

    kw = {} if fit is None else {"fit": fit}
    est = FluxPointsEstimator(energy_edges=EDGES * u.GeV, source="source", selection_optional="all", **kw)
    return est.run([to_gammapy(dataset, REF)]).to_table(sed_type="likelihood")


@pytest.mark.peer
def test_agreement_with_gammapy_flux_points_estimator(dataset, table):
    require_peer("gammapy")
    from gammapy.modeling import Fit

    gds = to_gammapy(dataset, REF)
    np.testing.assert_allclose(gds.npred().data.ravel(), np.asarray(npred(REF, dataset)), rtol=1e-7)
    # gammapy's estimator settings, with MINUIT's tolerance tightened from 0.1 to 1e-4
    g = _gammapy_points(dataset, Fit(optimize_opts={"tol": 1e-4}, confidence_opts={"backend": "scipy"}))
    np.testing.assert_allclose(g["e_min"].quantity.to_value("GeV"), table["e_min"], rtol=1e-9)
    rel = lambda k: np.abs(np.asarray(table[k]) / np.asarray(g[k]) - 1)  # noqa: E731
    assert np.all(rel("norm") < 0.01), rel("norm")
    assert np.all(rel("norm_err") < 0.03), rel("norm_err")
    assert np.all(rel("norm_errn") < 0.03) and np.all(rel("norm_errp") < 0.03)
    assert np.all(rel("norm_ul") < 0.03), rel("norm_ul")
    assert np.all(np.abs(np.asarray(table["ts"]) - np.asarray(g["ts"])) < 0.1)
    np.testing.assert_allclose(table["stat_scan"], g["stat_scan"], atol=1e-3)
    np.testing.assert_allclose(table["counts"], g["counts"])
    np.testing.assert_allclose(table["npred"], g["npred"], rtol=1e-3)
    # with gammapy's default tolerance its norm sits slightly off the minimum in the
    # poorly constrained bins; bayesnu's statistic is never higher at its norm
    g0 = _gammapy_points(dataset)
    prob = flux_points_problem(dataset, REF, EDGES)
    for i, b in enumerate(prob.bins):
        ours = float(prob.stat(jnp.asarray(table["norm"][i]), jnp.zeros(0), b.data))
        theirs = float(prob.stat(jnp.asarray(g0["norm"][i]), jnp.zeros(0), b.data))
        assert ours <= theirs + 1e-9
        if g0["ts"][i] > 4:
            assert abs(table["norm"][i] / g0["norm"][i] - 1) < 0.01


def test_cash_matches_gammapy_definition():
    n = jnp.asarray([0.0, 3.0, 10.0])
    mu = jnp.asarray([0.5, 2.0, -1.0])
    expect = 2 * (np.array([0.5, 2.0, 1e-25]) - np.array([0.0, 3.0, 10.0]) * np.log([0.5, 2.0, 1e-25]))
    np.testing.assert_allclose(cash(n, mu), expect, rtol=1e-12)
    assert math.isfinite(float(cash(n, mu).sum()))


def test_dataset_validation():
    with pytest.raises(ConfigError, match="edisp"):
        SpectrumDataset.create(
            counts=np.zeros(2),
            exposure_cm2_s=np.ones(3),
            edisp=np.ones((2, 2)),
            e_true_edges_gev=[1, 2, 3, 4],
            e_reco_edges_gev=[1, 2, 3],
        )
    with pytest.raises(ConfigError, match="no reconstructed-energy bin"):
        flux_points_problem(make_dataset(), REF, [100.0, 105.0])
