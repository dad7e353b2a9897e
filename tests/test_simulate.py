"""Release simulator: formats, truth, reproducibility, completion of real releases, SkyLLH loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bayesnu.cli import main
from bayesnu.data.ps_formats import read_events, read_smearing, read_uptime
from bayesnu.data.ps_release import load_ps_release, release_info
from bayesnu.data.simulate import SEASON_TIMES, TRUTH_FILE, SourceSpec, simulate_release
from bayesnu.data.sky import equatorial_to_local
from bayesnu.errors import ConfigError
from tests.conftest import require_peer

SRC = SourceSpec(ra_deg=150.0, dec_deg=30.0, flux_norm=6e-14, gamma=2.0)
KW = {"seed": 7, "n_events": 3000, "n_mc": 600}


@pytest.fixture(scope="module")
def sim10(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim10") / "icecube_10year_ps"
    return simulate_release(out, seasons="IC40,IC86_II", sources=[SRC], **KW)


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _separation_deg(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    r, d, r0, d0 = np.radians(ra), np.radians(dec), np.radians(ra0), np.radians(dec0)
    c = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(r - r0)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


# ---------------------------------------------------------------------------- layout and truth


def test_layout_loads_and_truth(sim10: Path) -> None:
    expected = {
        "events/IC40_exp.csv", "events/IC86_II_exp.csv", "uptime/IC40_exp.csv", "uptime/IC86_II_exp.csv",
        "irfs/IC40_effectiveArea.csv", "irfs/IC40_smearing.csv", "irfs/IC86_II_effectiveArea.csv",
        "irfs/IC86_II_smearing.csv", TRUTH_FILE,
    }  # fmt: skip
    assert set(_files(sim10)) == expected
    rel = load_ps_release(sim10, require_smearing=True)
    assert rel.spec.key == "10y" and rel.season_names == ("IC40", "IC86_II")
    truth = json.loads((sim10 / TRUTH_FILE).read_text())
    for s in rel:
        assert s.n_events == 3000 and s.n_outside_uptime == 0
        # Inside the season's energy binning (SkyLLH refuses events outside it).
        edges = s.spec.log10_energy_edges
        assert edges[0] <= s.events.log10_energy.min() and s.events.log10_energy.max() <= edges[-1]
        assert abs(s.livetime_days - SEASON_TIMES[s.name][1]) < 1e-4
        assert s.smearing.shape == (35, 3, 10, 5, 4)
        t = truth["seasons"][s.name]
        assert t["n_events"] == 3000 and t["n_background"] + t["n_signal"] == 3000
    src = truth["sources"][0]
    assert src["ra_deg"] == 150.0 and src["flux_norm_gev_cm2_s"] == 6e-14
    assert src["injected_total"] == sum(truth["seasons"][n]["n_signal"] for n in ("IC40", "IC86_II"))
    assert src["injected_total"] == sum(src["injected_per_season"].values())
    assert abs(src["injected_total"] - src["expected_total"]) < 5 * np.sqrt(src["expected_total"])
    assert truth["model_version"] and truth["seed"] == 7
    info = release_info(sim10)
    assert info["seasons"]["IC40"] == {
        "n_events": 3000,
        "livetime_days": pytest.approx(SEASON_TIMES["IC40"][1], abs=1e-4),
        "events": True,
        "effective_area": True,
        "smearing": True,
        "uptime": True,
    }


def test_local_coordinates_and_time_order(sim10: Path) -> None:
    ev = read_events(sim10 / "events" / "IC86_II_exp.csv")
    az, zen = equatorial_to_local(ev.ra_deg, ev.dec_deg, ev.mjd)
    np.testing.assert_allclose(zen, ev.zenith_deg, atol=1.5e-3)
    daz = (ev.azimuth_deg - az + 180.0) % 360.0 - 180.0
    assert np.abs(daz).max() < 2e-3
    assert np.all(np.diff(ev.mjd) >= 0)
    assert read_uptime(sim10 / "uptime" / "IC86_II_exp.csv").contains(ev.mjd).all()
    assert ev.ang_err_deg.min() >= 0.2


def test_injected_source_is_where_it_was_put(sim10: Path) -> None:
    rel = load_ps_release(sim10)
    ev = rel["IC86_II"].events
    truth = json.loads((sim10 / TRUTH_FILE).read_text())
    n_sig = truth["seasons"]["IC86_II"]["n_signal"]
    assert n_sig > 40
    psi = _separation_deg(ev.ra_deg, ev.dec_deg, SRC.ra_deg, SRC.dec_deg)
    near = psi < 2.0
    # Background expectation: events in the same declination band, scaled by solid angle.
    band = np.abs(ev.dec_deg - SRC.dec_deg) < 2.0
    band_sr = 2 * np.pi * (np.sin(np.radians(32.0)) - np.sin(np.radians(28.0)))
    cap_sr = 2 * np.pi * (1 - np.cos(np.radians(2.0)))
    b = (band.sum() - near.sum()) * cap_sr / (band_sr - cap_sr)
    excess = near.sum() - b
    assert excess > 0.7 * n_sig and excess > 5 * np.sqrt(b + 1)
    # Centred on the source: inverse-variance weighted mean position of the events within 2 deg.
    w = 1.0 / ev.ang_err_deg[near] ** 2
    ra_c = np.sum(w * ev.ra_deg[near]) / w.sum()
    dec_c = np.sum(w * ev.dec_deg[near]) / w.sum()
    assert _separation_deg(np.array([ra_c]), np.array([dec_c]), SRC.ra_deg, SRC.dec_deg)[0] < 0.3
    # Signal is harder than the background.
    assert np.median(ev.log10_energy[psi < 0.7]) > np.median(ev.log10_energy[band & ~near]) + 0.5


# ---------------------------------------------------------------------------- reproducibility


def test_same_seed_identical_files(sim10: Path, tmp_path: Path) -> None:
    again = simulate_release(tmp_path / "again", seasons="IC40,IC86_II", sources=[SRC], **KW)
    assert _files(again) == _files(sim10)
    # IC40's response and uptime depend only on (seed, season), not on the other seasons.
    alone = simulate_release(tmp_path / "alone", seasons="IC40", **KW)
    for rel in ("uptime/IC40_exp.csv", "irfs/IC40_smearing.csv", "irfs/IC40_effectiveArea.csv"):
        assert (alone / rel).read_bytes() == (sim10 / rel).read_bytes()
    other = simulate_release(tmp_path / "other", seasons="IC40", **{**KW, "seed": 8})
    assert (other / "events/IC40_exp.csv").read_bytes() != (alone / "events/IC40_exp.csv").read_bytes()
    assert (other / "uptime/IC40_exp.csv").read_bytes() != (alone / "uptime/IC40_exp.csv").read_bytes()


def test_refuses_to_overwrite_and_bad_sources(sim10: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="already holds release files"):
        simulate_release(sim10, seasons="IC40", **KW)
    with pytest.raises(ConfigError, match="RA,DEC,FLUX,GAMMA"):
        SourceSpec.parse("10,20,1e-15")
    with pytest.raises(ConfigError, match="outside"):
        SourceSpec.parse("10,95,1e-15,2")
    with pytest.raises(ConfigError, match="does not exist"):
        simulate_release(tmp_path / "x", seasons="IC99", **KW)
    with pytest.raises(ConfigError, match="holds only"):
        simulate_release(tmp_path / "y", seasons="IC86_II", sources=[SRC], **{**KW, "n_events": 5})


# ---------------------------------------------------------------------------- 14-year layout


@pytest.fixture(scope="module")
def sim14(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim14") / "icecube_14year_ps"
    src = SourceSpec(ra_deg=40.67, dec_deg=-0.01, flux_norm=5e-14, gamma=2.2)
    return simulate_release(
        out, release="14y", seasons="IC40,IC86_I,IC86_II", sources=[src], seed=3, n_events=2000, n_mc=300
    )


def test_14y_layout(sim14: Path) -> None:
    names = set(_files(sim14))
    assert {"irfs/IC86_effectiveArea.csv", "irfs/IC86_smearing.csv", "events/IC86_II_exp.csv"} <= names
    assert not any("IC86_I_" in n and n.startswith("irfs/") for n in names)
    header = (sim14 / "events" / "IC86_I_exp.csv").read_text().splitlines()[0]
    assert header.startswith("# Run Event SubEvent MJD[days]")
    ev = read_events(sim14 / "events" / "IC86_I_exp.csv")
    assert ev.has_ids and np.all(ev.subevent == 0)
    key = ev.run * 10**9 + ev.event
    assert len(np.unique(key)) == len(ev)
    rel = load_ps_release(sim14)
    assert rel.spec.key == "14y" and len(rel) == 3
    assert rel["IC86_I"].smearing is rel["IC86_II"].smearing
    assert read_smearing(sim14 / "irfs" / "IC86_smearing.csv").shape[1] == 8


# ---------------------------------------------------------------------------- completing a real release


@pytest.mark.realdata
def test_complete_real_ic40(real_ps_dir: Path, tmp_path: Path) -> None:
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in real_ps_dir.rglob("*")}
    out = simulate_release(
        tmp_path / "icecube_10year_ps",
        seasons="IC40,IC59",
        complete_from=real_ps_dir,
        seed=1,
        n_events=2000,
        n_mc=400,
    )
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in real_ps_dir.rglob("*")}
    assert before == after
    for rel in ("events/IC40_exp.csv", "uptime/IC40_exp.csv", "irfs/IC40_effectiveArea.csv",
                "uptime/IC59_exp.csv", "irfs/IC59_effectiveArea.csv"):  # fmt: skip
        assert (out / rel).read_bytes() == (real_ps_dir / rel).read_bytes(), rel
    truth = json.loads((out / TRUTH_FILE).read_text())
    assert truth["files"]["events/IC40_exp.csv"] == "copied"
    assert truth["files"]["irfs/IC40_smearing.csv"] == "simulated"
    assert truth["files"]["events/IC59_exp.csv"] == "simulated"
    rel = load_ps_release(out, require_smearing=True)
    assert rel["IC40"].n_events == 36900 and rel["IC59"].n_events == 2000
    assert rel["IC40"].smearing is not None


def test_complete_from_guards(tmp_path: Path) -> None:
    src = tmp_path / "partial"
    (src / "events").mkdir(parents=True)
    (src / "events" / "IC40_exp.csv").write_text(
        "# MJD[days] log10(E/GeV) AngErr[deg] RA[deg] Dec[deg] Azimuth[deg] Zenith[deg]\n"
    )
    with pytest.raises(ConfigError, match="never written"):
        simulate_release(src / "inside", seasons="IC40", complete_from=src, **KW)
    assert not (src / "inside").exists()
    with pytest.raises(ConfigError, match="no good-run list"):
        simulate_release(tmp_path / "out1", seasons="IC40", complete_from=src, **KW)
    assert not (tmp_path / "out1").exists()  # validated before anything is written
    (src / "uptime").mkdir()
    (src / "uptime" / "IC40_exp.csv").write_text("# MJD_start[days] MJD_stop[days]\n 54562.0 54563.0\n")
    with pytest.raises(ConfigError, match="cannot inject sources into the real events"):
        simulate_release(tmp_path / "out2", seasons="IC40", complete_from=src, sources=[SRC], **KW)
    assert not (tmp_path / "out2").exists()


# ---------------------------------------------------------------------------- CLI


def test_cli_simulate_json(tmp_path: Path, capsys) -> None:
    rc = main(["data", "simulate", "--out", str(tmp_path / "r"), "--seasons", "IC79", "--seed", "2",
               "--n-events", "500", "--n-mc", "100", "--source", "10,20,1e-13,2.5", "--json"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    obj = json.loads(out)
    assert obj["seasons"]["IC79"]["n_events"] == 500 and obj["sources"][0]["gamma"] == 2.5
    assert Path(obj["truth_file"]).is_file()
    rc = main(["data", "simulate", "--out", str(tmp_path / "r"), "--seasons", "IC79", "--json"])
    assert rc == 2 and "already holds" in capsys.readouterr().err


# ---------------------------------------------------------------------------- SkyLLH


@pytest.mark.peer
def test_skyllh_loads_and_fits_simulated_10y(sim10: Path) -> None:
    require_peer("skyllh")
    from skyllh.analyses.i3.publicdata_ps.smearing_matrix import PDSmearingMatrix
    from skyllh.analyses.i3.publicdata_ps.time_integrated_ps import create_analysis
    from skyllh.core.config import Config
    from skyllh.core.random import RandomStateService
    from skyllh.core.source_model import PointLikeSource
    from skyllh.datasets.i3 import PublicData_10y_ps

    cfg = Config()
    dsc = PublicData_10y_ps.create_dataset_collection(
        cfg, base_path=str(sim10.parent), sub_path_fmt=sim10.name
    )
    datasets = dsc.get_datasets(["IC40", "IC86_II"])
    for ds in datasets:
        sm = PDSmearingMatrix(ds.get_abs_pathfilename_list(ds.get_aux_data_definition("smearing_datafile")))
        assert sm.histogram.shape == (35, 3, 10, 5, 4)
    ana = create_analysis(
        cfg, datasets, PointLikeSource(ra=np.radians(SRC.ra_deg), dec=np.radians(SRC.dec_deg))
    )
    ts, params, _ = ana.unblind(RandomStateService(seed=1))
    n_sig = json.loads((sim10 / TRUTH_FILE).read_text())["sources"][0]["injected_total"]
    assert ts > 25.0
    assert abs(params["ns"] - n_sig) < 0.35 * n_sig
    # SkyLLH's own signal generator samples from the simulated smearing matrices.
    trials = ana.do_trials(rss=RandomStateService(seed=2), n=2, mean_n_sig=15, ppbar=None)
    assert np.all(trials["ts"] > 0)


@pytest.mark.peer
def test_skyllh_loads_simulated_14y(sim14: Path) -> None:
    require_peer("skyllh")
    from skyllh.analyses.i3.publicdata_ps.time_integrated_ps import create_analysis
    from skyllh.core.config import Config
    from skyllh.core.random import RandomStateService
    from skyllh.core.source_model import PointLikeSource
    from skyllh.datasets.i3 import PublicData_14y_ps_v2

    cfg = Config()
    dsc = PublicData_14y_ps_v2.create_dataset_collection(
        cfg, base_path=str(sim14.parent), sub_path_fmt=sim14.name
    )
    ana = create_analysis(
        cfg,
        dsc.get_datasets(["IC40", "IC86_I", "IC86_II"]),
        PointLikeSource(np.radians(40.67), np.radians(-0.01)),
    )
    ts, params, _ = ana.unblind(RandomStateService(seed=1))
    assert np.isfinite(ts) and params["ns"] > 1.0


@pytest.mark.peer
@pytest.mark.realdata
def test_skyllh_runs_on_real_ic40_completed(real_ps_dir: Path, tmp_path: Path) -> None:
    """Real IC40 events + simulated IC40 smearing: SkyLLH's analysis runs at NGC 1068."""
    require_peer("skyllh")
    from skyllh.analyses.i3.publicdata_ps.time_integrated_ps import create_analysis
    from skyllh.core.config import Config
    from skyllh.core.random import RandomStateService
    from skyllh.core.source_model import PointLikeSource
    from skyllh.datasets.i3 import PublicData_10y_ps

    out = simulate_release(
        tmp_path / "icecube_10year_ps", seasons="IC40", complete_from=real_ps_dir, n_mc=500
    )
    cfg = Config()
    dsc = PublicData_10y_ps.create_dataset_collection(cfg, base_path=str(out.parent), sub_path_fmt=out.name)
    ana = create_analysis(
        cfg, dsc.get_datasets(["IC40"]), PointLikeSource(np.radians(40.67), np.radians(-0.01))
    )
    ts, params, _ = ana.unblind(RandomStateService(seed=1))
    assert np.isfinite(ts) and 0.0 <= params["ns"] <= 1000.0 and 1.0 <= params["gamma"] <= 4.0
