"""Shared fixtures: real release files, peers, temporary release directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import bayesnu  # noqa: F401  (enables float64 before any test touches JAX)

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(os.environ.get("BAYESNU_TEST_DATA", REPO.parent / "shared" / "data"))
STRICT_PEERS = os.environ.get("BAYESNU_STRICT_PEERS") == "1"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No collected tests is a failure, never a silent pass."""
    if session.testscollected == 0 and not session.config.option.collectonly:
        session.exitstatus = 1


def require_peer(name: str):
    """Import a peer package or skip (fail instead under BAYESNU_STRICT_PEERS=1, as in CI)."""
    try:
        return pytest.importorskip(name, reason=f"peer package {name!r} is not installed")
    except pytest.skip.Exception:
        if STRICT_PEERS:
            pytest.fail(f"peer package {name!r} is required in CI (BAYESNU_STRICT_PEERS=1) but not installed")
        raise


@pytest.fixture(scope="session")
def real_ps_dir() -> Path:
    """The real 10-year point-source release files (IC40 events, all effective areas, uptimes)."""
    d = TEST_DATA / "icecube_10year_ps"
    if not (d / "events" / "IC40_exp.csv").exists():
        pytest.skip(f"real IceCube 10-year PS files not found under {d} (set BAYESNU_TEST_DATA)")
    return d


@pytest.fixture(scope="session")
def real_hese_dir() -> Path:
    """The real HESE 7.5-year release files (102 events, published scan, spline tables)."""
    d = TEST_DATA / "hese_7yr"
    if not (d / "HESE_data.json").exists():
        pytest.skip(f"real HESE 7.5-year files not found under {d} (set BAYESNU_TEST_DATA)")
    return d
