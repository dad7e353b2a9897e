"""Point-source sensitivity and discovery potential versus declination: table, plot, CLI.

A small simulated IC40 release (6000 events) and few trials (200 background trials and
100 signal trials per injection point at each declination) keep the module fast; the
numbers are rough but the physics is clear-cut: the simulated detector's southern sky
(atmospheric muons, an effective area that only opens at high energy) needs a flux more
than ten times larger than its northern sky.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

from bayesnu.analyses import ps_frequentist as pf
from bayesnu.analyses.point_source import PointSourceAnalysis, Source
from bayesnu.data.ps_release import load_ps_release
from bayesnu.errors import ConfigError

RA = 150.0
DECS = [-30.0, 30.0]
TRIALS = {"n_background": 200, "n_signal": 100, "n_boot": 10, "seed": 5}
PHI0 = u.Unit("GeV-1 cm-2 s-1")
E2DNDE = u.Unit("GeV cm-2 s-1")


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bayesnu.data.simulate import simulate_release

    out = tmp_path_factory.mktemp("pscurve") / "rel"
    simulate_release(out, seasons=["IC40"], seed=3, n_events=6000)
    return out


@pytest.fixture(scope="module")
def ana(sim_dir: Path) -> PointSourceAnalysis:
    return PointSourceAnalysis(load_ps_release(sim_dir, "IC40"), Source(RA, 0.0, "sim"))


@pytest.fixture(scope="module")
def curve(ana: PointSourceAnalysis) -> Table:
    return pf.sensitivity_curve(ana, DECS, gamma=2.0, **TRIALS)


def test_table_columns_units_and_conversion(curve: Table, ana: PointSourceAnalysis) -> None:
    assert list(curve["dec_deg"]) == DECS
    assert curve["dec_deg"].unit == u.deg
    np.testing.assert_allclose(curve["sin_dec"], np.sin(np.radians(DECS)))
    for p in ("sens_", "disc3sigma_", "disc5sigma_"):
        for c in ("ns", "ns_err", "phi0", "phi0_err", "e2dnde", "e2dnde_err"):
            assert p + c in curve.colnames
            assert np.all(np.isfinite(curve[p + c])) and np.all(np.asarray(curve[p + c]) > 0)
        assert curve[p + "phi0"].unit == PHI0 and curve[p + "phi0_err"].unit == PHI0
        assert curve[p + "e2dnde"].unit == E2DNDE and curve[p + "e2dnde_err"].unit == E2DNDE
        # E0^2 Phi0 with E0 = 1 TeV; the errors convert like the values (linear in ns)
        np.testing.assert_allclose(curve[p + "e2dnde"], 1e6 * np.asarray(curve[p + "phi0"]), rtol=1e-12)
        np.testing.assert_allclose(
            np.asarray(curve[p + "phi0_err"]) / np.asarray(curve[p + "phi0"]),
            np.asarray(curve[p + "ns_err"]) / np.asarray(curve[p + "ns"]),
            rtol=1e-9,
        )
    # the flux is the analysis' own ns -> Phi0 conversion at each declination
    for row in curve:
        at = ana.with_source(Source(RA, float(row["dec_deg"])))
        assert row["sens_phi0"] == pytest.approx(at.flux_norm(row["sens_ns"], 2.0), rel=1e-9)
        assert row["ns_per_phi0"] == pytest.approx(np.exp(at.log_yield_total(2.0)), rel=1e-9)
    assert curve.meta["gamma"] == 2.0 and curve.meta["e0_gev"] == 1000.0
    assert curve.meta["seasons"] == "IC40" and curve.meta["seed"] == TRIALS["seed"]
    assert curve.meta["n_background"] == 200 and curve.meta["n_signal"] == 100


def test_physical_behaviour(curve: Table) -> None:
    south, north = curve[0], curve[1]
    # the detector yield per unit flux is far larger in the north (E^-2, 1 TeV normalisation)
    assert north["ns_per_phi0"] > 5 * south["ns_per_phi0"]
    # ... so the sensitivity flux is lower there (measured: 3.3e-9 vs 5.3e-8 GeV cm-2 s-1)
    assert north["sens_e2dnde"] < 0.2 * south["sens_e2dnde"]
    for row in curve:
        # a handful of events in both hemispheres (low-background regime)
        assert 0.5 < row["sens_ns"] < 10
        # TS thresholds: median background TS <= 3 sigma <= 5 sigma
        assert row["ts_median"] < row["disc3sigma_ts"] < row["disc5sigma_ts"]
        # a higher threshold needs more signal (within the bootstrap errors)
        err = np.hypot(row["disc3sigma_ns_err"], row["disc5sigma_ns_err"])
        assert row["disc5sigma_ns"] > row["disc3sigma_ns"] - 2 * err
        assert row["disc5sigma_e2dnde"] > 0


def test_plot_writes_png(curve: Table, tmp_path: Path) -> None:
    from bayesnu.plotting.sensitivity import curve_quantities, plot_sensitivity_curve

    assert [p for p, _ in curve_quantities(curve)] == ["sens_", "disc3sigma_", "disc5sigma_"]
    path = tmp_path / "curve.png"
    ax = plot_sensitivity_curve(curve, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ax.get_yscale() == "log" and ax.get_xlim() == (-1.0, 1.0)
    assert len(ax.get_lines()) == 3 and len(ax.collections) == 3  # lines and their bands
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), curve["sens_e2dnde"])
    ax = plot_sensitivity_curve(curve, flux="phi0", n_err=0)
    assert len(ax.collections) == 0
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), curve["sens_phi0"])
    with pytest.raises(ConfigError, match="flux must be one of"):
        plot_sensitivity_curve(curve, flux="nope")
    with pytest.raises(ConfigError, match="no '\\*_e2dnde' flux columns"):
        plot_sensitivity_curve(curve[["dec_deg", "sens_ns", "sens_ns_err"]])


def test_seed_reproducibility(curve: Table, ana: PointSourceAnalysis) -> None:
    """Row i depends on (seed, i): the first row alone is reproduced exactly; another seed differs."""
    again = pf.sensitivity_curve(ana, DECS[:1], gamma=2.0, discovery_sigmas=(), **TRIALS)
    for c in ("ts_median", "sens_ns", "sens_ns_err", "sens_phi0", "sens_e2dnde_err"):
        assert again[c][0] == curve[c][0]
    other = pf.sensitivity_curve(ana, DECS[:1], gamma=2.0, discovery_sigmas=(), **{**TRIALS, "seed": 6})
    assert other["sens_ns"][0] != curve["sens_ns"][0]
    # ... but agrees within the stated uncertainties
    assert abs(other["sens_ns"][0] - curve["sens_ns"][0]) < 4 * np.hypot(
        other["sens_ns_err"][0], curve["sens_ns_err"][0]
    )


def test_bad_declinations(ana: PointSourceAnalysis) -> None:
    with pytest.raises(ConfigError, match="dec_deg is empty"):
        pf.sensitivity_curve(ana, [], **TRIALS)
    with pytest.raises(ConfigError, match="outside the sky"):
        pf.sensitivity_curve(ana, [0.0, 95.0], **TRIALS)


def test_cli_dec_grid(
    sim_dir: Path, curve: Table, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--dec-grid``: the table written to ECSV is the API's table for the same seed, plus a PNG."""
    from bayesnu.cli import main

    out, png = tmp_path / "curve.ecsv", tmp_path / "curve.png"
    args = ["sensitivity", "point-source", "--data", str(sim_dir), "--ra", str(RA), "--dec-grid", "-30,30",
            "--n-background", "200", "--n-signal", "100", "--n-boot", "10", "--seed", "5",
            "--out", str(out), "--plot", str(png), "--json"]  # fmt: skip
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["out"] == str(out) and res["plot"] == str(png) and res["e0_gev"] == 1000.0
    assert [r["dec_deg"] for r in res["rows"]] == DECS
    table = Table.read(out)
    assert table["sens_e2dnde"].unit == E2DNDE
    for c in ("sens_ns", "sens_ns_err", "sens_phi0", "disc3sigma_ns", "disc5sigma_e2dnde_err"):
        np.testing.assert_array_equal(np.asarray(table[c]), np.asarray(curve[c]))
        assert [r[c] for r in res["rows"]] == list(np.asarray(curve[c]))
    assert png.read_bytes()[:4] == b"\x89PNG"
    # --plot / --out belong to a curve; without --dec-grid or --dec the command says what to give
    base = ["sensitivity", "point-source", "--data", str(sim_dir), "--ra", str(RA)]
    assert main([*base, "--dec", "0", "--plot", str(png)]) == 2
    assert "give --dec-grid too" in capsys.readouterr().err
    assert main(base) == 2
    assert "--dec-grid" in capsys.readouterr().err
