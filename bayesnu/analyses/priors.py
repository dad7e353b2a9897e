"""Prior specifications shared by the analyses (Python objects and model-card dicts).

A :class:`Prior` is a small declarative description that converts into a NumPyro
distribution, can be checked against the range a parameter is allowed to take, and
round-trips through YAML model cards::

    gamma: {dist: uniform, low: 1.0, high: 4.0}
    ns: {dist: uniform, low: 0, high: 1000}
    flux_norm: {dist: loguniform, low: 1e-15, high: 1e-9}
    conv_norm: {dist: normal, loc: 1.0, scale: 0.4, low: 0.0}      # truncated normal
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpyro.distributions as dist
from scipy import stats

from bayesnu.errors import ConfigError

KINDS = ("uniform", "loguniform", "normal", "halfnormal", "fixed")


@dataclass(frozen=True)
class Prior:
    """A one-dimensional prior.

    Parameters
    ----------
    dist
        ``"uniform"`` (``low``, ``high``), ``"loguniform"`` (``low``, ``high`` > 0),
        ``"normal"`` (``loc``, ``scale``; optional ``low``/``high`` truncation),
        ``"halfnormal"`` (``scale``; support >= 0), ``"fixed"`` (``value``).
    """

    dist: str
    low: float | None = None
    high: float | None = None
    loc: float | None = None
    scale: float | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if self.dist not in KINDS:
            raise ConfigError(f"unknown prior {self.dist!r}; choose one of {', '.join(KINDS)}")
        need = {
            "uniform": ("low", "high"),
            "loguniform": ("low", "high"),
            "normal": ("loc", "scale"),
            "halfnormal": ("scale",),
            "fixed": ("value",),
        }[self.dist]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ConfigError(f"{self.dist} prior needs {', '.join(missing)}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ConfigError(f"prior bounds inverted: low={self.low} >= high={self.high}")
        if self.dist == "loguniform" and not (self.low > 0):
            raise ConfigError("a loguniform prior needs low > 0")
        if self.scale is not None and not self.scale > 0:
            raise ConfigError("prior scale must be positive")

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | Prior) -> Prior:
        """Build from a model-card mapping (``{"dist": "uniform", "low": 1, "high": 4}``)."""
        if isinstance(spec, Prior):
            return spec
        if not isinstance(spec, Mapping) or "dist" not in spec:
            raise ConfigError(f"a prior must be a mapping with a 'dist' key, got {spec!r}")
        unknown = set(spec) - {"dist", "low", "high", "loc", "scale", "value"}
        if unknown:
            raise ConfigError(f"unknown prior keys {sorted(unknown)}")
        return cls(**{k: (float(v) if k != "dist" and v is not None else v) for k, v in spec.items()})

    def to_dict(self) -> dict[str, Any]:
        """Mapping for model cards (only the keys that are set)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def support(self) -> tuple[float, float]:
        """(lower, upper) of the support."""
        if self.dist == "fixed":
            return (self.value, self.value)  # type: ignore[return-value]
        if self.dist == "halfnormal":
            return (0.0, math.inf)
        lo = -math.inf if self.low is None else self.low
        hi = math.inf if self.high is None else self.high
        return (lo, hi)

    def mass_in(self, lo: float, hi: float) -> float:
        """Prior probability of the interval [lo, hi]."""
        a, b = self.support
        if self.dist == "fixed":
            return 1.0 if lo <= self.value <= hi else 0.0  # type: ignore[operator]
        if self.dist == "uniform":
            return max(0.0, min(hi, b) - max(lo, a)) / (b - a)
        if self.dist == "loguniform":
            l2, h2 = max(lo, a), min(hi, b)
            return max(0.0, math.log(h2 / l2)) / math.log(b / a) if h2 > l2 > 0 else 0.0
        if self.dist == "halfnormal":
            d = stats.halfnorm(scale=self.scale)
            return float(d.cdf(hi) - d.cdf(max(lo, 0.0)))
        d = stats.norm(self.loc, self.scale)
        total = d.cdf(b) - d.cdf(a)
        if total <= 0:
            return 0.0
        return float(max(0.0, d.cdf(min(hi, b)) - d.cdf(max(lo, a))) / total)

    def check_allowed(self, name: str, lo: float, hi: float) -> None:
        """Raise if the prior puts (almost) no mass where the parameter is allowed to be."""
        if self.mass_in(lo, hi) < 1e-12:
            raise ConfigError(
                f"the prior of {name} ({self.to_dict()}) puts no mass in the allowed range [{lo}, {hi}]"
            )
        a, b = self.support
        if self.dist != "fixed" and (a < lo or b > hi):
            raise ConfigError(
                f"the prior of {name} ({self.to_dict()}) extends beyond the allowed range [{lo}, {hi}]; "
                "restrict it with low/high"
            )

    def to_numpyro(self) -> dist.Distribution:
        """The NumPyro distribution (``fixed`` has none: use :attr:`value`)."""
        if self.dist == "uniform":
            return dist.Uniform(self.low, self.high)
        if self.dist == "loguniform":
            return dist.LogUniform(self.low, self.high)
        if self.dist == "halfnormal":
            return dist.HalfNormal(self.scale)
        if self.dist == "normal":
            if self.low is None and self.high is None:
                return dist.Normal(self.loc, self.scale)
            return dist.TruncatedNormal(self.loc, self.scale, low=self.low, high=self.high)
        raise ConfigError("a fixed prior has no distribution")
