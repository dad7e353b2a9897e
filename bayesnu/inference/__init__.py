"""Inference engines shared by all analyses: MAP/ML fits, NUTS, summaries."""

from bayesnu.inference.map import FitResult, ParamSpec, maximize
from bayesnu.inference.nuts import add_posterior_variables, choose_chain_method, run_nuts
from bayesnu.inference.results import load_netcdf, save_netcdf, summarize

__all__ = [
    "FitResult",
    "ParamSpec",
    "add_posterior_variables",
    "choose_chain_method",
    "load_netcdf",
    "maximize",
    "run_nuts",
    "save_netcdf",
    "summarize",
]
