"""Point-source analysis end to end: fit, profiles, NUTS, CLI, model card, bad input, calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bayesnu.analyses.point_source import PointSourceAnalysis, PSPriors, Source
from bayesnu.analyses.priors import Prior
from bayesnu.analyses.ps_inputs import season_models
from bayesnu.data.ps_release import load_ps_release
from bayesnu.errors import ConfigError

SRC = (150.0, 20.0)
PHI = 2.5e-14  # Phi0 at 1 TeV [GeV^-1 cm^-2 s^-1]; about 13 events in a 20k-event IC40-like season


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bayesnu.data.simulate import SourceSpec, simulate_release

    out = tmp_path_factory.mktemp("ps") / "rel"
    simulate_release(out, seasons=["IC40"], seed=21, n_events=20000, sources=[SourceSpec(*SRC, PHI, 2.0)])
    return out


@pytest.fixture(scope="module")
def truth(sim_dir: Path) -> dict:
    rec = json.loads((sim_dir / "simulation.json").read_text())["sources"][0]
    return {"ns": rec["expected_total"], "injected": rec["injected_total"], "gamma": 2.0}


@pytest.fixture(scope="module")
def models(sim_dir: Path):
    return season_models(load_ps_release(sim_dir, "IC40", require_smearing=True))


@pytest.fixture(scope="module")
def ana(models) -> PointSourceAnalysis:
    return PointSourceAnalysis(models, Source(*SRC, "sim"))


def test_fit_recovers_injected_source(ana: PointSourceAnalysis, truth: dict) -> None:
    fit = ana.fit()
    assert fit.converged
    assert fit.ts > 25
    assert abs(fit.ns - truth["injected"]) < 3 * np.sqrt(truth["injected"]) + 2
    assert abs(fit.gamma - 2.0) < 0.4
    assert fit.flux_norm == pytest.approx(ana.flux_norm(fit.ns, fit.gamma))
    assert fit.e2dnde == pytest.approx(fit.flux_norm * 1e6)
    assert 0 < fit.pvalue_wilks < 1e-6 and fit.sigma_wilks > 5
    assert fit.ns_per_season == {"IC40": pytest.approx(fit.ns)}
    # Flux conversion is the inverse of the yield.
    assert ana.ns_from_flux(fit.flux_norm, fit.gamma) == pytest.approx(fit.ns)


def test_fixed_gamma_and_profiles(ana: PointSourceAnalysis) -> None:
    fit = ana.fit()
    fixed = ana.fit(gamma_fixed=fit.gamma)
    assert fixed.ts == pytest.approx(fit.ts, abs=1e-4)
    prof = ana.profile("ns", np.linspace(0, 2 * fit.ns, 21))
    assert prof["delta_ts"].min() == pytest.approx(0.0, abs=0.05)
    assert prof["delta_ts"][0] == pytest.approx(fit.ts, rel=1e-6)  # ns = 0 is the null hypothesis
    pg = ana.profile("gamma", [fit.gamma - 0.5, fit.gamma, fit.gamma + 0.5])
    assert (
        pg["delta_ts"][1] == pytest.approx(0.0, abs=1e-3) and pg["delta_ts"][0] > 0 and pg["delta_ts"][2] > 0
    )
    pf = ana.profile("flux_norm", [fit.flux_norm])
    assert pf["delta_ts"][0] == pytest.approx(0.0, abs=0.05)
    with pytest.raises(ConfigError, match="cannot profile"):
        ana.profile("sigma", [1.0])


def test_event_selection_does_not_change_the_result(models) -> None:
    box = PointSourceAnalysis(models, Source(*SRC), selection_deg=10.0).fit()
    full = PointSourceAnalysis(models, Source(*SRC), selection_deg=None).fit()
    assert box.ts == pytest.approx(full.ts, abs=1e-6)
    assert box.ns == pytest.approx(full.ns, abs=1e-5)
    assert box.gamma == pytest.approx(full.gamma, abs=1e-5)


def test_bad_input(models, sim_dir: Path) -> None:
    with pytest.raises(ConfigError, match="outside the sky"):
        Source(10.0, 91.0)
    with pytest.raises(ConfigError, match="outside"):
        Source(-5.0, 10.0)
    with pytest.raises(ConfigError, match="does not exist"):
        load_ps_release(sim_dir, "IC41")
    with pytest.raises(ConfigError, match="event selection is empty"):
        PointSourceAnalysis(models, Source(*SRC), selection_deg=1e-4)
    with pytest.raises(ConfigError, match="inverted"):
        PointSourceAnalysis(models, Source(*SRC), gamma_bounds=(3.0, 2.0))
    ana = PointSourceAnalysis(models, Source(*SRC))
    with pytest.raises(ConfigError, match="no mass"):
        ana.sample(chains=1, draws=10, warmup=10, priors=PSPriors(gamma=Prior("uniform", low=5.0, high=6.0)))
    with pytest.raises(ConfigError, match="extends beyond"):
        ana.sample(chains=1, draws=10, warmup=10, priors=PSPriors(gamma=Prior("uniform", low=0.5, high=3.0)))


def test_nuts_posterior_groups_and_derived(ana: PointSourceAnalysis) -> None:
    dt = ana.sample(chains=2, draws=300, warmup=300, seed=3)
    assert {"posterior", "sample_stats", "observed_data"} <= set(dt.children)
    post = dt["posterior"]
    for v in ("ns", "gamma", "flux_norm", "e2dnde", "ns_season"):
        assert v in post.data_vars
    assert list(post["ns_season"].coords["season"].values) == ["IC40"]
    np.testing.assert_allclose(post["e2dnde"].values, post["flux_norm"].values * 1e6)
    ns = post["ns"].values.ravel()
    flux = np.array([ana.flux_norm(n, g) for n, g in zip(ns[:50], post["gamma"].values.ravel()[:50])])
    np.testing.assert_allclose(post["flux_norm"].values.ravel()[:50], flux, rtol=1e-6)
    assert int(dt["observed_data"]["n_events_season"].values[0]) == ana.n_events
    assert int(dt["sample_stats"]["diverging"].values.sum()) == 0


def test_flux_prior_and_position_prior(ana: PointSourceAnalysis) -> None:
    fit = ana.fit()
    pri = PSPriors(flux_norm=Prior("loguniform", low=1e-17, high=1e-12), position_sigma_deg=1.0)
    dt = ana.sample(chains=1, draws=300, warmup=300, seed=4, priors=pri)
    post = dt["posterior"]
    assert {"flux_norm", "ns", "ra_deg", "dec_deg"} <= set(post.data_vars)
    # The data pull the position to the injected source.
    assert (
        abs(float(post["ra_deg"].mean()) - SRC[0]) < 0.5 and abs(float(post["dec_deg"].mean()) - SRC[1]) < 0.5
    )
    assert float(np.median(post["ns"].values)) == pytest.approx(fit.ns, rel=0.5)


def test_free_background_matches_profiled(ana: PointSourceAnalysis) -> None:
    prof = ana.sample(chains=1, draws=400, warmup=300, seed=5)
    free = ana.sample(chains=1, draws=400, warmup=300, seed=5, priors=PSPriors(background="free"))
    assert "nb" in free["posterior"].data_vars
    m1, m2 = float(prof["posterior"]["ns"].mean()), float(free["posterior"]["ns"].mean())
    sd = float(prof["posterior"]["ns"].std())
    assert abs(m1 - m2) < 0.5 * sd


def test_cli_fit_and_sample(sim_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bayesnu.cli import main

    args = ["--data", str(sim_dir), "--seasons", "IC40", "--ra", str(SRC[0]), "--dec", str(SRC[1])]
    assert main(["fit", "point-source", *args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    keys = ("ts", "ns", "gamma", "flux_norm", "e0_gev", "pvalue_wilks", "sigma_wilks", "converged")
    for k in (*keys, "n_events", "livetime_days"):
        assert k in out
    assert out["e0_gev"] == 1000.0 and out["n_events"] == 20000 and out["ts"] > 25
    nc = tmp_path / "post.nc"
    assert main(["sample", "point-source", *args, "--chains", "2", "--draws", "200", "--warmup", "200",
                 "--seed", "1", "--out", str(nc), "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    for name in ("ns", "gamma"):
        assert set(out[name]) >= {"mean", "sd", "q05", "q95", "r_hat", "ess_bulk"}
    assert out["divergences"] == 0 and nc.exists()
    assert main(["fit", "point-source", "--data", str(sim_dir), "--ra", "10", "--dec", "95"]) == 2
    assert "outside the sky" in capsys.readouterr().err


def test_model_card_run(sim_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bayesnu.config import run_card

    monkeypatch.setenv("BAYESNU_CACHE", str(tmp_path / "cache"))
    card = yaml.safe_load(Path("models/point_source_demo.yaml").read_text())
    card["data"].update({"seasons": ["IC40"], "n_events": 15000})
    card["sampling"].update({"chains": 2, "draws": 200, "warmup": 200})
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(card))
    res = run_card(path, tmp_path / "out")
    for f in ("fit.json", "posterior.nc", "summary.ecsv", "corner.png", "trace.png", "rank.png", "card.yaml"):
        assert (tmp_path / "out" / f).stat().st_size > 0, f
    assert res["provenance"]["simulated"] is True
    from astropy.table import Table

    t = Table.read(tmp_path / "out" / "summary.ecsv", format="ascii.ecsv")
    assert list(t["parameter"]) == ["ns", "gamma", "flux_norm", "e2dnde"]
    assert t["truth"][1] == 2.2
    # A second run reuses the cached simulation.
    sims = list((tmp_path / "cache" / "simulated").iterdir())
    run_card(path, tmp_path / "out2")
    assert list((tmp_path / "cache" / "simulated").iterdir()) == sims


def test_bad_model_cards(tmp_path: Path) -> None:
    from bayesnu.config import run_card

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "analysis: point_source\nname: x\ndata: {kind: simulated}\nsource: {ra_deg: 1, dec_deg: 2}\nfoo: 1\n"
    )
    with pytest.raises(ConfigError, match="foo"):
        run_card(bad)
    bad.write_text("analysis: nonsense\n")
    with pytest.raises(ConfigError, match="analysis"):
        run_card(bad)
    bad.write_text("analysis: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        run_card(bad)
    bad.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError):
        run_card(bad)


@pytest.mark.slow
def test_sbc_small(models) -> None:
    """Rank statistics of (ns, gamma) over simulated data sets from the prior are uniform."""
    from bayesnu.analyses.ps_calibration import run_sbc

    res = run_sbc(models, Source(*SRC), 40, seed=2, method="grid", ns_prior=(0.0, 30.0))
    for name in ("ns", "gamma"):
        assert res.uniformity[name].pvalue > 0.01, (name, res.uniformity[name])
        for cov in res.coverage[name]:
            assert cov.consistent(3.0), (name, cov)


@pytest.mark.realdata
@pytest.mark.slow
def test_nuts_matches_grid_posterior_on_real_ic40(
    real_ps_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """NUTS posterior means agree with the brute-force grid posterior within 2% of the sd."""
    from bayesnu.analyses.ps_calibration import grid_posterior
    from bayesnu.data.simulate import simulate_release

    d = tmp_path_factory.mktemp("ic40") / "rel"
    simulate_release(d, seasons=["IC40"], complete_from=real_ps_dir, seed=11)
    rel = load_ps_release(d, "IC40", require_smearing=True)
    pri = PSPriors(ns=Prior("uniform", low=0.0, high=30.0))
    ana = PointSourceAnalysis(rel, Source(77.36, 5.69, "TXS 0506+056"), priors=pri)
    dt = ana.sample(chains=4, draws=15000, warmup=1000, seed=11)
    gp = grid_posterior(ana.inputs, (0.0, 30.0), (1.0, 4.0), n_ns=601, n_gamma=601)
    for name in ("ns", "gamma"):
        draws = dt["posterior"][name].values.ravel()
        assert abs(draws.mean() - gp.mean(name)) < 0.02 * gp.sd(name), (
            name,
            draws.mean(),
            gp.mean(name),
            gp.sd(name),
        )
        assert draws.std() == pytest.approx(gp.sd(name), rel=0.03)
