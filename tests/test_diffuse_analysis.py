"""The diffuse analysis: binning, priors, fit, NUTS, profiles, flux points, CLI, card, plots."""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from bayesnu.analyses.diffuse import DiffuseAnalysis, hese_binning, resolve_priors
from bayesnu.analyses.diffuse.card import PUBLISHED_BEST_FIT, run_diffuse_card
from bayesnu.analyses.diffuse.profile import (
    SIGMA_LEVELS,
    astro_ts,
    flux_points,
    load_published_scan,
    profile_scan,
    wilks_threshold,
)
from bayesnu.cli import main
from bayesnu.data.hese import HESEMonteCarlo, read_hese_data, write_hese_mc
from bayesnu.data.hese_simulate import HESESimulationConfig, sample_events, simulate_hese_mc
from bayesnu.errors import ConfigError, DataFormatError
from bayesnu.inference import load_netcdf

pytestmark = pytest.mark.xdist_group("diffuse")


@pytest.fixture(scope="module")
def mc():
    return simulate_hese_mc(HESESimulationConfig(n_neutrino=12000, n_muon=400, seed=2))


@pytest.fixture(scope="module")
def pseudo(mc):
    """A pseudo-experiment at the published best fit (drawn from the same MC)."""
    probe = DiffuseAnalysis(read_placeholder(), mc)
    w = probe.component_event_weights(PUBLISHED_BEST_FIT)
    return sample_events(HESEMonteCarlo(probe.mc_fields), sum(w.values()), seed=7)


def read_placeholder():
    from bayesnu.analyses.diffuse.card import read_hese_data_placeholder

    return read_hese_data_placeholder()


@pytest.fixture(scope="module")
def ana(pseudo, mc):
    return DiffuseAnalysis(pseudo, mc)


def test_release_binning():
    b = hese_binning()
    assert b.n_energy == 21 and b.n_bins == 840 and b.sizes == (210, 210, 420)
    e = b.energy_edges_gev
    assert e[0] == pytest.approx(60e3) and e[-2] < 1e7 < e[-1]
    np.testing.assert_allclose(np.diff(np.log10(e)), 0.111, rtol=1e-10)
    np.testing.assert_allclose(np.diff(np.cos(b.morphologies[0].edges)), -0.2, atol=1e-12)
    np.testing.assert_allclose(b.morphologies[2].edges[[0, -1]], [10.0, 1000.0])


def test_real_data_selection(real_hese_dir, mc):
    with pytest.warns(UserWarning, match="bins without any MC"):
        a = DiffuseAnalysis(read_hese_data(real_hese_dir / "HESE_data.json"), mc)
    assert a.selection.n_data == 102 and a.selection.n_data_pass_cuts == 60
    assert a.counts.sum() + a.selection.n_data_outside_bins == 60
    assert a.selection.n_data_in_bins_without_mc == 1  # this small MC leaves one data bin empty


def test_priors_override_and_fix(pseudo, mc):
    p = resolve_priors({"conv_norm": {"sd": 0.2}, "astro_gamma": {"lower": 1.0, "upper": 4.0}})
    assert p["conv_norm"].sd == 0.2 and p["conv_norm"].mean == 1.0 and p["astro_gamma"].upper == 4.0
    with pytest.raises(ConfigError, match="unknown parameter"):
        resolve_priors({"nope": {"sd": 1}})
    with pytest.raises(ConfigError, match="spline"):
        DiffuseAnalysis(pseudo, mc, fixed={"epsilon_dom": 1.1})
    a = DiffuseAnalysis(pseudo, mc, fixed={"conv_norm": 1.3}, priors={"muon_norm": {"mean": 2.0, "sd": 0.1}})
    fit = a.fit(compute_errors=False)
    assert fit.params["conv_norm"] == 1.3 and "conv_norm" not in fit.free
    assert fit.params["muon_norm"] > 1.5  # pulled by the tight prior


def test_fit_recovers_truth_and_prior_normalisation(ana):
    fit = ana.fit()
    assert fit.converged
    assert abs(fit.params["astro_gamma"] - 2.874) < 3 * fit.errors["astro_gamma"]
    assert abs(fit.params["astro_norm"] - 6.365) < 3 * fit.errors["astro_norm"]
    # -LLH includes the Gaussian prior constants: moving a flat-prior parameter changes only the likelihood
    p = dict(fit.params)
    with_prior = ana.neg_llh(p)
    import jax.numpy as jnp

    from bayesnu.analyses.diffuse.model import log_likelihood

    ll = float(log_likelihood({k: jnp.asarray(v) for k, v in p.items()}, ana.inputs))
    prior = sum(
        -0.5 * math.log(2 * math.pi) - math.log(pr.sd) - (p[n] - pr.mean) ** 2 / (2 * pr.sd**2)
        for n, pr in ana.priors.items()
        if pr.gaussian
    )
    assert abs(with_prior - (-(ll + prior))) < 1e-9
    # outside a bound the density is -inf
    assert ana.neg_llh({**p, "conv_norm": -0.1}) == math.inf


def test_batch_equals_single(ana):
    pts = {"astro_gamma": np.array([2.2, 2.9]), "astro_norm": np.array([4.0, 7.0])}
    batch = ana.neg_llh_batch(pts)
    single = [ana.neg_llh({"astro_gamma": g, "astro_norm": n}) for g, n in zip(*pts.values())]
    np.testing.assert_allclose(batch, single, rtol=1e-12)


def test_poisson_vs_say_close_with_many_mc(ana):
    say = ana.neg_llh(PUBLISHED_BEST_FIT)
    poi = ana.with_likelihood("poisson").neg_llh(PUBLISHED_BEST_FIT)
    assert say != poi and abs(say - poi) < 5.0


def test_nuts_short_run(ana):
    dt = ana.sample(chains=2, draws=150, warmup=150, seed=3, fixed={"kpi_ratio": 1.0, "nunubar_ratio": 1.0})
    post = dt["posterior"]
    assert post["astro_gamma"].shape == (2, 150)
    assert "n_astro" in post.data_vars and "astro_flux_100tev_per_flavour" in post.data_vars
    # per-flavour E^2 dN/dE at 100 TeV [GeV cm^-2 s^-1 sr^-1] for every draw
    norm = np.asarray(post["astro_norm"].values)
    np.testing.assert_allclose(
        post["astro_e2dnde_100tev_per_flavour"].values, norm / 3.0 * 1e-18 * (1e5) ** 2, rtol=1e-12
    )
    np.testing.assert_allclose(post["astro_flux_100tev_per_flavour"].values, norm / 3.0 * 1e-18, rtol=1e-12)
    g = np.asarray(post["astro_gamma"].values)
    assert 2.0 < g.mean() < 3.8
    dt2 = ana.sample(chains=2, draws=150, warmup=150, seed=3, fixed={"kpi_ratio": 1.0, "nunubar_ratio": 1.0})
    np.testing.assert_array_equal(g, np.asarray(dt2["posterior"]["astro_gamma"].values))


def test_published_scan(real_hese_dir):
    scan = load_published_scan(real_hese_dir / "astro_scan_data.txt")
    assert scan.neg_llh.shape == (51, 41)
    g, n, v = scan.minimum()
    assert abs(g - 2.87) < 0.01 and abs(n - 6.36) < 0.05 and abs(v - 122.96) < 0.01
    best, lo, hi = scan.wilks_interval("astro_gamma")
    assert abs((best - lo) - 0.19) < 0.02 and abs((hi - best) - 0.20) < 0.02
    best, lo, hi = scan.wilks_interval("astro_norm")
    # published per-flavour 2.12 +0.49 -0.54, i.e. six-neutrino 6.36 +1.47 -1.62
    assert abs((best - lo) - 1.62) < 0.15 and abs((hi - best) - 1.47) < 0.15
    assert wilks_threshold(SIGMA_LEVELS[0], 2) == pytest.approx(1.1479, abs=1e-3)


def test_published_scan_errors(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("2.0 1.0 10\n2.0 2.0\n")
    with pytest.raises(DataFormatError) as exc:
        load_published_scan(p)
    assert exc.value.line == 2


def test_profile_scan_and_ts(ana):
    scan = profile_scan(ana, [2.6, 2.9, 3.2], [4.0, 6.5, 9.0], progress=False)
    fit = ana.fit(compute_errors=False)
    assert np.all(scan.neg_llh >= fit.neg_llh - 1e-6)
    # a scan point re-fitted independently gives the same profile value
    direct = ana.fit(fixed={"astro_gamma": 2.9, "astro_norm": 6.5}, compute_errors=False).neg_llh
    assert abs(scan.neg_llh[1, 1] - direct) < 1e-5
    ts = astro_ts(ana)
    assert ts["ts"] > 25 and ts["neg_llh_null"] > ts["neg_llh_best"]


def test_flux_points_table(ana, tmp_path):
    """Flux points through the shared engine: GADF / gammapy table, exact profile crossings, files."""
    from bayesnu.analyses.diffuse.profile import FluxPoints
    from bayesnu.frequentist.flux_points import read_flux_points, write_flux_points

    t = flux_points(ana, [6e4, 2e5, 1e6, 1e7], n_scan=6, progress=False)
    for c in ("e_ref", "e_min", "e_max", "norm", "norm_err", "norm_errn", "norm_errp", "norm_ul", "ts",
              "sqrt_ts", "npred", "npred_excess", "counts", "success", "norm_scan", "stat_scan", "dnde",
              "e2dnde", "astro_norm", "astro_norm_ul"):  # fmt: skip
        assert c in t.colnames, c
    assert t.meta["SED_TYPE"] == "likelihood" and t.meta["UL_CONF"] == pytest.approx(0.9)
    assert t.meta["UL_1SIDE"] == 0.95 and t.meta["gamma_pw"] == 2.0
    assert str(t["e_ref"].unit) == "GeV" and t["e2dnde"].unit.is_equivalent("GeV cm-2 s-1")
    assert t["norm_scan"].shape == (3, 6) and t["stat_scan"].shape == (3, 6)
    assert np.all(t["success"]) and np.ptp(t["stat"]) < 1e-6  # every bin reaches the joint optimum
    assert np.all(t["norm_ul"] >= t["norm"]) and np.all(t["ts"] >= -1e-6)
    assert t["ts"][0] > 4  # the best-populated bin is significant
    assert np.all(np.asarray(t["counts"]) == ana.counts.sum())
    # per-flavour E^2 dN/dE at e_ref [GeV cm^-2 s^-1 sr^-1] from the six-neutrino Phi_j
    e_ref = np.asarray(t["e_ref"])
    np.testing.assert_allclose(t["e2dnde"], np.asarray(t["astro_norm"]) / 3 * 1e-18 * e_ref**2, rtol=1e-10)
    # the 1-sigma upper crossing of bin 0, checked with the analysis' own optimiser: -2 ln L rises by 1
    from bayesnu.analyses.diffuse.profile import _piecewise_inputs, _piecewise_log_density
    from bayesnu.inference import ParamSpec, maximize

    energy = np.asarray(ana.mc_fields["primaryEnergy"])
    edges = np.array([6e4, 2e5, 1e6, 1e7])
    seg = np.digitize(energy, edges) - 1
    seg[(seg < 0) | (seg >= 3)] = -1
    amp = np.asarray(t["astro_norm"]) / np.asarray(t["norm"])
    args = (_piecewise_inputs(ana.inputs), seg, np.log(energy / e_ref[np.clip(seg, 0, 2)]), 2.0)
    free = [s for s in ana.parameter_specs() if s.name not in ("astro_gamma", "astro_norm")]
    specs = free + [ParamSpec(f"piece_{j}", 1.0, 0.0, math.inf) for j in range(3)]

    def logp(theta, inputs, segment, log_e_rel, gamma_pw):
        pieces = jnp.stack([theta[f"piece_{j}"] * amp[j] for j in range(3)])
        rest = {k: v for k, v in theta.items() if not k.startswith("piece_")}
        return _piecewise_log_density(pieces, rest, inputs, jnp.asarray(segment), jnp.asarray(log_e_rel),
                                      jnp.asarray(gamma_pw))  # fmt: skip

    nuis = np.asarray(t["nuisance"][0])
    names = [s.name for s in free if s.name not in ana.fixed]
    start = {**{f"piece_{j}": nuis[j] for j in (1, 2)}, **{n: nuis[3 + k] for k, n in enumerate(names)}}
    up = float(t["norm"][0] + t["norm_errp"][0])
    fx = {**ana.fixed, "piece_0": up}
    r = maximize(logp, specs, args=args, fixed=fx, starts=[start], compute_cov=False, ftol=1e-14, gtol=1e-10)
    assert -2 * r.logp - float(t["stat"][0]) == pytest.approx(1.0, abs=2e-3)
    # files: ECSV and FITS, the former attribute view, and gammapy
    fp_old = FluxPoints.from_table(t)
    np.testing.assert_allclose(fp_old.e2dnde, t["e2dnde"], rtol=1e-10)
    for name in ("fp.ecsv", "fp.fits"):
        path = write_flux_points(t, tmp_path / name)
        back = read_flux_points(path)
        np.testing.assert_allclose(back["astro_norm_ul"], t["astro_norm_ul"], rtol=1e-12)
    pytest.importorskip("gammapy")
    from gammapy.estimators import FluxPoints as GammapyFluxPoints

    for name in ("fp.ecsv", "fp.fits"):
        g = GammapyFluxPoints.read(tmp_path / name)
        assert g.sed_type_init == "likelihood"
        np.testing.assert_allclose(g.norm.data.ravel(), t["norm"], rtol=1e-12)
        np.testing.assert_allclose(g.e2dnde.quantity.ravel().to_value("GeV cm-2 s-1"), t["e2dnde"], rtol=1e-6)


def test_cli_fit_and_sample(tmp_path, capsys, real_hese_dir, mc):
    write_hese_mc(tmp_path / "mc", mc)
    data = str(real_hese_dir / "HESE_data.json")
    rc = main(
        [
            "fit",
            "diffuse",
            "--data",
            data,
            "--mc",
            str(tmp_path / "mc"),
            "--fix",
            "muon_norm=1.2",
            "--likelihood",
            "poisson",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["muon_norm"] == 1.2 and out["converged"] and math.isfinite(out["neg_llh"])
    assert {"astro_gamma", "astro_norm", "prompt_norm", "epsilon_dom"} <= set(out)
    rc = main(
        [
            "sample",
            "diffuse",
            "--data",
            data,
            "--mc",
            str(tmp_path / "mc"),
            "--chains",
            "2",
            "--draws",
            "60",
            "--warmup",
            "60",
            "--seed",
            "1",
            "--max-tree-depth",
            "3",
            "--out",
            str(tmp_path / "post.nc"),
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert {"mean", "sd", "q5", "q95", "r_hat", "ess_bulk"} <= set(out["params"]["astro_gamma"])
    assert (tmp_path / "post.nc").exists() and "divergences" in out
    stats = load_netcdf(tmp_path / "post.nc")["sample_stats"]
    assert int(stats["tree_depth"].max()) <= 3 and int(stats["n_steps"].max()) <= 7
    assert main(["fit", "diffuse", "--data", data, "--mc", str(tmp_path / "mc"), "--fix", "bogus"]) == 2


def test_card_runner_and_plots(tmp_path, real_hese_dir):
    section = {
        "data": str(real_hese_dir / "HESE_data.json"),
        "mc": "simulated",
        "simulation": {"n_neutrino": 8000, "n_muon": 200, "seed": 4},
        "sample": {"chains": 2, "draws": 50, "warmup": 50, "seed": 2},
        "profile_scan": {"gamma": [2.3, 3.3, 3], "norm": [3.0, 9.0, 3]},
        "plots": True,
    }
    res = run_diffuse_card(section, tmp_path)
    for name in (
        "fit.json",
        "posterior.nc",
        "energy_projection.png",
        "contours.png",
        "corner.png",
        "summary.json",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "NOT IceCube" in res["notes"][0]
    with pytest.raises(ConfigError, match="unknown key"):
        run_diffuse_card({"bogus": 1}, tmp_path)
    bad = dict(section, sample={"chains": 2, "tree_depth": 3}, profile_scan=None, plots=False)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['tree_depth'\] in sample"):
        run_diffuse_card(bad, tmp_path)


@pytest.mark.slow
def test_coverage_2d_wilks(mc):
    """Coverage of the 68.3% 2D Wilks region of (astro_gamma, astro_norm), 60 pseudo-experiments."""
    probe = DiffuseAnalysis(
        read_placeholder(), mc, fixed={"kpi_ratio": 1.0, "nunubar_ratio": 1.0, "cr_delta_gamma": -0.05}
    )
    truth = dict(PUBLISHED_BEST_FIT, kpi_ratio=1.0, nunubar_ratio=1.0, cr_delta_gamma=-0.05)
    w = sum(probe.component_event_weights(truth).values())
    level = wilks_threshold(SIGMA_LEVELS[0], 2)
    inside = []
    for seed in range(60):
        data = sample_events(HESEMonteCarlo(probe.mc_fields), w, seed=1000 + seed)
        a = DiffuseAnalysis(data, mc, fixed=probe.fixed, likelihood="poisson")
        best = a.fit(compute_errors=False, split_epsilon_dom=False).neg_llh
        at_truth = a.fit(
            fixed={"astro_gamma": truth["astro_gamma"], "astro_norm": truth["astro_norm"]},
            compute_errors=False,
        ).neg_llh
        inside.append(at_truth - best <= level)
    frac = float(np.mean(inside))
    assert 0.68 - 3 * math.sqrt(0.68 * 0.32 / 60) < frac < 0.68 + 3 * math.sqrt(0.68 * 0.32 / 60)
