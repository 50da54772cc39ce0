"""Sweeps: the trainings behind one curve of Fig. 2 (every alpha x every run) as one job.

Every finished run is written atomically to a cache folder keyed by everything that
determines it (dataset contents, model, corruption, hyperparameters, seeds, kernel), so an
interrupted sweep resumes where it stopped and a rerun with the same parameters costs
nothing. Each cache file carries the SHA-256 of its record: a truncated, altered or
unreadable file is reported and its run computed again, never trusted. Seeds are derived
from (seed, dataset, corruption, alpha, run): the MLP and the QNN of the same (alpha, run)
see the same corrupted training set.

This module computes runs (:func:`run_one`, :func:`run_batch`) and reads and writes the
cache; :func:`qmu_core.parallel.run_sweeps` decides what is missing and where it is
computed (in this process or on Dask workers).
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import numpy as np

from . import batched, mlp_batched, paths
from .config import ModelSpec, TrainConfig
from .corruption import CORRUPTIONS, CorruptedSet, corrupt_dataset
from .data import Dataset, as_real_features
from .io import atomic_write_text, sha256_bytes
from .qnn import QNN
from .training import History, active_inputs, qnn_kernel_name, train
from .validation import check_alpha, check_choice, check_int


def derive_seed(seed: int, *keys) -> int:
    """A 32-bit seed from a base seed and a tuple of labels (stable across processes)."""
    words = [int(seed)] + [zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


@dataclass(frozen=True)
class SweepSpec:
    model: ModelSpec
    corruption: str
    alphas: tuple[float, ...]
    n_runs: int
    cfg: TrainConfig
    seed: int = 0
    dtype: str = "complex64"

    def __post_init__(self):
        check_choice("corruption", self.corruption, CORRUPTIONS)
        object.__setattr__(self, "alphas", tuple(check_alpha(a, "alphas") for a in self.alphas))
        check_int("n_runs", self.n_runs, min=1)
        check_int("seed", self.seed, min=0)


def _fingerprint(ds: Dataset) -> str:
    h = hashlib.sha256()
    for a in (ds.x_train, ds.y_train, ds.x_val, ds.y_val):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def qnn_sweep_kernel() -> str:
    """The simulation that trains the QNN runs of a sweep in this process, part of their cache
    key: on a CPU the adjoint kernel, one run at a time (:func:`qnn_kernel_name`); on an
    accelerator the XLA kernel vectorised over runs (:data:`qmu_core.batched.KERNEL`)."""
    return qnn_kernel_name() if jax.default_backend() == "cpu" else batched.KERNEL


def cache_key(ds: Dataset, spec: SweepSpec) -> str:
    """The name of the cache folder of ``spec``'s runs on ``ds``. The alpha grid and the
    number of runs are left out: a run depends only on its own (alpha, run), so a sweep over
    other alphas or more runs (e.g. the capacity chapter's D = 4 curve) reuses every run
    already done. The name of the arithmetic that trains the runs is part of it (QNN kernel,
    MLP optimizer, :data:`qmu_core.classical.TORCH_KERNEL` for the CNN and ResNet), so runs of
    another arithmetic are never mixed into a curve."""
    from .classical import IMAGE_FAMILIES, TORCH_KERNEL  # classical imports resilience, which imports this module

    fields = {k: v for k, v in asdict(spec).items() if k not in ("alphas", "n_runs")}
    if fields["cfg"]["adam"] == "optax":  # the default leaves the keys of cached runs unchanged
        del fields["cfg"]["adam"]
    if spec.model.kind == "qnn":
        fields["kernel"] = qnn_sweep_kernel()
    elif spec.model.kind == "mlp":
        fields["optimizer"] = mlp_batched.KERNEL
    elif spec.model.kind in IMAGE_FAMILIES and TORCH_KERNEL[spec.model.kind] is not None:
        fields["kernel"] = TORCH_KERNEL[spec.model.kind]  # no name: the reference arithmetic, as first cached
    key = json.dumps({"data": _fingerprint(ds), **fields}, sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def cache_folder(ds: Dataset, spec: SweepSpec) -> Path:
    """The cache folder of ``spec``'s runs (see :func:`cache_key`)."""
    return paths.cache_dir() / "sweeps" / cache_key(ds, spec)


def run_file(folder: Path, alpha: float, run: int) -> Path:
    """The cache file of one (alpha, run)."""
    return folder / f"alpha{round(alpha * 1000):04d}_run{run:02d}.json"


# ----------------------------------------------------------------------------- cache files
def _canonical(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def encode_entry(record: dict) -> str:
    """A cache file's text: the record and the SHA-256 of its canonical JSON (sorted keys,
    no spaces; floats round-trip exactly through JSON, so the digest is reproducible)."""
    return json.dumps({"sha256": sha256_bytes(_canonical(record)), "record": record})


def read_entry(path: Path, expect: dict) -> tuple[dict | None, str | None]:
    """(record, None) for a valid cache file, (None, None) for a missing one and
    (None, what is wrong) for one that must not be trusted: unreadable, not JSON (e.g.
    truncated), the old format without a checksum, a checksum that does not match its
    record (altered), or a record of another run than ``expect`` (its identifying fields)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"unreadable ({e})"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError
        return None, f"not valid JSON, truncated or corrupted ({e})"
    if not isinstance(doc, dict):
        return None, "not a sweep cache entry"
    if "sha256" not in doc or not isinstance(doc.get("record"), dict):
        if "alpha" in doc and "run" in doc:
            return None, "old format without a checksum"
        return None, "not a sweep cache entry"
    record = doc["record"]
    if doc["sha256"] != sha256_bytes(_canonical(record)):
        return None, "checksum mismatch: the record was altered"
    other = {k: record.get(k) for k in expect if _key(k, record.get(k)) != _key(k, expect[k])}
    if other:
        return None, f"holds another run ({other}, expected {expect})"
    return record, None


def _key(field: str, value):
    """Compare alphas as the file names do (to 1e-3), every other field exactly."""
    return round(value * 1000) if field == "alpha" and isinstance(value, (int, float)) else value


def write_entry(path: Path, record: dict) -> Path:
    """Write one run's cache file atomically (temporary file, then rename)."""
    return atomic_write_text(path, encode_entry(record))


def identity(ds: Dataset, spec: SweepSpec, alpha: float, run: int) -> dict:
    """The fields of a run's record that say which run it is (checked when it is read back)."""
    return {"dataset": ds.name, "model_label": spec.model.label, "corruption": spec.corruption,
            "alpha": alpha, "run": run}


# ----------------------------------------------------------------------------- computing runs
def _corrupted(ds: Dataset, spec: SweepSpec, alpha: float, run: int) -> CorruptedSet:
    return corrupt_dataset(ds, alpha, spec.corruption,
                           seed=derive_seed(spec.seed, "corrupt", ds.name, spec.corruption, round(alpha * 1000), run))


def _train_seed(ds: Dataset, spec: SweepSpec, alpha: float, run: int) -> int:
    return derive_seed(spec.seed, "train", ds.name, spec.model.label, spec.corruption, round(alpha * 1000), run)


def _record(ds: Dataset, spec: SweepSpec, alpha: float, run: int, cs: CorruptedSet, hist: History,
            seconds: float) -> dict:
    return {
        "dataset": ds.name,
        "model": spec.model.kind,
        "model_label": spec.model.label,
        "corruption": spec.corruption,
        "alpha": alpha,
        "run": run,
        **hist.final,
        "n_corrupted": int(len(cs.forget)),
        "seconds": round(seconds, 3),
        "history": {k: np.asarray(getattr(hist, k)).tolist()
                    for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")},
    }


def _batched_qnn(spec: SweepSpec) -> bool:
    return spec.model.kind == "qnn" and qnn_sweep_kernel() == batched.KERNEL


def batch_runs(spec: SweepSpec) -> int:
    """How many runs of ``spec`` train as one program: :data:`mlp_batched.BATCH_RUNS` for the
    MLP (always), :data:`batched.BATCH_RUNS` for the QNN on an accelerator, else 1."""
    if spec.model.kind == "mlp":
        return mlp_batched.BATCH_RUNS
    return batched.BATCH_RUNS if _batched_qnn(spec) else 1


def run_one(ds: Dataset, spec: SweepSpec, alpha: float, run: int) -> dict:
    """Corrupt, train, and report the final metrics of one (alpha, run)."""
    if batch_runs(spec) > 1:  # trained as its cache key says: a batch of one (padded)
        return run_batch(ds, spec, [(alpha, run)])[0]
    cs = _corrupted(ds, spec, alpha, run)
    t0 = time.perf_counter()
    _, _, hist = train(spec.model, cs.x, cs.y, ds.x_val, ds.y_val, spec.cfg,
                       seed=_train_seed(ds, spec, alpha, run), dtype=spec.dtype)
    return _record(ds, spec, alpha, run, cs, hist, time.perf_counter() - t0)


def run_batch(ds: Dataset, spec: SweepSpec, items) -> list[dict]:
    """The runs ``items`` [(alpha, run), ...] (at most :func:`batch_runs`) of an MLP sweep
    (:func:`qmu_core.mlp_batched.train_mlp_batched`) or of a QNN sweep on an accelerator
    (:func:`qmu_core.batched.train_qnn_batched`), trained as one program; their records, each
    with its share of the batch's time as ``seconds``. MLP runs are trained in groups of equal
    active inputs (a feature-randomised set at alpha = 0 has fewer than the others), each
    group its own padded program, so a run's numbers do not depend on the other items."""
    check_choice("model", spec.model.kind, ("qnn", "mlp"))
    check_int("len(items)", len(items), min=1, max=batch_runs(spec))
    sets = [_corrupted(ds, spec, a, r) for a, r in items]
    seeds = [_train_seed(ds, spec, a, r) for a, r in items]
    t0 = time.perf_counter()
    if spec.model.kind == "mlp":
        groups: dict[bytes, list[int]] = {}
        for k, cs in enumerate(sets):
            groups.setdefault(active_inputs(as_real_features(cs.x)).tobytes(), []).append(k)
        hists = [None] * len(items)
        for ks in groups.values():
            for k, h in zip(ks, mlp_batched.train_mlp_batched(
                    spec.model.hidden, [sets[k].x for k in ks], np.stack([sets[k].y for k in ks]),
                    ds.x_val, ds.y_val, spec.cfg, [seeds[k] for k in ks])):
                hists[k] = h
    else:
        m = spec.model
        model = QNN(ds.n_qubits, m.depth, m.rotations, m.entangler, dtype=spec.dtype)
        _, hists = batched.train_qnn_batched(
            model, np.stack([cs.x for cs in sets]), np.stack([cs.y for cs in sets]), ds.x_val, ds.y_val,
            spec.cfg, seeds, pad_to=batched.BATCH_RUNS)
    share = (time.perf_counter() - t0) / len(items)
    return [_record(ds, spec, a, r, cs, h, share) for (a, r), cs, h in zip(items, sets, hists)]


def task_groups(spec: SweepSpec, items: list) -> list[list]:
    """How the missing runs ``items`` of ``spec`` are cut into tasks: batches of
    :func:`batch_runs` runs (one run per task where that is 1)."""
    size = batch_runs(spec)
    return [items[i:i + size] for i in range(0, len(items), size)]


def compute_runs(ds: Dataset, spec: SweepSpec, items) -> list[dict]:
    """The records of the runs ``items`` [(alpha, run), ...], computed in this process (one
    task of :func:`qmu_core.parallel.run_sweeps`, cut by :func:`task_groups`)."""
    if batch_runs(spec) > 1:
        return [rec for g in task_groups(spec, list(items)) for rec in run_batch(ds, spec, g)]
    return [run_one(ds, spec, a, r) for a, r in items]


def run_sweep(ds: Dataset, spec: SweepSpec, *, cache: bool = True, progress: bool = True, runs=None,
              scheduler: str | None = None, workers: int | None = None) -> list[dict]:
    """All (alpha, run) of ``spec`` on ``ds`` (or only the run indices ``runs``), in the order
    alpha-major; resumes from the cache. Returns one dict per run. The runs are computed as
    :func:`qmu_core.parallel.run_sweeps` computes them (``scheduler``, ``workers``)."""
    from .parallel import run_sweeps  # parallel imports this module

    return run_sweeps([(ds, spec)], cache=cache, progress=progress, runs=runs,
                      scheduler=scheduler, workers=workers)[0]
