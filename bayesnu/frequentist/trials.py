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
discarded) so the kernel compiles once per (function, batch size, input shapes, device).
Locally, batches go round-robin to several devices at once (on CPU, one XLA host device
per core, see :func:`default_devices`): the same kernel is compiled for each device (in
parallel) and dispatched asynchronously, so the cores work on different batches and
every trial runs the same machine code as on one device or on a dask worker.

Static capacities: a trial function that returns an ``overflow`` flag (a static buffer
was too small for this trial) can be run with tight buffers and ``retry_inputs`` holding
the same inputs with larger ones: trials that overflow are rerun, with the same keys,
on ``retry_inputs``, and their rows replaced. Tight buffers that rarely overflow cost
less per trial than generous ones that never do.

With ``backend="dask"`` batches are tasks on a ``dask.distributed`` cluster
(LocalCluster by default, see :func:`bayesnu.parallel.dask_client`); the trial function
and the inputs are scattered once to every worker, and each worker process compiles the
kernel once (cached by a content hash of the pickled function), so even functions
defined in ``__main__`` or closures do not recompile per task.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayesnu.data.atomic import atomic_path
from bayesnu.errors import ConfigError, DataFormatError
from bayesnu.parallel import dask_client, map_ordered, progress_bar

__all__ = ["TrialResults", "default_devices", "run_trials", "signal_sampler", "trial_key"]

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
    cache_key: Any, trial_fn: TrialFunction, batch_size: int, inputs: tuple[Any, ...], device: Any = None
) -> tuple[Any, float]:
    """AOT-compiled batch kernel for ``device`` and its compile time (0 when it came from the cache).

    ``inputs`` must already live on ``device`` (default: JAX's default device).
    """
    leaves, treedef = jax.tree.flatten(inputs)
    avals = tuple((x.shape, str(x.dtype), bool(getattr(x, "weak_type", False))) for x in leaves)
    key = (cache_key, batch_size, treedef, avals, None if device is None else device.id)
    hit = _COMPILED.get(key)
    if hit is not None:
        _COMPILED.move_to_end(key)
        return hit[0], 0.0
    kernel = _cached_kernel(cache_key, trial_fn)
    tc = time.perf_counter()
    seed = jnp.asarray(0, dtype=jnp.int64)
    idx = jnp.zeros(batch_size, dtype=jnp.uint32)
    if device is not None:
        seed, idx = jax.device_put(seed, device), jax.device_put(idx, device)
    compiled = kernel.lower(seed, idx, inputs).compile()
    dt = time.perf_counter() - tc
    _lru_put(_COMPILED, key, (compiled, dt))
    return compiled, dt


def default_devices() -> list[Any]:
    """Devices a local run spreads its batches over.

    On CPU, one XLA host device per core (``bayesnu`` exposes several host devices at
    import, see :mod:`bayesnu`); on an accelerator, the default device only (one batch
    fills it).
    """
    devices = jax.local_devices()
    if devices[0].platform != "cpu":
        return devices[:1]
    return devices[: max(1, min(len(devices), os.cpu_count() or 1))]


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


def _padded(indices: np.ndarray, batch_size: int) -> np.ndarray:
    idx = np.empty(batch_size, dtype=np.uint32)
    idx[: len(indices)] = indices
    idx[len(indices) :] = indices[-1]  # padding lanes repeat the last valid trial
    return idx


def _run_batch(
    kernel: Callable[..., Any], seed: int, indices: np.ndarray, batch_size: int, inputs: tuple[Any, ...]
) -> dict[str, np.ndarray]:
    out = kernel(jnp.asarray(seed, dtype=jnp.int64), jnp.asarray(_padded(indices, batch_size)), inputs)
    return {k: np.asarray(v)[: len(indices)] for k, v in out.items()}


def _run_local(
    trial_fn: TrialFunction,
    seed: int,
    batches: list[np.ndarray],
    batch_size: int,
    inputs: Sequence[Any],
    devices: Sequence[Any],
    bar: Any,
) -> tuple[list[dict[str, np.ndarray]], float]:
    """Run index batches round-robin over ``devices``; returns the parts in order and the compile time."""
    host = _as_device_inputs(inputs)
    cache_key = _local_cache_key(trial_fn)
    devices = list(devices)[: len(batches)]  # a few reruns need not compile for every device
    per_device = [jax.device_put(host, d) for d in devices]
    tc = time.perf_counter()
    if len(devices) == 1:
        compiled = [_compiled_kernel(cache_key, trial_fn, batch_size, per_device[0], devices[0])]
    else:  # XLA compiles without the GIL: one thread per device
        with ThreadPoolExecutor(len(devices)) as ex:
            compiled = list(ex.map(lambda k: _compiled_kernel(cache_key, trial_fn, batch_size, per_device[k],
                                                              devices[k]), range(len(devices))))  # fmt: skip
    compile_s = time.perf_counter() - tc if any(dt > 0 for _, dt in compiled) else 0.0
    seeds = [jax.device_put(jnp.asarray(seed, dtype=jnp.int64), d) for d in devices]
    parts: list[dict[str, np.ndarray]] = []
    pending: deque[tuple[int, Any]] = deque()

    def collect() -> None:
        n, out = pending.popleft()
        parts.append({k: np.asarray(v)[:n] for k, v in out.items()})
        bar.update(n)

    for j, indices in enumerate(batches):
        k = j % len(devices)
        idx = jax.device_put(_padded(indices, batch_size), devices[k])
        pending.append((len(indices), compiled[k][0](seeds[k], idx, per_device[k])))  # asynchronous
        if len(pending) > 2 * len(devices):
            collect()
    while pending:
        collect()
    return parts, compile_s


def _dask_batch_task(
    item: tuple[int, np.ndarray, int], fn_payload: tuple[str, TrialFunction, Any], inputs: Any
) -> Any:
    """One batch on a dask worker (module level, so workers import it by reference)."""
    seed, indices, batch_size = item
    token, trial_fn, cache_dir = fn_payload
    if cache_dir and jax.config.jax_compilation_cache_dir != cache_dir:
        # the client's persistent compilation cache: workers reuse each other's kernels
        jax.config.update("jax_compilation_cache_dir", cache_dir)
    dev_inputs = _as_device_inputs(inputs)
    compiled, _ = _compiled_kernel(("token", token), trial_fn, batch_size, dev_inputs)
    return _run_batch(compiled, seed, indices, batch_size, dev_inputs)


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
    devices: Sequence[Any] | None = None,
    retry_inputs: Sequence[Any] | None = None,
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
        Trials per vmapped batch and device (static: one compilation per value).
    start
        Index of the first trial, to extend an earlier run reproducibly.
    backend
        ``"local"`` (batches in this process) or ``"dask"``.
    scheduler, n_workers
        For ``backend="dask"``: a scheduler address, a ``distributed.Client`` or
        ``None`` for a LocalCluster of ``n_workers`` single-threaded processes.
    devices
        Local backend: devices that take batches in turn (default
        :func:`default_devices`: one per CPU core). Results do not depend on it.
    retry_inputs
        The ``inputs`` with larger static capacities. Trials whose ``overflow`` output
        is true are rerun on them (same keys) and their rows replaced; ``meta["n_retried"]``
        counts them. Their rows equal a run on ``retry_inputs``; the other rows equal it
        up to float rounding (sums over differently padded buffers).
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
    if backend not in ("local", "dask"):
        raise ConfigError(f"backend must be 'local' or 'dask', got {backend!r}")
    n_trials, batch_size, seed, start = int(n_trials), int(batch_size), int(seed), int(start)
    devices = list(devices) if devices else default_devices()
    if backend == "local":  # every device gets a batch
        batch_size = min(batch_size, -(-n_trials // len(devices)))
    else:
        batch_size = min(batch_size, n_trials)
    indices = np.arange(start, start + n_trials, dtype=np.int64)

    t0 = time.perf_counter()
    meta: dict[str, Any] = {"backend": backend, "batch_size": batch_size}
    if backend == "local":
        meta["n_devices"] = len(devices)
    run = _Runner(trial_fn, seed, backend, scheduler, n_workers, devices, progress, desc, meta)
    with run:
        parts, meta["n_batches"] = run(indices, batch_size, inputs)
        columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if retry_inputs is not None and "overflow" in columns:
            rows = np.flatnonzero(columns["overflow"])
            meta["n_retried"] = int(rows.size)
            if rows.size:
                again, _ = run(indices[rows], min(batch_size, _RETRY_BATCH), retry_inputs)
                for k in columns:
                    columns[k][rows] = np.concatenate([p[k] for p in again])
    wall = time.perf_counter() - t0
    meta["wall_s"] = wall
    run_s = wall - meta.get("compile_s", 0.0) - meta.get("cluster_start_s", 0.0)
    meta["trials_per_s"] = n_trials / run_s if run_s > 0 else float("inf")
    return TrialResults(columns=columns, seed=seed, start=start, meta=meta)


#: Batch size of the reruns of overflowing trials (few; a small kernel).
_RETRY_BATCH = 16


class _Runner:
    """Runs index arrays in batches on the local devices or a dask cluster (one cluster per run)."""

    def __init__(self, trial_fn, seed, backend, scheduler, n_workers, devices, progress, desc, meta) -> None:
        self.trial_fn, self.seed, self.backend = trial_fn, seed, backend
        self.scheduler, self.n_workers, self.devices = scheduler, n_workers, devices
        self.progress, self.desc, self.meta = progress, desc, meta
        self._stack = contextlib.ExitStack()
        self._client: Any = None

    def __enter__(self) -> _Runner:
        if self.backend == "dask":
            t0 = time.perf_counter()
            self._client = self._stack.enter_context(dask_client(self.scheduler, n_workers=self.n_workers))
            self.meta["cluster_start_s"] = time.perf_counter() - t0
            self.meta["n_workers"] = len(self._client.scheduler_info().get("workers", {}))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def __call__(
        self, indices: np.ndarray, batch_size: int, inputs: Sequence[Any]
    ) -> tuple[list[dict[str, np.ndarray]], int]:
        batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
        if self.backend == "local":
            with progress_bar(len(indices), self.desc, enabled=self.progress, unit="trial") as bar:
                parts, compile_s = _run_local(
                    self.trial_fn, self.seed, batches, batch_size, inputs, self.devices, bar
                )
            self.meta["compile_s"] = self.meta.get("compile_s", 0.0) + compile_s
            return parts, len(batches)
        payload = (_token(self.trial_fn), self.trial_fn, jax.config.jax_compilation_cache_dir)
        parts = map_ordered(
            self._client,
            _dask_batch_task,
            [(self.seed, b, batch_size) for b in batches],
            shared=(payload, _as_host_inputs(inputs)),
            desc=self.desc,
            progress=self.progress,
            weights=[len(b) for b in batches],
            unit="trial",
        )
        return parts, len(batches)


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
    retry_inputs: Sequence[Any] | None = None,
) -> Callable[[float, int, int], np.ndarray]:
    """Wrap a trial function as ``sampler(strength, n_trials, seed) -> TS array``.

    The sampler runs :func:`run_trials` with ``inputs[strength_index]`` replaced by the
    injected strength (a traced argument: no recompilation per strength) and returns
    the ``column`` output. This is the adapter between a per-trial function and
    :func:`bayesnu.frequentist.passing.find_strength` / the sensitivity and Neyman
    engines. ``retry_inputs`` (the inputs with larger static capacities, see
    :func:`run_trials`) get the same strength. For ``backend="dask"`` pass an open
    ``distributed.Client`` as ``scheduler`` (see :func:`bayesnu.parallel.dask_client`)
    so that one cluster serves all calls.
    """
    base = list(inputs)
    if not -len(base) <= strength_index < len(base):
        raise ConfigError(f"strength_index {strength_index} is out of range for {len(base)} inputs")

    retry = None if retry_inputs is None else list(retry_inputs)

    def sampler(strength: float, n_trials: int, seed: int) -> np.ndarray:
        args = list(base)
        args[strength_index] = jnp.asarray(strength, dtype=float)
        again = None
        if retry is not None:
            again = list(retry)
            again[strength_index] = args[strength_index]
        res = run_trials(
            trial_fn,
            n_trials,
            seed=seed,
            inputs=args,
            batch_size=batch_size,
            backend=backend,
            scheduler=scheduler,
            n_workers=n_workers,
            retry_inputs=again,
            progress=False,
        )
        return res[column]

    return sampler
