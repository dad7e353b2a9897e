"""Parameters and priors of the HESE-style diffuse fit (the release's names and values).

Every parameter has a prior: Gaussian (``mean``, ``sd``) restricted to bounds, or flat
within bounds. As in the release's fit code, the log-prior of a Gaussian parameter is
the *untruncated* normal log-density
:math:`-\\tfrac12\\ln 2\\pi - \\ln\\sigma - (x-\\mu)^2/2\\sigma^2`, a flat one adds 0,
and any parameter outside its bounds gives :math:`-\\infty`. (The NumPyro model uses
truncated normals, which differ from this only by constants.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import jax.numpy as jnp

from bayesnu.errors import ConfigError


@dataclass(frozen=True)
class Prior:
    """Prior of one parameter.

    Parameters
    ----------
    mean, sd
        Gaussian mean and standard deviation; both ``None`` for a flat prior.
    lower, upper
        Bounds (``-inf`` / ``inf`` for none).
    """

    mean: float | None = None
    sd: float | None = None
    lower: float = -math.inf
    upper: float = math.inf

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.sd is None):
            raise ConfigError("a Gaussian prior needs both mean and sd (a flat prior neither)")
        if self.sd is not None and not self.sd > 0:
            raise ConfigError(f"prior sd must be > 0, got {self.sd}")
        if not self.lower < self.upper:
            raise ConfigError(f"prior lower bound {self.lower} must be below the upper bound {self.upper}")

    @property
    def gaussian(self) -> bool:
        """Whether the prior is Gaussian."""
        return self.mean is not None

    def describe(self) -> str:
        """Short text such as ``normal(1, 0.1) on [0, 2]``."""
        rng = f"[{self.lower:g}, {self.upper:g}]"
        return f"normal({self.mean:g}, {self.sd:g}) on {rng}" if self.gaussian else f"flat on {rng}"


@dataclass(frozen=True)
class ParameterInfo:
    """A fit parameter: its prior, the release's starting value, unit and meaning."""

    name: str
    prior: Prior
    init: float
    unit: str
    description: str
    detector: bool = False


#: Parameters in the release's order (HESE_fit.py), with its priors and start values.
PARAMETERS: dict[str, ParameterInfo] = {
    p.name: p
    for p in (
        ParameterInfo(
            "cr_delta_gamma",
            Prior(-0.05, 0.05),
            -0.05,
            "",
            "change of the cosmic-ray spectral index (atmospheric fluxes)",
        ),
        ParameterInfo(
            "nunubar_ratio",
            Prior(1.0, 0.1, 0.0, 2.0),
            1.0,
            "",
            "atmospheric neutrino/antineutrino scale r (nu x r, nubar x (2 - r))",
        ),
        ParameterInfo(
            "anisotropy_scale", Prior(1.0, 0.2, 0.0, 2.0), 1.0, "", "ice anisotropy scale", detector=True
        ),
        ParameterInfo("astro_gamma", Prior(), 2.5, "", "astrophysical spectral index"),
        ParameterInfo(
            "astro_norm",
            Prior(lower=0.0),
            6.0,
            "1e-18 GeV^-1 cm^-2 s^-1 sr^-1",
            "six-neutrino astrophysical flux at 100 TeV (astro_norm/6 per species)",
        ),
        ParameterInfo("conv_norm", Prior(1.0, 0.4, 0.0), 1.0, "", "conventional atmospheric flux scale"),
        ParameterInfo(
            "epsilon_dom",
            Prior(0.99, 0.1, 0.8, 1.25),
            0.99,
            "",
            "DOM efficiency (absolute energy scale)",
            detector=True,
        ),
        ParameterInfo(
            "epsilon_head_on",
            Prior(0.0, 0.5, -3.82, 2.18),
            0.0,
            "",
            "DOM head-on (hole-ice forward) angular acceptance",
            detector=True,
        ),
        ParameterInfo("muon_norm", Prior(1.0, 0.5, 0.0), 1.0, "", "atmospheric muon flux scale"),
        ParameterInfo("kpi_ratio", Prior(1.0, 0.1, 0.0), 1.0, "", "kaon/pion ratio correction"),
        ParameterInfo("prompt_norm", Prior(lower=0.0), 1.0, "", "prompt atmospheric flux scale"),
    )
}

#: Parameter names in the release's order.
PARAMETER_NAMES: tuple[str, ...] = tuple(PARAMETERS)

#: Detector-systematics parameters and their nominal values (where the correction is 1).
DETECTOR_NOMINAL: dict[str, float] = {"epsilon_head_on": 0.0, "epsilon_dom": 0.99, "anisotropy_scale": 1.0}


def resolve_priors(overrides: Mapping[str, Prior | Mapping] | None = None) -> dict[str, Prior]:
    """The release's priors with ``overrides`` applied.

    Parameters
    ----------
    overrides
        Per parameter name, a :class:`Prior` or a mapping with some of ``mean``, ``sd``,
        ``lower``, ``upper`` (``mean: null`` and ``sd: null`` make the prior flat).
    """
    priors = {n: p.prior for n, p in PARAMETERS.items()}
    for name, ov in (overrides or {}).items():
        if name not in priors:
            raise ConfigError(
                f"unknown parameter {name!r} in prior overrides; parameters are {PARAMETER_NAMES}"
            )
        if isinstance(ov, Prior):
            priors[name] = ov
            continue
        unknown = set(ov) - {"mean", "sd", "lower", "upper"}
        if unknown:
            raise ConfigError(
                f"prior of {name!r}: unknown key(s) {sorted(unknown)}; use mean, sd, lower, upper"
            )
        kw = {k: (None if v is None else float(v)) for k, v in ov.items()}
        for b, inf in (("lower", -math.inf), ("upper", math.inf)):
            if b in kw and kw[b] is None:
                kw[b] = inf
        try:
            priors[name] = replace(priors[name], **kw)
        except ConfigError as exc:
            raise ConfigError(f"prior of {name!r}: {exc}") from None
    return priors


def log_prior(theta: Mapping[str, jnp.ndarray], priors: Mapping[str, Prior]) -> jnp.ndarray:
    """Release-convention log-prior of the parameters in ``theta`` (see the module docstring)."""
    total = jnp.asarray(0.0)
    for name, value in theta.items():
        p = priors[name]
        inside = (value >= p.lower) & (value <= p.upper)
        term = 0.0
        if p.gaussian:
            term = -0.5 * math.log(2.0 * math.pi) - math.log(p.sd) - (value - p.mean) ** 2 / (2.0 * p.sd**2)
        total = total + jnp.where(inside, term, -jnp.inf)
    return total
