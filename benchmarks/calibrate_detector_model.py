"""Re-derive the constants of bayesnu's parametric detector and background models.

Development-time tool (not used at run time): fits the effective-area model of
:mod:`bayesnu.data.detector_model` to the five public effective-area tables of the
10-year release, calibrates the reconstructed-energy scale and the angular
resolution against the up-going IC40 events, and fits the atmospheric-like
background model of :mod:`bayesnu.data.background_model` to the IC40 events. It
prints the constants and how well the committed ones describe the real files.

    .venv/bin/python benchmarks/calibrate_detector_model.py [PATH/TO/icecube_10year_ps]
"""

from __future__ import annotations

import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from bayesnu.data import background_model as bm
from bayesnu.data.detector_model import CONFIGS, AeffParams, DetectorModel
from bayesnu.data.ps_formats import read_effective_area, read_events

REAL = (
    Path(sys.argv[1])
    if len(sys.argv) > 1
    else Path(__file__).resolve().parents[2] / "shared/data/icecube_10year_ps"
)
FIT_CONFIGS = ("IC40", "IC59", "IC79", "IC86_I", "IC86_II")
FLOOR_CM2 = 10.0
#: sin(dec) bands whose E^-2 and E^-3 detection rates are also fitted (log10 ratio x RATE_WEIGHT).
BANDS = ((-1.0, -0.5), (-0.5, -0.087), (-0.087, 0.3), (0.3, 1.0))
RATE_WEIGHT = 40.0
FIELDS = [k for k in asdict(AeffParams()) if k != "c"]
BOUNDS = {
    "alpha_lo": (0, 4), "alpha_hi": (0, 1.5), "x_alpha": (2.5, 7), "w_alpha": (0.1, 2), "p_th": (0.1, 3),
    "k_th": (0, 6), "x_th0": (2, 7), "w_th0": (0.05, 2), "w_th1": (0, 3), "a_geo": (0, 10), "p_geo": (0.1, 3),
    "beta_abs": (0.1, 1), "x_abs": (2, 8), "kappa_abs": (0, 5),
}  # fmt: skip


def unpack(v: np.ndarray) -> tuple[AeffParams, dict[str, float]]:
    p = AeffParams(c=tuple(v[:4]), **dict(zip(FIELDS, v[4 : 4 + len(FIELDS)])))
    shifts = dict(zip(FIT_CONFIGS, [*v[4 + len(FIELDS) :], 0.0]))
    return p, shifts


def model_grid(
    p: AeffParams, shifts: dict[str, float], cfg: str, x: np.ndarray, dec: np.ndarray
) -> np.ndarray:
    """Bin-averaged model A_eff on the release grid (as written to the files)."""
    m = DetectorModel(aeff=p)
    c = replace(CONFIGS[cfg], threshold_shift=shifts[cfg])
    return m.effective_area(c, n_sub=4, decimals=None).aeff_cm2


def fit_aeff() -> None:
    real = {c: read_effective_area(REAL / "irfs" / f"{c}_effectiveArea.csv") for c in FIT_CONFIGS}
    a = real["IC86_II"]
    x = 0.5 * (a.log10_enu_edges[1:] + a.log10_enu_edges[:-1])
    sd = np.sin(np.radians(a.dec_edges_deg))
    dec = np.degrees(np.arcsin(0.5 * (sd[1:] + sd[:-1])))
    sel = x < 9.0

    s_mid = np.sin(np.radians(dec))
    de = np.diff(10.0**a.log10_enu_edges) * sel
    bands = [(s_mid >= lo) & (s_mid < hi) for lo, hi in BANDS]

    def parts(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, sh = unpack(v)
        grid, rates = [], []
        for c in FIT_CONFIGS:
            m = model_grid(p, sh, c, x, dec)
            grid.append((np.log10(m + FLOOR_CM2) - np.log10(real[c].aeff_cm2 + FLOOR_CM2))[:, sel].ravel())
            for gamma in (2.0, 3.0):
                w = de * (10.0**x) ** -gamma
                rates += [np.log10(np.sum(m[b] * w) / np.sum(real[c].aeff_cm2[b] * w)) for b in bands]
        return np.concatenate(grid), np.array(rates)

    def resid(v: np.ndarray) -> np.ndarray:
        grid, rates = parts(v)
        return np.concatenate([grid, RATE_WEIGHT * rates])

    p0 = AeffParams()
    v0 = np.array(
        [*p0.c, *(getattr(p0, f) for f in FIELDS), *(CONFIGS[c].threshold_shift for c in FIT_CONFIGS[:-1])]
    )
    lb = [-np.inf] * 4 + [BOUNDS.get(f, (-np.inf, np.inf))[0] for f in FIELDS] + [-1.5] * 4
    ub = [np.inf] * 4 + [BOUNDS.get(f, (-np.inf, np.inf))[1] for f in FIELDS] + [1.5] * 4

    def report(label: str, v: np.ndarray) -> None:
        grid, rates = parts(v)
        rms, worst = np.sqrt(np.mean(grid**2)), np.abs(rates).max()
        print(f"{label}: grid rms {rms:.4f} dex, max |log10 rate ratio| {worst:.3f}")

    report("committed", v0)
    res = optimize.least_squares(resid, np.clip(v0, lb, ub), bounds=(lb, ub), max_nfev=20000)
    report("refit", res.x)
    p, sh = unpack(res.x)
    print("AeffParams(", ", ".join(f"{k}={v!r}" for k, v in asdict(p).items()), ")")
    print("threshold shifts", {k: round(v, 5) for k, v in sh.items()})
    dE = np.diff(10.0**a.log10_enu_edges)
    m = DetectorModel()
    for c in FIT_CONFIGS:
        mod = m.effective_area(c).aeff_cm2
        for gamma in (2.0, 3.0):
            ratios = []
            for lo, hi in BANDS:
                s = 0.5 * (sd[1:] + sd[:-1])
                ms = (s >= lo) & (s < hi)
                w = dE * (10.0**x) ** -gamma * sel
                ratios.append(np.sum(mod[ms] * w) / np.sum(real[c].aeff_cm2[ms] * w))
            print(f"  {c:8s} E^-{gamma:.0f} rate model/real in sin(dec) bands {BANDS}: {np.round(ratios, 3)}")


def calibrate_response() -> None:
    ev = read_events(REAL / "events" / "IC40_exp.csv")
    up = ev.sin_dec > 0.1
    data_med_e = float(np.median(ev.log10_energy[up]))
    ranges = ((2.8, 3.2), (4.0, 4.8))

    def ae_medians(y: np.ndarray, ae: np.ndarray) -> np.ndarray:
        return np.array([np.median(ae[(y >= lo) & (y < hi)]) for lo, hi in ranges])

    data_ae = ae_medians(ev.log10_energy[up], ev.ang_err_deg[up])
    rng = np.random.default_rng(1)
    # Atmospheric-like neutrinos: E^-3.7 weighted by the IC40 model A_eff over s in (0.1, 1).
    n = 1_000_000
    x = rng.uniform(2.0, 7.0, n)
    s = rng.uniform(0.1, 1.0, n)
    dec = np.degrees(np.arcsin(s))
    w = DetectorModel().aeff_cm2("IC40", x, dec) * 10.0 ** (-2.7 * x)  # E^-3.7 dE = E^-2.7 dlog E
    keep = rng.random(n) < w / w.max()
    x = x[keep]

    def sample(model: DetectorModel) -> tuple[np.ndarray, np.ndarray]:
        y, _, ae = model.sample_response(np.random.default_rng(2), "IC40", x)
        return y, ae

    m0 = DetectorModel()
    y0, ae0 = sample(m0)
    y3 = m0.energy.y3 + data_med_e - float(np.median(y0))
    m1 = replace(m0, energy=replace(m0.energy, y3=y3))

    def f(v: np.ndarray) -> np.ndarray:
        m = replace(m1, angular=replace(m1.angular, sigma_floor_deg=v[0], sigma_amp_deg=v[1]))
        return np.log(ae_medians(*sample(m)) / data_ae)

    v0 = np.array([m0.angular.sigma_floor_deg, m0.angular.sigma_amp_deg])
    sol = optimize.least_squares(f, v0, bounds=([0.01, 0.0], [2.0, 3.0]), diff_step=1e-2)
    print(
        f"IC40 up-going: median log10 E {data_med_e:.3f}; median AngErr in {ranges}: {data_ae.round(3)} deg"
    )
    print(
        f"committed model: median log10 E {np.median(y0):.3f}, AngErr medians {ae_medians(y0, ae0).round(3)}"
    )
    print(f"calibrated y3 = {y3:.4f}, sigma_floor_deg = {sol.x[0]:.4f}, sigma_amp_deg = {sol.x[1]:.4f}")


def fit_background() -> None:
    ev = read_events(REAL / "events" / "IC40_exp.csv")
    s, x = ev.sin_dec, ev.log10_energy
    cnt, _ = np.histogram(s, bm.SIN_DEC_DENSITY_EDGES)
    dens = cnt / cnt.sum() / np.diff(bm.SIN_DEC_DENSITY_EDGES)
    print("SIN_DEC_DENSITY =", np.round(dens, 4).tolist())
    mus, sigs, taus = [], [], []
    for lo, hi in zip(bm.ENERGY_KNOT_EDGES[:-1], bm.ENERGY_KNOT_EDGES[1:]):
        m = (s >= lo) & (s < hi)
        k, loc, sc = stats.exponnorm.fit(x[m])
        mus.append(loc)
        sigs.append(sc)
        taus.append(k * sc)
    print("ENERGY_MU =", np.round(mus, 4).tolist())
    print("ENERGY_SIGMA =", np.round(sigs, 4).tolist())
    print("ENERGY_TAU =", np.round(taus, 4).tolist())
    la = np.log10(ev.ang_err_deg)
    for name, m in (("SOUTH", s < bm.SIN_DEC_HORIZON), ("NORTH", s >= bm.SIN_DEC_HORIZON)):
        design = np.column_stack([np.ones(m.sum()), x[m] - 4.0, (x[m] - 4.0) ** 2, s[m]])
        coef, *_ = np.linalg.lstsq(design, la[m], rcond=None)
        sd = float(np.std(la[m] - design @ coef))
        print(f"ANGERR_{name} = ({', '.join(f'{c:.4f}' for c in coef)}), sd {sd:.4f}")


if __name__ == "__main__":
    fit_aeff()
    calibrate_response()
    fit_background()
