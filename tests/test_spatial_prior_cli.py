"""Command line of the sky scan and the spatial-prior analysis, and its model card.

One small simulated release (IC40, 5000 events, a source at (150, 20) deg) is shared by all
tests: it is written through the model card's simulation cache, so that the card test reuses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bayesnu.errors import ConfigError

pytestmark = pytest.mark.xdist_group("spatial_prior_cli")

SRC = (150.0, 20.0)
DATA = {
    "kind": "simulated",
    "release": "10y",
    "seasons": ["IC40"],
    "n_events": 5000,
    "seed": 3,
    "inject": [{"ra_deg": SRC[0], "dec_deg": SRC[1], "flux_norm": 3.0e-14, "gamma": 2.0}],
}
CARD = Path(__file__).resolve().parents[1] / "models" / "spatial_prior_alert.yaml"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spatial_prior_cache")


@pytest.fixture(scope="module")
def sim_dir(cache: Path) -> Path:
    from bayesnu.analyses.point_source_card import DataSpec, _simulated_release

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAYESNU_CACHE", str(cache))
        path, _ = _simulated_release(DataSpec(**DATA))
    return path


@pytest.fixture(scope="module")
def prior_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bayesnu.sky.maps import prior_gaussian

    path = tmp_path_factory.mktemp("prior") / "prior.fits"
    prior_gaussian(151.0, 19.0, 3.0, 16).write(path)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict | None, str]:
    from bayesnu.cli import main

    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, (json.loads(cap.out) if rc == 0 and "--json" in argv else None), cap.err


def test_scan_json_and_fits(sim_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import healpy as hp

    from bayesnu.sky.scan import SkyScan

    out = tmp_path / "scan.fits"
    rc, res, err = _run(capsys, "scan", "--data", sim_dir, "--seasons", "IC40", "--nside", "8",
                        "--gamma", "2.0", "--dec-range", "-60,80", "--out", out, "--json")  # fmt: skip
    assert rc == 0, err
    for k in ("n_pixels", "hottest_ra", "hottest_dec", "ts_max", "wall_s", "compile_s"):
        assert k in res, k
    dec = 90.0 - np.degrees(hp.pix2ang(8, np.arange(768))[0])
    assert res["n_pixels"] == int(np.sum((dec > -60) & (dec < 80)))
    assert res["ts_max"] > 25 and res["gamma"] == 2.0 and res["wall_s"] > 0
    assert hp.rotator.angdist(SRC, (res["hottest_ra"], res["hottest_dec"]), lonlat=True) < np.radians(8)
    scan = SkyScan.read(out)
    assert scan.nside == 8 and scan.n_pixels == res["n_pixels"] and scan.gamma_fixed == 2.0
    assert scan.ts.max() == pytest.approx(res["ts_max"])
    # An existing output is refused (before any work) unless --force.
    rc, _, err = _run(capsys, "scan", "--data", sim_dir, "--nside", "8", "--out", out, "--json")
    assert rc == 2 and "--force" in err


def test_scan_with_prior(
    sim_dir: Path, prior_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bayesnu.sky.maps import SkyMap
    from bayesnu.sky.scan import SkyScan

    out, post, png = tmp_path / "scan.fits", tmp_path / "post.fits", tmp_path / "ts.png"
    rc, res, err = _run(capsys, "scan", "--data", sim_dir, "--nside", "16", "--prior", prior_file, "--gamma",
                        "2.0", "--out", out, "--posterior-out", post, "--plot", png, "--json")  # fmt: skip
    assert rc == 0, err
    for k in ("n_pixels", "hottest_ra", "hottest_dec", "ts_max", "wall_s", "compile_s", "ts_with_prior",
              "posterior_mode_ra", "posterior_mode_dec", "area_50_deg2", "area_90_deg2",
              "log_bayes_factor"):  # fmt: skip
        assert k in res, k
    assert 0 < res["n_pixels"] < 3072  # the prior's credible region only
    assert res["ts_with_prior"] <= res["ts_max"] + 1e-9  # the prior term is a penalty
    assert 0 < res["area_50_deg2"] <= res["area_90_deg2"]
    assert SkyScan.read(out).n_pixels == res["n_pixels"]
    p = SkyMap.read(post)
    assert p.nside == 16 and p.values.sum() == pytest.approx(1.0)
    assert png.stat().st_size > 0


def test_sample_spatial_prior(
    sim_dir: Path, prior_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bayesnu.sky.maps import SkyMap

    nc = tmp_path / "post.nc"
    rc, res, err = _run(capsys, "sample", "spatial-prior", "--data", sim_dir, "--seasons", "IC40", "--prior",
                        prior_file, "--nside", "16", "--gamma", "2.0", "--chains", "2", "--draws", "60",
                        "--warmup", "60", "--seed", "1", "--out", nc, "--json")  # fmt: skip
    assert rc == 0, err
    for name in ("ra_deg", "dec_deg", "ns", "gamma"):
        assert set(res[name]) >= {"mean", "sd", "q05", "q95", "r_hat", "ess_bulk"}, name
    assert "divergences" in res and res["chains"] == 2 and res["draws"] == 60
    assert abs(res["dec_deg"]["mean"] - SRC[1]) < 3 and abs(res["ra_deg"]["mean"] - SRC[0]) < 3
    assert res["area_90_deg2"] > 0 and nc.stat().st_size > 0
    assert res["map_out"] == str(tmp_path / "post_map.fits")
    assert SkyMap.read(res["map_out"]).values.sum() == pytest.approx(1.0)


def test_trials_spatial_prior(
    sim_dir: Path, prior_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bayesnu.frequentist.trials import TrialResults

    out = tmp_path / "trials.npz"
    common = ("--data", sim_dir, "--seasons", "IC40", "--prior", prior_file, "--nside", "8", "--gamma", "2.0")
    rc, res, err = _run(capsys, "trials", "spatial-prior", *common, "--n", "2", "--seed", "1", "--out", out,
                        "--json")  # fmt: skip
    assert rc == 0, err
    assert res["n_trials"] == 2 and res["ts_median"] >= 0 and res["trials_per_s"] > 0
    saved = TrialResults.load(out)
    assert saved.n_trials == 2 and saved.seed == 1 and "true_pixel" in saved.columns
    rc, sig, err = _run(capsys, "trials", "spatial-prior", *common, "--n", "2", "--seed", "1",
                        "--inject-ns", "10", "--inject-gamma", "2.0", "--json")  # fmt: skip
    assert rc == 0, err
    assert sig["n_trials"] == 2 and sig["flux_norm_injected"] > 0
    assert sig["e2dnde_injected"] == pytest.approx(sig["flux_norm_injected"] * 1e6)


def test_bad_inputs(
    sim_dir: Path, prior_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ("--data", sim_dir, "--seasons", "IC40")
    missing = tmp_path / "nope.fits"
    for argv in (("scan", *data, "--prior", missing, "--json"),
                 ("sample", "spatial-prior", *data, "--prior", missing, "--json"),
                 ("trials", "spatial-prior", *data, "--prior", missing, "--n", "2", "--json")):  # fmt: skip
        rc, _, err = _run(capsys, *argv)
        assert rc == 2 and "nope.fits" in err and "no such file" in err, argv
    rc, _, err = _run(capsys, "scan", *data, "--nside", "12", "--json")
    assert rc == 2 and "power of 2" in err
    rc, _, err = _run(capsys, "scan", *data, "--gamma", "hard", "--json")
    assert rc == 2 and "'free'" in err
    rc, _, err = _run(capsys, "scan", *data, "--gamma", "5", "--json")
    assert rc == 2 and "outside" in err
    rc, _, err = _run(capsys, "scan", *data, "--dec-range", "30,-30", "--json")
    assert rc == 2 and "--dec-range" in err
    rc, _, err = _run(capsys, "scan", "--data", tmp_path / "no_release", "--json")
    assert rc == 2 and "no such release directory" in err
    not_fits = tmp_path / "prior.txt"
    not_fits.write_text("not a map\n")
    rc, _, err = _run(capsys, "scan", *data, "--prior", not_fits, "--json")
    assert rc == 2 and "FITS" in err
    with pytest.raises(SystemExit) as exc:  # argparse: --prior is required for the spatial-prior target
        _run(capsys, "sample", "spatial-prior", *data, "--json")
    assert exc.value.code == 2


def _tiny_card(tmp_path: Path) -> dict:
    card = yaml.safe_load(CARD.read_text())
    card["data"] = dict(DATA)
    card["prior"] = {"kind": "gaussian", "ra_deg": 151.0, "dec_deg": 19.0, "sigma_deg": 3.0, "nside": 64,
                     "smooth_deg": 1.0}  # fmt: skip
    card["scan"].update({"nside": 16, "gamma": 2.0})
    card["sampling"] = {"chains": 2, "draws": 60, "warmup": 60, "seed": 1}
    card["trials"] = {"n_background": 2, "seed": 2}
    card["output"] = {"dir": str(tmp_path / "unused")}
    return card


def test_model_card_run(cache: Path, sim_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from astropy.table import Table

    from bayesnu.config import run_card
    from bayesnu.sky.maps import SkyMap
    from bayesnu.sky.scan import SkyScan

    monkeypatch.setenv("BAYESNU_CACHE", str(cache))  # the simulation of ``sim_dir`` is reused
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(_tiny_card(tmp_path)))
    out = tmp_path / "out"
    res = run_card(path, out)
    files = ("prior.fits", "scan.fits", "posterior_map.fits", "posterior.nc", "background_trials.npz",
             "summary.ecsv", "summary.json", "prior.png", "ts_map.png", "posterior_map.png", "region.png",
             "corner.png", "card.yaml")  # fmt: skip
    for f in files:
        assert (out / f).stat().st_size > 0, f
    assert res["data"] == str(sim_dir) and res["provenance"]["simulated"] is True
    assert res["truth"]["ra_deg"] == SRC[0] and res["truth"]["ns"] > 0
    assert res["spatial_prior"]["ts"] > 25 and res["trials"]["n_trials"] == 2
    assert 0 <= res["trials"]["pvalue"] <= 1
    t = Table.read(out / "summary.ecsv", format="ascii.ecsv")
    assert list(t["parameter"]) == ["ra_deg", "dec_deg", "ns", "gamma", "flux_norm", "e2dnde"]
    assert t["truth"][0] == SRC[0] and t.meta["nside"] == 16
    assert SkyScan.read(out / "scan.fits").n_pixels == res["spatial_prior"]["n_pixels"]
    assert SkyMap.read(out / "posterior_map.fits").values.sum() == pytest.approx(1.0)
    assert json.loads((out / "summary.json").read_text())["name"] == "spatial_prior_alert"


def test_model_card_validation(tmp_path: Path) -> None:
    from bayesnu.analyses.spatial_prior_card import parse_card
    from bayesnu.config import load_card, run_card

    card = load_card(CARD)  # the shipped card is valid
    c = parse_card(card)
    assert c.prior.kind == "gaussian" and c.scan.gamma_fixed is None and c.trials.n_background > 0

    def bad(change: dict, match: str) -> None:
        d = yaml.safe_load(CARD.read_text())
        for key, value in change.items():
            section, _, field = key.partition(".")
            if field:
                d[section][field] = value
            else:
                d[section] = value
        with pytest.raises(ConfigError, match=match):
            parse_card(d)

    bad({"prior.sigma_deg": -1.0}, r"prior\.sigma_deg")
    bad({"prior.nside": 12}, r"prior\.nside.*power of 2")
    bad({"prior.kind": "banana"}, r"prior")
    bad({"prior": {"kind": "file"}}, r"prior\.path")
    bad({"scan.gamma": "hard"}, r"scan\.gamma")
    bad({"scan.nside": 100}, r"scan\.nside")
    bad({"trials.n_background": -1}, r"trials\.n_background")
    bad({"sampling.foo": 1}, r"sampling\.foo")
    bad({"scan.gamma": 5.0}, r"scan\.gamma .*outside")
    # A prior file that does not exist: an error naming the field and the path, before any data work.
    d = yaml.safe_load(CARD.read_text())
    d["prior"] = {"kind": "file", "path": "missing_alert.fits"}
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match=r"prior\.path: .*missing_alert\.fits does not exist"):
        run_card(path, tmp_path / "out")


def test_argument_helpers() -> None:
    from bayesnu.cli.sky_cmd import check_nside, default_map_out, parse_dec_range, parse_gamma

    assert parse_gamma("free") is None and parse_gamma("FREE") is None and parse_gamma("2.5") == 2.5
    for text in ("nan", "two", ""):
        with pytest.raises(ConfigError, match="free"):
            parse_gamma(text)
    assert parse_dec_range("-85,85") == (-85.0, 85.0)
    for text in ("-85", "10,-10", "-95,0", "a,b"):
        with pytest.raises(ConfigError, match="dec-range"):
            parse_dec_range(text)
    assert check_nside(64) == 64 and check_nside(None) is None
    with pytest.raises(ConfigError, match="power of 2"):
        check_nside(48)
    assert default_map_out("out/post.nc") == str(Path("out/post_map.fits")) and default_map_out(None) is None
