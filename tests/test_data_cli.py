"""``bayesnu data info DIR [--json]``: the documented object on real and simulated releases.

The documented form (README, issue 2)::

    {"seasons": {"IC40": {"n_events": 36900, "livetime_days": 376.36, "events": true,
                          "effective_area": true, "smearing": false, "uptime": true}, ...}}

plus ``release`` and ``path``. Seasons without any file are left out; ``n_events`` /
``livetime_days`` are ``null`` when the events / uptime file is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bayesnu.cli import main
from bayesnu.data.ps_formats import read_uptime
from bayesnu.data.ps_release import RELEASE_10Y

SEASON_KEYS = {"n_events", "livetime_days", "events", "effective_area", "smearing", "uptime"}


def _info_json(directory: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["data", "info", str(directory), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object on one line
    obj = json.loads(out)
    assert set(obj) == {"release", "path", "seasons"}
    for name, season in obj["seasons"].items():
        assert set(season) == SEASON_KEYS, name
        assert all(isinstance(season[k], bool) for k in ("events", "effective_area", "smearing", "uptime"))
        assert (season["n_events"] is None) == (not season["events"])
        assert (season["livetime_days"] is None) == (not season["uptime"])
    return obj


@pytest.mark.realdata
def test_data_info_json_real(real_ps_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    obj = _info_json(real_ps_dir, capsys)
    assert obj["release"] == "10y" and Path(obj["path"]) == real_ps_dir
    assert obj["seasons"]["IC40"] == {
        "n_events": 36900,
        "livetime_days": pytest.approx(376.36, abs=0.005),
        "events": True,
        "effective_area": True,
        "smearing": False,  # the real release's smearing files are absent from this copy
        "uptime": True,
    }
    # all 10 seasons have their uptime file (and IC86_III..VII share IC86_II's effective area)
    assert list(obj["seasons"]) == list(RELEASE_10Y.season_names)
    for name, season in obj["seasons"].items():
        up = read_uptime(real_ps_dir / "uptime" / f"{name}_exp.csv")
        assert season["livetime_days"] == round(up.livetime_days, 6)
        assert season["effective_area"] is True
    # the text form names the same numbers
    assert main(["data", "info", str(real_ps_dir)]) == 0
    text = capsys.readouterr().out
    assert "IC40" in text and "36900" in text and "376.36" in text


def test_data_info_json_simulated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    args = ["data", "simulate", "--out", str(out), "--seasons", "IC40,IC86_III", "--seed", "4",
            "--n-events", "300", "--n-mc", "100", "--json"]  # fmt: skip
    assert main(args) == 0
    truth = json.loads(capsys.readouterr().out)
    obj = _info_json(out, capsys)
    assert obj["release"] == "10y" and Path(obj["path"]) == out
    # IC86_III's response files are IC86_II's (the simulator writes those), which the other
    # IC86_II..VII seasons share: they are listed with their response only
    shared = {"IC86_II", "IC86_IV", "IC86_V", "IC86_VI", "IC86_VII"}
    assert set(obj["seasons"]) == {"IC40", "IC86_III"} | shared
    for name in ("IC40", "IC86_III"):
        season = obj["seasons"][name]
        assert season == {
            "n_events": truth["seasons"][name]["n_events"],
            "livetime_days": pytest.approx(truth["seasons"][name]["livetime_days"], abs=1e-6),
            "events": True,
            "effective_area": True,
            "smearing": True,
            "uptime": True,
        }
        assert season["n_events"] == 300
    for name in shared:
        assert obj["seasons"][name] == {
            "n_events": None,
            "livetime_days": None,
            "events": False,
            "effective_area": True,
            "smearing": True,
            "uptime": False,
        }


def test_data_info_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", str(tmp_path / "nope"), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "release directory does not exist" in captured.err and str(tmp_path / "nope") in captured.err
