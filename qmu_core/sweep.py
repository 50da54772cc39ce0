"""Sweeps: the trainings behind one curve of Fig. 2 (every alpha x every run) as one job.

Every finished run is written atomically to a cache folder keyed by everything that
determines it (dataset contents, model, corruption, hyperparameters, seeds), so an
interrupted sweep resumes where it stopped and a rerun with the same parameters
costs nothing. Seeds are derived from (seed, dataset, corruption, alpha, run): the
MLP and the QNN of the same (alpha, run) see the same corrupted training set.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm  # plain text bars: they land in the executed notebooks as stderr

from . import paths
from .config import ModelSpec, TrainConfig
from .corruption import CORRUPTIONS, corrupt
from .data import Dataset
from .io import atomic_write_text
from .training import MLP_OPTIMIZER, qnn_kernel_name, train
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


def cache_folder(ds: Dataset, spec: SweepSpec):
    """The cache folder of ``spec``'s runs. The alpha grid and the number of runs are left
    out of the key: a run depends only on its own (alpha, run), so a sweep over other alphas
    or more runs (e.g. the capacity chapter's D = 4 curve) reuses every run already done."""
    fields = {k: v for k, v in asdict(spec).items() if k not in ("alphas", "n_runs")}
    if spec.model.kind == "qnn":
        fields["kernel"] = qnn_kernel_name()
    else:
        fields["optimizer"] = MLP_OPTIMIZER
    key = json.dumps({"data": _fingerprint(ds), **fields}, sort_keys=True, default=str)
    return paths.cache_dir() / "sweeps" / hashlib.sha256(key.encode()).hexdigest()[:20]


def run_one(ds: Dataset, spec: SweepSpec, alpha: float, run: int) -> dict:
    """Corrupt, train, and report the final metrics of one (alpha, run)."""
    a_key = round(alpha * 1000)
    cs = corrupt(ds.x_train, ds.y_train, alpha, spec.corruption,
                 seed=derive_seed(spec.seed, "corrupt", ds.name, spec.corruption, a_key, run),
                 n_active=ds.n_active)
    t0 = time.perf_counter()
    _, _, hist = train(
        spec.model, cs.x, cs.y, ds.x_val, ds.y_val, spec.cfg,
        seed=derive_seed(spec.seed, "train", ds.name, spec.model.label, spec.corruption, a_key, run),
        dtype=spec.dtype,
    )
    return {
        "dataset": ds.name,
        "model": spec.model.kind,
        "model_label": spec.model.label,
        "corruption": spec.corruption,
        "alpha": alpha,
        "run": run,
        **hist.final,
        "n_corrupted": int(len(cs.forget)),
        "seconds": round(time.perf_counter() - t0, 3),
        "history": {k: np.asarray(getattr(hist, k)).tolist()
                    for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")},
    }


def run_sweep(
    ds: Dataset, spec: SweepSpec, *, cache: bool = True, progress: bool = True, runs=None
) -> list[dict]:
    """All (alpha, run) of ``spec`` on ``ds`` (or only the run indices ``runs``); resumes
    from the cache. Returns one dict per run."""
    folder = cache_folder(ds, spec)
    runs = range(spec.n_runs) if runs is None else [check_int("runs[i]", r, min=0, max=spec.n_runs - 1) for r in runs]
    jobs = [(a, r) for a in spec.alphas for r in runs]
    out = []
    bar = tqdm(jobs, desc=f"{ds.name} {spec.model.label} {spec.corruption}", disable=not progress,
               unit="run", mininterval=2.0)
    for alpha, run in bar:
        f = folder / f"alpha{round(alpha * 1000):04d}_run{run:02d}.json"
        if cache and f.exists():
            out.append(json.loads(f.read_text()))
            continue
        rec = run_one(ds, spec, alpha, run)
        if cache:
            atomic_write_text(f, json.dumps(rec))
        out.append(rec)
    return out
