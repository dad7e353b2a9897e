"""Pseudo-experiments: run a jit-able per-trial function in fixed-size vmapped batches.

A *trial function* has the signature ``trial_fn(key, *inputs) -> dict[str, scalar]``:
it draws one pseudo-experiment from the PRNG ``key`` (scrambled background, injected
signal, ...), fits it and returns a few scalars (``ts``, ``ns``, ``gamma``, ...). It must
be traceable by ``jax.jit``/``jax.vmap``: fixed shapes (pad event arrays to a fixed size
and carry a mask), no Python control flow on traced values. The ``inputs`` (event
arrays, response tables, the injected strength ...) are passed as jit *arguments*, never
closed over, so changing an injected strength does not recompile.

Reproducibility: trial ``i`` of seed ``s`` always uses the key
``jax.random.fold_in(jax.random.key(s), i)``. Results therefore do not depend on the
batch size, on the backend (in-process or ``dask.distributed``) nor on how a large run
is split into chunks (``start=``): chunks ``[0, n)`` and ``[n, 2n)`` concatenated equal
one run of ``2n`` trials.

Batches: each batch evaluates ``batch_size`` consecutive trial indices with one
compiled ``vmap``-ed kernel; the last batch is padded (its extra lanes are computed and
discarded) so the kernel compiles once per (function, batch size, input shapes).
With ``backend="dask"`` batches are tasks on a ``dask.distributed`` cluster
(LocalCluster by default, see :func:`bayesnu.parallel.dask_client`); the trial function
and the inputs are scattered once to every worker, and each worker process compiles the
kernel once (cached by a content hash of the pickled function), so even functions
defined in ``__main__`` or closures do not recompile per task.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayesnu.data.atomic import atomic_path
from bayesnu.errors import ConfigError, DataFormatError
from bayesnu.parallel import dask_client, map_ordered, progress_bar

__all__ = ["TrialResults", "run_trials", "signal_sampler", "trial_key"]

TrialFunction = Callable[..., Mapping[str, jax.Array]]

_MAX_INDEX = 2**32 - 1
_MAX_SEED = 2**63 - 1
_CACHE_SIZE = 32
_KERNELS: OrderedDict[Any, Callable[..., Any]] = OrderedDict()
_COMPILED: OrderedDict[Any, tuple[Any, float]] = OrderedDict()


def trial_key(seed: int, index: int | jax.Array) -> jax.Array:
    """The PRNG key of trial ``index`` for ``seed``: ``fold_in(key(seed), index)``."""
    return jax.random.fold_in(jax.random.key(seed), index)


def _make_kernel(trial_fn: TrialFunction) -> Callable[..., Any]:
    def kernel(seed: jax.Array, indices: jax.Array, inputs: tuple[Any, ...]) -> Any:
        base = jax.random.key(seed)

        def one(i: jax.Array) -> Any:
            out = trial_fn(jax.random.fold_in(base, i), *inputs)
            if not isinstance(out, Mapping):
                raise ConfigError(f"trial function must return a dict of scalars, got {type(out).__name__}")
            return {str(k): jnp.asarray(v) for k, v in out.items()}

        return jax.vmap(one)(indices)

    return jax.jit(kernel)


def _cached_kernel(cache_key: Any, trial_fn: TrialFunction) -> Callable[..., Any]:
    kernel = _KERNELS.get(cache_key)
    if kernel is None:
        kernel = _make_kernel(trial_fn)
        _lru_put(_KERNELS, cache_key, kernel)
    else:
        _KERNELS.move_to_end(cache_key)
    return kernel


def _lru_put(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


def _compiled_kernel(
    cache_key: Any, trial_fn: TrialFunction, batch_size: int, inputs: tuple[Any, ...]
) -> tuple[Any, float]:
    """AOT-compiled batch kernel and its compile time (0 when it came from the cache)."""
    leaves, treedef = jax.tree.flatten(inputs)
    avals = tuple((x.shape, str(x.dtype), bool(getattr(x, "weak_type", False))) for x in leaves)
    key = (cache_key, batch_size, treedef, avals)
    hit = _COMPILED.get(key)
    if hit is not None:
        _COMPILED.move_to_end(key)
        return hit[0], 0.0
    kernel = _cached_kernel(cache_key, trial_fn)
    tc = time.perf_counter()
    compiled = kernel.lower(
        jnp.asarray(0, dtype=jnp.int64), jnp.zeros(batch_size, dtype=jnp.uint32), inputs
    ).compile()
    dt = time.perf_counter() - tc
    _lru_put(_COMPILED, key, (compiled, dt))
    return compiled, dt


def _local_cache_key(trial_fn: TrialFunction) -> Any:
    try:
        hash(trial_fn)
    except TypeError:
        return ("token", _token(trial_fn))
    return ("fn", trial_fn)


def _token(trial_fn: TrialFunction) -> str:
    import cloudpickle

    return hashlib.sha256(cloudpickle.dumps(trial_fn)).hexdigest()


def _as_device_inputs(inputs: Sequence[Any]) -> tuple[Any, ...]:
    # through numpy: Python scalars become strongly typed arrays, so 8.0 and
    # jnp.asarray(8.0) hit the same compiled kernel
    return tuple(jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), tuple(inputs)))


def _as_host_inputs(inputs: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(jax.tree.map(np.asarray, tuple(inputs)))


def _run_batch(
    kernel: Callable[..., Any], seed: int, first: int, n_valid: int, batch_size: int, inputs: tuple[Any, ...]
) -> dict[str, np.ndarray]:
    idx = np.arange(first, first + batch_size, dtype=np.int64)
    idx[n_valid:] = first + n_valid - 1  # padding lanes repeat the last valid trial
    out = kernel(jnp.asarray(seed, dtype=jnp.int64), jnp.asarray(idx, dtype=jnp.uint32), inputs)
    return {k: np.asarray(v)[:n_valid] for k, v in out.items()}


def _dask_batch_task(
    item: tuple[int, int, int, int], fn_payload: tuple[str, TrialFunction], inputs: Any
) -> Any:
    """One batch on a dask worker (module level, so workers import it by reference)."""
    seed, first, n_valid, batch_size = item
    token, trial_fn, cache_dir = fn_payload
    if cache_dir and jax.config.jax_compilation_cache_dir != cache_dir:
        # the client's persistent compilation cache: workers reuse each other's kernels
        jax.config.update("jax_compilation_cache_dir", cache_dir)
    dev_inputs = _as_device_inputs(inputs)
    compiled, _ = _compiled_kernel(("token", token), trial_fn, batch_size, dev_inputs)
    return _run_batch(compiled, seed, first, n_valid, batch_size, dev_inputs)


@dataclass(frozen=True)
class TrialResults:
    """Outputs of :func:`run_trials`: one array per returned scalar, in trial order.

    Attributes
    ----------
    columns
        ``name -> array`` with first axis over trials (``ts``, ``ns``, ...).
    seed
        The seed of the run.
    start
        Index of the first trial (trial ``start + j`` is row ``j``).
    meta
        JSON-serialisable run information (``wall_s``, ``compile_s``, ``trials_per_s``,
        ``backend``, ``batch_size``, ...); informative only, not part of the numbers.
        ``trials_per_s`` excludes the local compilation and the start of a LocalCluster
        but includes the per-worker compilation of the dask backend.
    """

    columns: dict[str, np.ndarray]
    seed: int
    start: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {k: len(v) for k, v in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"trial columns differ in length: {lengths}")

    @property
    def n_trials(self) -> int:
        """Number of trials."""
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def trial_index(self) -> np.ndarray:
        """Global trial indices (``start .. start + n_trials - 1``)."""
        return np.arange(self.start, self.start + self.n_trials, dtype=np.int64)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names."""
        return tuple(self.columns)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"no trial column {name!r}; available: {', '.join(self.columns)}") from None

    def to_structured(self) -> np.ndarray:
        """A numpy structured array with a ``trial`` field and one field per column."""
        fields = [("trial", np.int64)] + [(k, v.dtype, v.shape[1:]) for k, v in self.columns.items()]
        arr = np.empty(self.n_trials, dtype=fields)
        arr["trial"] = self.trial_index
        for k, v in self.columns.items():
            arr[k] = v
        return arr

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` (atomically) readable with ``np.load(allow_pickle=False)``."""
        path = Path(path)
        payload: dict[str, np.ndarray] = {f"col_{k}": np.asarray(v) for k, v in self.columns.items()}
        payload["seed"] = np.asarray(self.seed, dtype=np.int64)
        payload["start"] = np.asarray(self.start, dtype=np.int64)
        payload["meta_json"] = np.asarray(json.dumps(self.meta, default=float))
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **payload)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrialResults:
        """Read a file written by :meth:`save` (no pickled objects are accepted)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                files = set(z.files)
                for need in ("seed", "start", "meta_json"):
                    if need not in files:
                        raise DataFormatError(
                            "not a bayesnu trials file",
                            path=path,
                            field=need,
                            fix="write it with TrialResults.save / `bayesnu trials --out`",
                        )
                columns = {k[4:]: z[k] for k in sorted(files) if k.startswith("col_")}
                seed, start = int(z["seed"]), int(z["start"])
                meta = json.loads(str(z["meta_json"]))
        except (ValueError, OSError) as exc:
            if isinstance(exc, DataFormatError):
                raise
            raise DataFormatError(
                f"cannot read trials file: {exc}", path=path, fix="pass an .npz written by bayesnu"
            ) from exc
        return cls(columns=columns, seed=seed, start=start, meta=meta)

    @classmethod
    def concatenate(cls, parts: Iterable[TrialResults]) -> TrialResults:
        """Join contiguous chunks of one seed (e.g. from several cluster jobs)."""
        parts = sorted(parts, key=lambda p: p.start)
        if not parts:
            raise ValueError("nothing to concatenate")
        seed = parts[0].seed
        for a, b in itertools.pairwise(parts):
            if b.seed != seed:
                raise ValueError(f"cannot join trials of seed {seed} and {b.seed}")
            if b.start != a.start + a.n_trials:
                raise ValueError(
                    f"trial chunks are not contiguous: [{a.start}, {a.start + a.n_trials}) then {b.start}"
                )
            if b.names != a.names:
                raise ValueError(f"trial chunks have different columns: {a.names} vs {b.names}")
        columns = {k: np.concatenate([p.columns[k] for p in parts]) for k in parts[0].names}
        return cls(columns=columns, seed=seed, start=parts[0].start, meta={"joined_from": len(parts)})


def run_trials(
    trial_fn: TrialFunction,
    n_trials: int,
    *,
    seed: int,
    inputs: Sequence[Any] = (),
    batch_size: int = 128,
    start: int = 0,
    backend: str = "local",
    scheduler: Any = None,
    n_workers: int | None = None,
    progress: bool | None = None,
    desc: str = "trials",
) -> TrialResults:
    """Run ``n_trials`` pseudo-experiments of ``trial_fn`` in vmapped batches.

    Parameters
    ----------
    trial_fn
        ``trial_fn(key, *inputs) -> dict[str, scalar]``; jit- and vmap-able (see module
        docstring). For ``backend="dask"`` prefer a module-level function of an
        importable module (it is pickled by reference); others are pickled by value.
    n_trials
        Number of trials (>= 1).
    seed
        Integer seed in ``[0, 2**63)``; trial ``i`` uses ``fold_in(key(seed), i)``.
    inputs
        Extra arguments of ``trial_fn`` (pytrees of arrays, e.g. the event table and the
        injected strength); passed to the compiled kernel as arguments.
    batch_size
        Trials per vmapped batch (static: one compilation per value).
    start
        Index of the first trial, to extend an earlier run reproducibly.
    backend
        ``"local"`` (batches in this process) or ``"dask"``.
    scheduler, n_workers
        For ``backend="dask"``: a scheduler address, a ``distributed.Client`` or
        ``None`` for a LocalCluster of ``n_workers`` single-threaded processes.
    progress
        Progress bar on/off; ``None`` shows it only in a terminal.
    desc
        Progress-bar label.

    Returns
    -------
    TrialResults
        Columns in trial order; ``meta`` holds ``wall_s``, ``trials_per_s`` and, for the
        local backend, ``compile_s`` (measured separately from the run).
    """
    if not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ConfigError(f"n_trials must be a positive integer, got {n_trials!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed <= _MAX_SEED:
        raise ConfigError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    if start < 0 or start + n_trials - 1 > _MAX_INDEX:
        raise ConfigError(f"trial indices [{start}, {start + n_trials}) must lie in [0, 2**32)")
    n_trials, batch_size, seed, start = int(n_trials), int(batch_size), int(seed), int(start)
    batch_size = min(batch_size, n_trials)
    firsts = list(range(start, start + n_trials, batch_size))
    items = [(seed, f, min(batch_size, start + n_trials - f), batch_size) for f in firsts]

    t0 = time.perf_counter()
    meta: dict[str, Any] = {"backend": backend, "batch_size": batch_size, "n_batches": len(items)}
    if backend == "local":
        dev_inputs = _as_device_inputs(inputs)
        compiled, meta["compile_s"] = _compiled_kernel(
            _local_cache_key(trial_fn), trial_fn, batch_size, dev_inputs
        )
        parts = []
        with progress_bar(n_trials, desc, enabled=progress, unit="trial") as bar:
            for s, f, nv, bs in items:
                parts.append(_run_batch(compiled, s, f, nv, bs, dev_inputs))
                bar.update(nv)
    elif backend == "dask":
        payload = (_token(trial_fn), trial_fn, jax.config.jax_compilation_cache_dir)
        with dask_client(scheduler, n_workers=n_workers) as client:
            meta["cluster_start_s"] = time.perf_counter() - t0
            meta["n_workers"] = len(client.scheduler_info().get("workers", {}))
            parts = map_ordered(
                client,
                _dask_batch_task,
                items,
                shared=(payload, _as_host_inputs(inputs)),
                desc=desc,
                progress=progress,
                weights=[it[2] for it in items],
                unit="trial",
            )
    else:
        raise ConfigError(f"backend must be 'local' or 'dask', got {backend!r}")
    wall = time.perf_counter() - t0
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    meta["wall_s"] = wall
    run_s = wall - meta.get("compile_s", 0.0) - meta.get("cluster_start_s", 0.0)
    meta["trials_per_s"] = n_trials / run_s if run_s > 0 else float("inf")
    return TrialResults(columns=columns, seed=seed, start=start, meta=meta)


def signal_sampler(
    trial_fn: TrialFunction,
    inputs: Sequence[Any],
    *,
    strength_index: int = 0,
    column: str = "ts",
    batch_size: int = 128,
    backend: str = "local",
    scheduler: Any = None,
    n_workers: int | None = None,
) -> Callable[[float, int, int], np.ndarray]:
    """Wrap a trial function as ``sampler(strength, n_trials, seed) -> TS array``.

    The sampler runs :func:`run_trials` with ``inputs[strength_index]`` replaced by the
    injected strength (a traced argument: no recompilation per strength) and returns
    the ``column`` output. This is the adapter between a per-trial function and
    :func:`bayesnu.frequentist.passing.find_strength` / the sensitivity and Neyman
    engines. For ``backend="dask"`` pass an open ``distributed.Client`` as ``scheduler``
    (see :func:`bayesnu.parallel.dask_client`) so that one cluster serves all calls.
    """
    base = list(inputs)
    if not -len(base) <= strength_index < len(base):
        raise ConfigError(f"strength_index {strength_index} is out of range for {len(base)} inputs")

    def sampler(strength: float, n_trials: int, seed: int) -> np.ndarray:
        args = list(base)
        args[strength_index] = jnp.asarray(strength, dtype=float)
        res = run_trials(
            trial_fn,
            n_trials,
            seed=seed,
            inputs=args,
            batch_size=batch_size,
            backend=backend,
            scheduler=scheduler,
            n_workers=n_workers,
            progress=False,
        )
        return res[column]

    return sampler
