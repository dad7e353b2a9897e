"""Run the HESE 7.5-year release's own fit code side by side with bayesnu.

The release's code is NOT part of bayesnu: fetch it yourself
(``git clone https://github.com/icecube/HESE-7-year-data-release``) and pass the folder
that holds ``HESE_fit.py`` (``.../HESE-7-year-data-release/HESE-7-year-data-release``).
Nothing from it is copied or committed; this script imports it at run time with two
compatibility shims for current numpy:

* ``np.reshape(x, newshape=...)``: the keyword was removed in numpy 2.x; the shim maps it
  to ``shape``.
* ``np.array`` of a ragged list inside ``det_sys_weights`` (numpy >= 1.24 refuses it
  without ``dtype=object``): only that module's ``np`` is wrapped, retrying with
  ``dtype=object``. Needed for the 11-parameter comparison only.

The detector module needs the photospline C++ package. Without it (or with
``--no-detector``) the detector correction is replaced by 1 (the value at nominal) and
the comparison has 8 free parameters. The Poisson comparison replaces the release's
per-bin SAY function ``likelihood.computeLEff`` by its ``poissonLikelihood`` of the bin
sum (with the same special cases for empty or zero-weight bins).

Usage::

    python benchmarks/compare_hese_release.py RELEASE_DIR [--n-neutrino 100000] [--write-fixture F]
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PARAMETER_NAMES = [
    "cr_delta_gamma",
    "nunubar_ratio",
    "anisotropy_scale",
    "astro_gamma",
    "astro_norm",
    "conv_norm",
    "epsilon_dom",
    "epsilon_head_on",
    "muon_norm",
    "kpi_ratio",
    "prompt_norm",
]
DETECTOR = {"anisotropy_scale": 1.0, "epsilon_dom": 0.99, "epsilon_head_on": 0.0}


def _install_reshape_shim() -> None:
    if getattr(np.reshape, "_bayesnu_shim", False):
        return
    orig = np.reshape

    def reshape(a, *args, newshape=None, **kw):
        if newshape is not None:
            return orig(a, newshape, **kw)
        return orig(a, *args, **kw)

    reshape._bayesnu_shim = True
    np.reshape = reshape


class _RaggedArrayNumpy(types.ModuleType):
    """numpy, except that ``array`` of a ragged list falls back to ``dtype=object``."""

    def __init__(self) -> None:
        super().__init__("numpy_ragged_shim")

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def array(obj, *args, **kw):
        try:
            return np.array(obj, *args, **kw)
        except ValueError:
            return np.array(obj, *args, dtype=object, **kw)


class _UnitSysWeighter:
    """Stand-in for the release's SysWeighter: every correction 1, gradient 0 (nominal)."""

    def __init__(self, mc, *args, **kwargs) -> None:
        self.n = len(mc)

    def _ones(self, value_grad):
        return np.ones(self.n), np.zeros((self.n, len(value_grad[1])))

    def get_hole_ice_weights(self, flux_component, value_grad):
        return self._ones(value_grad)

    def get_dom_eff_weights(self, flux_component, value_grad):
        return self._ones(value_grad)

    def get_anisotropy_weights(self, flux_component, value_grad):
        return self._ones(value_grad)


@contextmanager
def _cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def photospline_available() -> bool:
    """Whether the photospline Python module imports."""
    try:
        importlib.import_module("photospline")
    except ImportError:
        return False
    return True


class Reference:
    """The release's -LLH and fit on given data and MC files.

    Parameters
    ----------
    release_dir
        Folder with the release's ``HESE_fit.py``, ``weighter.py``, ... and ``resources/``.
    data_file
        ``HESE_data.json``.
    mc_files
        The three MC JSON files.
    detector
        Use the release's detector module (needs photospline); else corrections are 1.
    likelihood
        ``"say"`` (the release's) or ``"poisson"``.
    """

    LIVETIME = 227708167.68
    PRIORS = (
        (-0.05, 0.05, -np.inf, np.inf),
        (1.0, 0.1, 0.0, 2.0),
        (1.0, 0.2, 0.0, 2.0),
        (None, None, -np.inf, np.inf),
        (None, None, 0.0, np.inf),
        (1.0, 0.4, 0.0, np.inf),
        (0.99, 0.1, 0.8, 1.25),
        (0.0, 0.5, -3.82, 2.18),
        (1.0, 0.5, 0.0, np.inf),
        (1.0, 0.1, 0.0, np.inf),
        (None, None, 0.0, np.inf),
    )

    def __init__(self, release_dir, data_file, mc_files, detector: bool, likelihood: str = "say") -> None:
        self.dir = Path(release_dir).resolve()
        if not (self.dir / "HESE_fit.py").exists():
            raise FileNotFoundError(f"{self.dir} does not hold the release's HESE_fit.py")
        _install_reshape_shim()
        if str(self.dir) not in sys.path:
            sys.path.insert(0, str(self.dir))
        for m in ("autodiff", "binning", "data_loader", "likelihood", "weighter", "det_sys_weights"):
            sys.modules.pop(m, None)
        if detector:
            dsw = importlib.import_module("det_sys_weights")
            dsw.np = _RaggedArrayNumpy()
        else:
            stub = types.ModuleType("det_sys_weights")
            stub.SysWeighter = _UnitSysWeighter
            sys.modules["det_sys_weights"] = stub
        self.binning = importlib.import_module("binning")
        self.data_loader = importlib.import_module("data_loader")
        self.likelihood = importlib.import_module("likelihood")
        self.weighter = importlib.import_module("weighter")
        self.autodiff = importlib.import_module("autodiff")
        if likelihood == "poisson":
            lk, ad = self.likelihood, self.autodiff

            def compute_poisson(k, weights):
                wsum = ad.sum(weights)
                if wsum[0] <= 0:
                    zero = np.zeros(len(wsum[1]))
                    return np.array((0.0, zero)) if k == 0 else np.array((-np.inf, zero))
                return lk.poissonLikelihood(k, wsum)

            lk.computeLEff = compute_poisson
        elif likelihood != "say":
            raise ValueError(likelihood)
        with _cwd(self.dir):
            mc = self.data_loader.load_mc([str(Path(f).resolve()) for f in mc_files])
            data = self.data_loader.load_data(str(Path(data_file).resolve()))
            self.sorted_mc, self.mc_bin_slices = self.binning.bin_data(mc)
            sorted_data, data_bin_slices = self.binning.bin_data(data)
            self.binned_data = np.array([len(sorted_data[s]) for s in data_bin_slices])
            t = time.perf_counter()
            self.weight_maker = self.weighter.Weighter(self.sorted_mc)
            self.setup_s = time.perf_counter() - t
        self.n_mc = len(self.sorted_mc)

    def neg_llh(self, params: dict[str, float]) -> tuple[float, np.ndarray]:
        """The release's (-LLH, gradient) at a full parameter dict."""
        p = np.array([params[n] for n in PARAMETER_NAMES], dtype=float)
        with _cwd(self.dir):
            llh, grad = self.likelihood.calcLLH(
                p,
                PARAMETER_NAMES,
                self.PRIORS,
                self.mc_bin_slices,
                self.binned_data,
                self.weight_maker,
                self.LIVETIME,
            )
        return float(llh), np.asarray(grad, dtype=float).ravel()

    def fit(self, fixed: dict[str, float] | None = None, start: dict[str, float] | None = None) -> dict:
        """The release's fit procedure (HESE_fit.py): L-BFGS-B, epsilon_dom range split when free."""
        from scipy.optimize import fmin_l_bfgs_b

        start_vals = {
            "cr_delta_gamma": -0.05,
            "nunubar_ratio": 1.0,
            "anisotropy_scale": 1.0,
            "astro_gamma": 2.5,
            "astro_norm": 6.0,
            "conv_norm": 1.0,
            "epsilon_dom": 0.99,
            "epsilon_head_on": 0.0,
            "muon_norm": 1.0,
            "kpi_ratio": 1.0,
            "prompt_norm": 1.0,
        }
        start_vals.update(start or {})
        fixed = dict(fixed or {})
        start_vals.update(fixed)
        params = np.array([start_vals[n] for n in PARAMETER_NAMES])
        is_fitted = np.array([n not in fixed for n in PARAMETER_NAMES])

        def func(x):
            p = params.copy()
            p[is_fitted] = x
            with _cwd(self.dir):
                llh, grads = self.likelihood.calcLLH(
                    p,
                    PARAMETER_NAMES,
                    self.PRIORS,
                    self.mc_bin_slices,
                    self.binned_data,
                    self.weight_maker,
                    self.LIVETIME,
                )
            return llh, np.array(grads[0])[is_fitted] if np.ndim(grads) > 1 else np.asarray(grads)[is_fitted]

        bounds = np.array([(p[2], p[3]) for p in self.PRIORS])
        blist = [bounds]
        if "epsilon_dom" not in fixed:
            i = PARAMETER_NAMES.index("epsilon_dom")
            lo, hi = bounds.copy(), bounds.copy()
            lo[i] = [0.8, 0.99]
            hi[i] = [0.99, 1.25]
            blist = [lo, hi]
        t = time.perf_counter()
        results = []
        for b in blist:
            x, f, info = fmin_l_bfgs_b(
                func, x0=params[is_fitted], bounds=b[is_fitted], m=10, pgtol=1e-18, factr=1e4
            )
            results.append((f, x, info))
        elapsed = time.perf_counter() - t
        f, x, info = min(results, key=lambda r: r[0])
        best = params.copy()
        best[is_fitted] = x
        return {
            "params": dict(zip(PARAMETER_NAMES, map(float, best))),
            "neg_llh": float(f),
            "seconds": elapsed,
            "nfev": int(sum(r[2]["funcalls"] for r in results)),
            "warnflag": int(info["warnflag"]),
        }


def evaluation_points(n: int, detector: bool, seed: int = 11) -> list[dict[str, float]]:
    """Parameter points for the point-by-point -LLH comparison (first: the release's start)."""
    rng = np.random.default_rng(seed)
    start = {
        "cr_delta_gamma": -0.05,
        "nunubar_ratio": 1.0,
        "anisotropy_scale": 1.0,
        "astro_gamma": 2.5,
        "astro_norm": 6.0,
        "conv_norm": 1.0,
        "epsilon_dom": 0.99,
        "epsilon_head_on": 0.0,
        "muon_norm": 1.0,
        "kpi_ratio": 1.0,
        "prompt_norm": 1.0,
    }
    published = {
        "cr_delta_gamma": -0.05309302,
        "nunubar_ratio": 0.99815326,
        "anisotropy_scale": 1.000683,
        "astro_gamma": 2.87375956,
        "astro_norm": 6.36488608,
        "conv_norm": 1.00621679,
        "epsilon_dom": 0.95192328,
        "epsilon_head_on": -0.0548763,
        "muon_norm": 1.18706341,
        "kpi_ratio": 1.00013744,
        "prompt_norm": 0.0,
    }
    pts = [start, published]
    for _ in range(n - 2):
        pts.append(
            {
                "cr_delta_gamma": rng.uniform(-0.15, 0.05),
                "nunubar_ratio": rng.uniform(0.8, 1.2),
                "anisotropy_scale": rng.uniform(0.5, 1.5),
                "astro_gamma": rng.uniform(2.0, 3.5),
                "astro_norm": rng.uniform(0.5, 12.0),
                "conv_norm": rng.uniform(0.3, 2.0),
                "epsilon_dom": rng.uniform(0.85, 1.2),
                "epsilon_head_on": rng.uniform(-1.5, 1.5),
                "muon_norm": rng.uniform(0.2, 2.5),
                "kpi_ratio": rng.uniform(0.8, 1.2),
                "prompt_norm": rng.uniform(0.0, 5.0),
            }
        )
    if not detector:
        for p in pts:
            p.update(DETECTOR)
    return [{k: float(v) for k, v in p.items()} for p in pts]
