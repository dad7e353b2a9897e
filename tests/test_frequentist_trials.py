"""Trial runner: reproducibility across batch sizes, chunks and backends; file round trip."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesnu.errors import ConfigError, DataFormatError
from bayesnu.frequentist.testproblems import PeakProblem, counting_trial, peak_trial
from bayesnu.frequentist.trials import TrialResults, run_trials, signal_sampler, trial_key

PROBLEM = PeakProblem(n_background=100.0, sigma=0.05, n_max=192)


def _equal(a: TrialResults, b: TrialResults) -> None:
    assert a.names == b.names
    for k in a.names:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_batch_size_does_not_change_results():
    ref = run_trials(peak_trial, 300, seed=11, inputs=(3.0, PROBLEM), batch_size=64)
    for bs in (100, 1000):
        _equal(ref, run_trials(peak_trial, 300, seed=11, inputs=(3.0, PROBLEM), batch_size=bs))
    assert ref.n_trials == 300
    assert not ref["overflow"].any()
    # signal was injected and found: mean fitted ns near the mean injected
    assert abs(ref["ns"].mean() - ref["n_signal"].mean()) < 1.0


def test_chunks_concatenate_to_the_full_run():
    full = run_trials(peak_trial, 250, seed=3, inputs=(0.0, PROBLEM), batch_size=64)
    a = run_trials(peak_trial, 100, seed=3, inputs=(0.0, PROBLEM), batch_size=64)
    b = run_trials(peak_trial, 150, seed=3, inputs=(0.0, PROBLEM), batch_size=64, start=100)
    joined = TrialResults.concatenate([b, a])
    _equal(full, joined)
    np.testing.assert_array_equal(joined.trial_index, np.arange(250))
    with pytest.raises(ValueError, match="contiguous"):
        TrialResults.concatenate(
            [a, run_trials(peak_trial, 64, seed=3, inputs=(0.0, PROBLEM), batch_size=64, start=200)]
        )


def test_trial_i_uses_fold_in_key():
    res = run_trials(counting_trial, 40, seed=7, inputs=(2.0, 5.0), batch_size=64)
    for i in (0, 17, 39):
        one = counting_trial(trial_key(7, i), 2.0, 5.0)
        assert float(one["n"]) == res["n"][i]
    other = run_trials(counting_trial, 40, seed=8, inputs=(2.0, 5.0), batch_size=64)
    assert not np.array_equal(res["n"], other["n"])


def test_counting_trials_match_poisson_mean():
    res = run_trials(
        counting_trial, 4000, seed=1, inputs=(jnp.asarray(3.0), jnp.asarray(10.0)), batch_size=64
    )
    n = res["n"]
    assert abs(n.mean() - 13.0) < 4 * np.sqrt(13.0 / n.size)
    # TS formula: 2[n log(n/b) - (n-b)] above b, 0 below
    i = int(np.argmax(n))
    expect = 2 * (n[i] * np.log(n[i] / 10.0) - (n[i] - 10.0))
    assert res["ts"][i] == pytest.approx(expect, rel=1e-12)
    assert np.all(res["ts"][n <= 10] == 0)


def test_devices_do_not_change_results():
    """Batches spread over several (CPU host) devices give the single-device numbers."""
    devices = jax.devices()
    assert len(devices) >= 2, "bayesnu exposes several host devices at import"
    one = run_trials(peak_trial, 300, seed=4, inputs=(3.0, PROBLEM), batch_size=32, devices=devices[:1])
    two = run_trials(peak_trial, 300, seed=4, inputs=(3.0, PROBLEM), batch_size=32, devices=devices[:2])
    _equal(one, two)
    assert one.meta["n_devices"] == 1 and two.meta["n_devices"] == 2
    assert two.meta["n_batches"] == 10  # ceil(300 / 32), alternating between the devices


def _capped_trial(key: jax.Array, capacity: jax.Array) -> dict[str, jax.Array]:
    """Largest of n ~ Poisson(6) uniforms, kept in a static buffer of ``capacity.shape[0]`` rows."""
    k_n, k_u = jax.random.split(key)
    n = jax.random.poisson(k_n, 6.0)
    u = jax.random.uniform(k_u, (64,))  # the draws do not depend on the capacity
    cap = capacity.shape[0]
    top = jnp.max(jnp.where(jnp.arange(cap) < n, u[:cap], -1.0))
    return {"top": top, "n": n, "overflow": n > cap}


def test_overflowing_trials_are_rerun_with_the_retry_inputs():
    full = run_trials(_capped_trial, 500, seed=9, inputs=(jnp.zeros(64),), batch_size=64)
    assert not full["overflow"].any()
    tight = run_trials(
        _capped_trial, 500, seed=9, inputs=(jnp.zeros(5),), retry_inputs=(jnp.zeros(64),), batch_size=64
    )
    _equal(full, tight)
    # P(Poisson(6) > 5) = 0.55: about half the trials needed the rerun
    assert tight.meta["n_retried"] == int(np.sum(full["n"] > 5)) > 200
    plain = run_trials(_capped_trial, 500, seed=9, inputs=(jnp.zeros(5),), batch_size=64)
    assert plain["overflow"].sum() == tight.meta["n_retried"]
    np.testing.assert_array_equal(plain["top"][~plain["overflow"]], full["top"][~plain["overflow"]])


def test_save_load_round_trip(tmp_path):
    res = run_trials(peak_trial, 128, seed=2, inputs=(1.0, PROBLEM), batch_size=64)
    path = res.save(tmp_path / "t.npz")
    back = TrialResults.load(path)
    _equal(res, back)
    assert back.seed == 2 and back.start == 0 and back.meta["batch_size"] == 64
    structured = back.to_structured()
    assert structured.dtype.names[0] == "trial"
    np.testing.assert_array_equal(structured["ts"], res["ts"])
    with np.load(path, allow_pickle=False) as z:
        assert "col_ts" in z.files


def test_load_rejects_foreign_files(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, ts=np.zeros(3))
    with pytest.raises(DataFormatError, match="seed"):
        TrialResults.load(bad)
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled,
        seed=np.int64(1),
        start=np.int64(0),
        meta_json=np.asarray("{}"),
        col_x=np.array([{}], dtype=object),
    )
    with pytest.raises(DataFormatError):
        TrialResults.load(pickled)


def test_bad_arguments():
    with pytest.raises(ConfigError):
        run_trials(peak_trial, 0, seed=1, inputs=(0.0, PROBLEM))
    with pytest.raises(ConfigError):
        run_trials(peak_trial, 10, seed=-1, inputs=(0.0, PROBLEM))
    with pytest.raises(ConfigError, match="backend"):
        run_trials(peak_trial, 10, seed=1, inputs=(0.0, PROBLEM), backend="threads")
    with pytest.raises(ConfigError, match="dict"):
        run_trials(lambda key: jax.random.uniform(key), 4, seed=1)


def test_signal_sampler_passes_strength_without_recompiling():
    samp = signal_sampler(peak_trial, (0.0, PROBLEM), batch_size=64)
    t0 = samp(0.0, 200, 5)
    t8 = samp(8.0, 200, 5)
    assert np.median(t8) > np.median(t0) + 4
    res = run_trials(peak_trial, 200, seed=5, inputs=(8.0, PROBLEM), batch_size=64, progress=False)
    assert res.meta["compile_s"] == 0.0  # the kernel compiled for the sampler is reused
    np.testing.assert_array_equal(res["ts"], t8)


@pytest.mark.slow
def test_dask_local_cluster_identical_to_local():
    local = run_trials(peak_trial, 600, seed=21, inputs=(2.0, PROBLEM), batch_size=64)
    dist = run_trials(
        peak_trial,
        600,
        seed=21,
        inputs=(2.0, PROBLEM),
        batch_size=64,
        backend="dask",
        n_workers=2,
        progress=False,
    )
    _equal(local, dist)
    assert dist.meta["n_workers"] == 2 and dist.meta["n_batches"] == 10
