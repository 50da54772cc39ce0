"""Parallel sweeps (qmu_core.parallel), the checksummed run cache (qmu_core.sweep) and the
batched QNN trainer (qmu_core.batched), on tiny sweeps: 20 images per class, 3 epochs.

Every test uses its own cache folder (QMU_CACHE_DIR in tmp_path). Records are compared
without their ``seconds`` field (the training's wall time), which no two runs share.
"""

from __future__ import annotations

import json
import os
import re

import jax
import numpy as np
import psutil
import pytest

from qmu_core import batched, data, parallel, qnn, resilience, sweep, training
from qmu_core.config import ModelSpec, TrainConfig
from qmu_core.corruption import corrupt
from qmu_core.parallel import CacheWarning, run_sweeps
from qmu_core.qnn import QNN
from qmu_core.sweep import SweepSpec, run_sweep
from qmu_core.validation import ParameterError

CFG = TrainConfig(epochs=3, batch_size=16, lr=0.05)  # 40 samples = 2 batches of 16 + 8


def specs(n_runs: int = 2, alphas=(0.0, 0.4)) -> list[SweepSpec]:
    return [SweepSpec(ModelSpec("mlp", hidden=(8, 4)), "label_flip", alphas, n_runs, CFG),
            SweepSpec(ModelSpec("qnn", depth=2), "feature_random", alphas, n_runs, CFG)]


def timeless(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def csv_bytes(df, path) -> bytes:
    return resilience.write_csv(df.drop(columns="seconds"), path).read_bytes()


@pytest.fixture(scope="module")
def ds():
    return data.mnist_1v9(n_per_class=20, n_val=30)


@pytest.fixture(scope="module")
def serial(ds, tmp_path_factory):
    """The reference: both sweeps computed in this process, without Dask."""
    os.environ["QMU_CACHE_DIR"] = str(tmp_path_factory.mktemp("serial-cache"))
    try:
        df = resilience.run([(ds, s) for s in specs()], workers=1, progress=False)
        recs = run_sweeps([(ds, s) for s in specs()], workers=1, progress=False)  # read back
    finally:
        del os.environ["QMU_CACHE_DIR"]
    return df, recs


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QMU_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(parallel.SCHEDULER_ENV, raising=False)
    return tmp_path / "cache"


def cache_files(ds, spec: SweepSpec):
    return [sweep.run_file(sweep.cache_folder(ds, spec), a, r) for a in spec.alphas for r in range(spec.n_runs)]


# ----------------------------------------------------------------------------- parallel = serial
def test_two_local_workers_give_the_serial_bytes_and_show_progress(ds, serial, cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(parallel, "PROGRESS_MININTERVAL", 0.0)
    df = resilience.run([(ds, s) for s in specs()], workers=2)
    bars = re.findall(r"(\d+)/8 \[", capsys.readouterr().err)
    assert csv_bytes(df, tmp_path / "a.csv") == csv_bytes(serial[0], tmp_path / "b.csv")
    got = run_sweeps([(ds, s) for s in specs()], workers=1, progress=False)  # from the cache
    assert [timeless(r) for r in got] == [timeless(r) for r in serial[1]]  # histories too
    # the bar advanced run by run as results arrived (8 runs, 2 workers: not all at once)
    assert list(dict.fromkeys(int(b) for b in bars)) == list(range(9))


def test_progress_bar_advances_as_runs_finish_in_process(ds, cache, monkeypatch, capsys):
    monkeypatch.setattr(parallel, "PROGRESS_MININTERVAL", 0.0)
    spec = specs()[0]
    run_sweep(ds, spec, workers=1)
    err = capsys.readouterr().err
    assert err.startswith(f"\r{ds.name} {spec.model.label} label_flip:")
    assert list(dict.fromkeys(int(b) for b in re.findall(r"(\d+)/4 \[", err))) == [0, 1, 2, 3, 4]
    run_sweep(ds, spec, workers=1, progress=False)
    assert capsys.readouterr().err == ""


def test_interrupted_client_keeps_finished_runs_and_resumes_with_the_rest(ds, serial, cache, monkeypatch, caplog):
    """The client of two workers is stopped (Ctrl-C) after 3 of 8 results: the cluster is shut
    down, those 3 runs are on disk and valid, and the rerun computes only the 5 others, giving
    the serial records."""
    write, done = sweep.write_entry, []

    def write_then_interrupt(path, rec):
        write(path, rec)
        done.append(path)
        if len(done) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(parallel, "write_entry", write_then_interrupt)
    jobs = [(ds, s) for s in specs()]
    with pytest.raises(KeyboardInterrupt):
        run_sweeps(jobs, workers=2, progress=False)
    # no worker process left behind (multiprocessing's resource tracker stays, by design)
    assert [c for c in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(c.cmdline())] == []
    monkeypatch.setattr(parallel, "write_entry", write)
    files = [f for s in specs() for f in cache_files(ds, s)]
    assert sorted(f for f in files if f.exists()) == sorted(done)
    kept = {f: f.read_bytes() for f in done}
    for f in done:
        assert sweep.read_entry(f, {})[1] is None
    with caplog.at_level("INFO", logger="qmu_core.parallel"):
        got = run_sweeps(jobs, workers=1, progress=False)
    assert "5 of 8 runs to compute" in caplog.text
    assert all(f.read_bytes() == kept[f] for f in done)  # not recomputed
    assert [timeless(r) for r in got] == [timeless(r) for r in serial[1]]


def test_killed_worker_loses_no_finished_run(ds, serial, cache, monkeypatch):
    """On a cluster reached by its address (as with QMU_SCHEDULER), one of two workers is
    killed when the first result arrives: its run is computed again elsewhere, and the sweep
    (the MLP's, the cheaper) ends with every record equal to the serial one and every cache
    file valid."""
    from distributed import Client

    with parallel.local_cluster(2) as cluster, Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        write, killed = sweep.write_entry, []

        def write_and_kill(path, rec):
            write(path, rec)
            if not killed:
                os.kill(pids[0], 9)
                killed.append(path)

        monkeypatch.setattr(parallel, "write_entry", write_and_kill)
        (got,) = run_sweeps([(ds, specs()[0])], scheduler=cluster.scheduler_address, progress=False)
        assert killed
    assert timeless(got) == timeless(serial[1][0])
    assert all(sweep.read_entry(f, {})[0] is not None for f in cache_files(ds, specs()[0]))


def test_local_workers_keep_glibcs_dynamic_malloc(monkeypatch):
    """Dask's nanny would start the workers with MALLOC_TRIM_THRESHOLD_=65536 (and leak it into
    this process), which makes every large buffer a fresh mmap (benchmarks/worker_malloc.py:
    a ResNet run 2.2-2.6x slower); the local cluster unsets it, in the workers and here."""
    from distributed import Client

    trim = "MALLOC_TRIM_THRESHOLD_"
    monkeypatch.delenv(trim, raising=False)
    with parallel.local_cluster(1) as cluster, Client(cluster) as client:
        assert list(client.run(os.environ.get, trim).values()) == [None]
    assert trim not in os.environ
    monkeypatch.setattr(parallel, "KEEP_GLIBC_MALLOC", {})  # Dask's own default, for contrast
    try:
        with parallel.local_cluster(1) as cluster, Client(cluster) as client:
            assert list(client.run(os.environ.get, trim).values()) == ["65536"]
        assert os.environ.get(trim) == "65536"
    finally:  # the nanny set it here: later clusters of the session would inherit it
        os.environ.pop(trim, None)


# ----------------------------------------------------------------------------- the cache
def test_tampered_cache_entries_are_reported_and_recomputed(ds, cache):
    spec = SweepSpec(ModelSpec("mlp", hidden=(8, 4)), "label_flip", (0.0, 0.4), 3, CFG)
    clean = run_sweep(ds, spec, workers=1, progress=False)
    files = cache_files(ds, spec)
    untouched = {f: f.read_bytes() for f in files[4:]}
    text = files[0].read_text()
    files[0].write_text(text[: len(text) // 2])  # truncated
    i = files[1].read_text().index('"val_loss": ') + len('"val_loss": ') + 3  # a digit of the number
    flipped = bytearray(files[1].read_bytes())
    flipped[i] = ord("7") if flipped[i] != ord("7") else ord("3")
    files[1].write_bytes(bytes(flipped))
    files[2].write_bytes(b"\xff\xfe\x00 not a cache entry")  # garbage
    files[3].write_text(json.dumps(json.loads(files[3].read_text())["record"]))  # the old format: no checksum
    files[5].write_text(files[4].read_text())  # a valid entry of another run
    with pytest.warns(CacheWarning) as w:
        again = run_sweep(ds, spec, workers=1, progress=False)
    msg = str(w[0].message)
    assert msg.startswith("5 sweep cache file(s) are invalid")
    for f, what in [(files[0], "not valid JSON"), (files[1], "checksum mismatch"), (files[2], "not valid JSON"),
                    (files[3], "old format without a checksum"), (files[5], "holds another run")]:
        assert f"{f} ({what}" in msg
    assert timeless(again) == timeless(clean)
    assert again[4] == clean[4] and files[4].read_bytes() == untouched[files[4]]  # valid: read, not recomputed
    for f in files:
        assert sweep.read_entry(f, {})[1] is None


def test_cache_entry_checksum_round_trip(tmp_path):
    rec = {"alpha": 0.1, "run": 0, "val_acc": 0.1 + 0.2, "history": {"val_loss": [float("nan"), 1e-300]}}
    f = sweep.write_entry(tmp_path / "x.json", rec)
    got, problem = sweep.read_entry(f, {"alpha": 0.1, "run": 0})
    assert problem is None and got["val_acc"] == rec["val_acc"]
    assert sweep.read_entry(tmp_path / "missing.json", {}) == (None, None)
    assert "another run" in sweep.read_entry(f, {"run": 1})[1]


# ----------------------------------------------------------------------------- input checks
@pytest.mark.parametrize("kwargs, match", [
    ({"scheduler": 8786}, r"parameter 'scheduler' must be a string, got 8786 \(int\)"),
    ({"scheduler": "localhost:8786"}, r"parameter 'scheduler' must be empty or a Dask scheduler address 'tcp://host:port'"),
    ({"scheduler": "tcp://host:8786/x"}, r"got 'tcp://host:8786/x'"),
    ({"workers": -1}, r"parameter 'workers' must be >= 0, got -1"),
    ({"workers": "2"}, r"parameter 'workers' must be an integer, got '2' \(str\)"),
    ({"workers": True}, r"parameter 'workers' must be an integer"),
    ({"workers": 2.0}, r"parameter 'workers' must be an integer"),
    ({"scheduler": "tcp://127.0.0.1:8786", "workers": 2}, r"'scheduler' .* and 'workers' \(2\) exclude each other"),
])
def test_scheduler_and_workers_are_validated(ds, cache, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        run_sweeps([(ds, specs()[0])], **kwargs)
    assert not cache.exists() or not any(cache.rglob("*.json"))  # refused before any work


def test_scheduler_from_the_environment_and_bad_jobs(ds, cache, monkeypatch):
    monkeypatch.setenv(parallel.SCHEDULER_ENV, "8786")
    with pytest.raises(ParameterError, match=r"environment variable QMU_SCHEDULER must be empty or a Dask"):
        run_sweeps([(ds, specs()[0])])
    assert parallel._where(None, 1) == ("process", 1)  # workers=1 wins over the environment
    monkeypatch.setenv(parallel.SCHEDULER_ENV, "tcp://10.0.0.1:8786")
    assert parallel._where(None, None) == ("remote", "tcp://10.0.0.1:8786")
    assert parallel._where("tcp://h:1", 0) == ("remote", "tcp://h:1")
    monkeypatch.delenv(parallel.SCHEDULER_ENV)
    assert parallel._where(None, 0) == ("local", parallel.usable_cores())
    assert parallel._where(None, 3) == ("local", 3)
    with pytest.raises(ParameterError, match=r"parameter 'jobs\[0\]' must be a \(Dataset, SweepSpec\) pair"):
        run_sweeps([(specs()[0], ds)])
    with pytest.raises(ParameterError, match=r"parameter 'jobs' must be a list"):
        run_sweeps((ds, specs()[0]))
    with pytest.raises(ParameterError, match=r"parameter 'jobs' must be a list of \(Dataset, SweepSpec\) pairs"):
        resilience.run([(ds, specs()[0], 1)])


def test_same_run_asked_twice_is_computed_once(ds, cache, caplog):
    s = specs()[0]
    with caplog.at_level("INFO", logger="qmu_core.parallel"):
        a, b = run_sweeps([(ds, s), (ds, s)], workers=1, progress=False)
    assert "4 of 8 runs to compute" in caplog.text and a == b


# ----------------------------------------------------------------------------- batched trainer
def _corrupted_sets(ds, n):
    sets = [corrupt(ds.x_train, ds.y_train, 0.2 * r, "label_flip", seed=r) for r in range(n)]
    return np.stack([c.x for c in sets]), np.stack([c.y for c in sets])


def test_batched_trainer_matches_the_serial_xla_trainer(ds, monkeypatch):
    model = QNN(ds.n_qubits, 2)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, eval_every=2)
    xs, ys = _corrupted_sets(ds, 3)
    seeds = [11, 12, 13]
    params, hists = batched.train_qnn_batched(model, xs, ys, ds.x_val, ds.y_val, cfg, seeds, pad_to=4)
    assert params.shape == (3, *model.param_shape)
    monkeypatch.setattr(training, "qnn_kernel_name", lambda: qnn.KERNEL)  # the serial trainer, XLA kernel
    for r in range(3):
        p, h = training.train_qnn(model, xs[r], ys[r], ds.x_val, ds.y_val, cfg, seeds[r])
        np.testing.assert_allclose(np.asarray(params[r]), np.asarray(p), atol=1e-4, rtol=0)
        assert hists[r].epoch.tolist() == h.epoch.tolist() == [2, 3]
        # the same number of correct predictions (the division may round differently)
        np.testing.assert_array_equal(np.round(hists[r].train_acc * 40), np.round(h.train_acc * 40))
        np.testing.assert_array_equal(np.round(hists[r].val_acc * 30), np.round(h.val_acc * 30))
        np.testing.assert_allclose(hists[r].val_loss, h.val_loss, atol=1e-5)
    # a run's numbers do not depend on the other runs of its (padded) batch
    p1, h1 = batched.train_qnn_batched(model, xs[1:2], ys[1:2], ds.x_val, ds.y_val, cfg, seeds[1:2], pad_to=4)
    np.testing.assert_array_equal(np.asarray(p1[0]), np.asarray(params[1]))
    np.testing.assert_array_equal(h1[0].val_loss, hists[1].val_loss)
    with pytest.raises(ParameterError, match="need xs of shape"):
        batched.train_qnn_batched(model, xs, ys, ds.x_val, ds.y_val, cfg, seeds[:2])


def test_on_an_accelerator_qnn_sweeps_are_batched_in_process(ds, cache, monkeypatch):
    """With JAX reporting a GPU (simulated: the programs still run on the CPU), a QNN sweep is
    computed here, in batches of runs, and cached under the batched kernel's key."""
    spec = specs(n_runs=3)[1]
    cpu_key = sweep.cache_key(ds, spec)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert parallel._where(None, 0) == ("process", 1)
    assert sweep.qnn_sweep_kernel() == batched.KERNEL and sweep.cache_key(ds, spec) != cpu_key
    assert sweep.cache_key(ds, specs()[0]) == sweep.cache_key(ds, specs()[0])  # MLP keys unchanged
    calls = []
    run_batch = sweep.run_batch
    monkeypatch.setattr(sweep, "run_batch", lambda *a: calls.append(len(a[2])) or run_batch(*a))
    recs = run_sweep(ds, spec, progress=False)
    assert calls == [6] and [(r["alpha"], r["run"]) for r in recs] == [(a, r) for a in spec.alphas for r in range(3)]
    assert all(sweep.read_entry(f, {})[0] is not None for f in cache_files(ds, spec))
    rec = sweep.run_one(ds, spec, 0.4, 2)  # one run alone goes through run_batch too
    assert calls[-1] == 1 and timeless([rec]) == timeless([recs[-1]])  # same bits alone as in a batch of 6
