"""HESE-style diffuse-flux analysis: binned forward folding of weighted MC, NumPyro model.

See ``docs/diffuse.rst`` for every formula. Main entry point: :class:`DiffuseAnalysis`.
"""

from bayesnu.analyses.diffuse.analysis import DiffuseAnalysis, DiffuseFit, SelectionSummary
from bayesnu.analyses.diffuse.binning import (
    DiffuseBinning,
    MorphologyBinning,
    energy_zenith_binning,
    hese_binning,
)
from bayesnu.analyses.diffuse.model import DiffuseInputs, diffuse, log_density, log_likelihood
from bayesnu.analyses.diffuse.params import PARAMETER_NAMES, PARAMETERS, Prior, resolve_priors

__all__ = [
    "PARAMETERS",
    "PARAMETER_NAMES",
    "DiffuseAnalysis",
    "DiffuseBinning",
    "DiffuseFit",
    "DiffuseInputs",
    "MorphologyBinning",
    "Prior",
    "SelectionSummary",
    "diffuse",
    "energy_zenith_binning",
    "hese_binning",
    "log_density",
    "log_likelihood",
    "resolve_priors",
]
