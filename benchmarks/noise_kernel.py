"""The noise chapter's Pauli kernel before and after the change of issue 20, side by side.

``old`` is :class:`qmu_core.pauli.PauliQNN` as it was at c457796 (kernel ``pauli-ptm-v2``):
every contraction moved the coefficient tensor's axes back into register order, and the
10-qubit MNIST observable Re O was built by a complex contraction with the Pauli matrices
and a transpose of 20 axes. ``new`` is the current class (``pauli-ptm-v3``): the axes stay
where each contraction puts them, and Re O comes from :func:`qmu_core.pauli.real_matrix`
(the same float32 numbers, forward and backward). Both are trained here in one process on
one thread (the environment of the chapter's workers) on the same machine and load, each
compiled first on the same shapes:

* one MNIST run of the chapter (depolarising p = 0.01, label flipping, alpha 0.3, run 0;
  D = 6, the paper's 100 epochs of batch 256), alone, as the chapter trains it;
* one batch of 10 XXZ runs (the same noise, alphas 0.1 and 0.5, runs 0-4; 200 epochs), as
  the chapter trains them (:func:`qmu_core.noise_study.train_noisy_batch`).

The forward pass of the two is the same to the bit; the gradient's float32 roundings are
not, and training carries them on: the largest differences of the final accuracies and
angles are recorded. Writes benchmarks/results/noise_kernel.json (the ``cases`` layout of
the other speed benchmarks, read by the notes chapter).

    PYTHONPATH=. python benchmarks/noise_kernel.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "noise_kernel.json"


def old_class():
    """PauliQNN as at c457796 (its two changed methods; everything else is inherited)."""
    import jax.numpy as jnp
    import numpy as np

    from qmu_core.pauli import PAULIS, PAULIS2, PauliQNN, noise_ptm, ptm_unitary
    from qmu_core.qnn import _rot

    def apply1(c, t, i):
        return jnp.moveaxis(jnp.tensordot(t, c, axes=([1], [i])), 0, i)

    def apply2(c, t, i, j):
        c = jnp.tensordot(t.reshape(4, 4, 4, 4), c, axes=([2, 3], [i, j]))
        return jnp.moveaxis(c, (0, 1), (i, j))

    class OldPauliQNN(PauliQNN):
        def coefficients(self, params):
            reg, ops = self._cone
            rdt, cdt = self.real_dtype, self.qnn.dtype
            c = jnp.asarray(np.array([0.0, 0.0, 0.0, 1.0 - 2.0 * self.noise.readout], rdt))
            axes = [self.qnn.n_qubits - 1]
            t_noise = jnp.asarray(noise_ptm(self.noise), rdt)
            eye = jnp.eye(4, dtype=rdt)
            identity = jnp.asarray(np.eye(4, dtype=rdt)[0])
            pending = {}
            for op in reversed(ops):
                if op[0] == "rot":
                    _, layer, q, j = op
                    u = _rot(self.qnn.rotations[j], params[layer, q, j][None])[0].astype(cdt)
                    pending[q] = ptm_unitary(u, PAULIS).astype(rdt) @ pending.get(q, eye)
                elif op[0] == "noise":
                    pending[op[1]] = t_noise @ pending.get(op[1], eye)
                else:
                    _, layer, pair = op
                    a, b = self.qnn.pairs[pair]
                    for q in (a, b):
                        if q not in axes:
                            c = jnp.tensordot(c, identity, axes=0)
                            axes.append(q)
                            pending.pop(q, None)
                    zz = jnp.exp(-0.5j * params[layer, pair, 3] * jnp.asarray([1.0, -1.0, -1.0, 1.0])).astype(cdt)
                    t = ptm_unitary(jnp.diag(zz), PAULIS2).astype(rdt)
                    t = t @ jnp.kron(pending.pop(a, eye), pending.pop(b, eye))
                    c = apply2(c, t, axes.index(a), axes.index(b))
            for q, t in pending.items():
                c = apply1(c, t, axes.index(q))
            for q in [q for q in reg if q not in axes]:
                c = jnp.tensordot(c, identity, axes=0)
                axes.append(q)
            return jnp.transpose(c, [axes.index(q) for q in reg]).reshape(-1)

        def expectation(self, params, r):
            if self.whole_register and not jnp.iscomplexobj(r):
                return jnp.sum((r @ jnp.real(self.observable(params))) * r, axis=1)
            return super().expectation(params, r)

    return OldPauliQNN


def main() -> None:
    # one thread, as on the chapter's workers (with XLA's own threads the speed-ups differ)
    from qmu_core.worker import single_thread_env

    os.environ.update(single_thread_env())
    import jax
    import numpy as np

    from qmu_core import noise_study as ns
    from qmu_core.io import atomic_write_text
    from qmu_core.qnn import QNN
    from qmu_core.sweep import _corrupted, _train_seed

    setting = ns.Setting("depolarizing", 0.01)
    classes = {"old": old_class(), "new": ns.PauliQNN}

    def prepare(runs):
        ds, spec = runs[0].ds, runs[0].spec
        model = QNN(ds.n_qubits, spec.model.depth, spec.model.rotations, spec.model.entangler)
        sets = [_corrupted(ds, spec, r.alpha, r.run) for r in runs]
        seeds = [_train_seed(ds, spec, r.alpha, r.run) for r in runs]
        return ds, spec, model, [(cs.x, cs.y) for cs in sets], seeds

    def timed(name, fn):
        """Seconds of ``fn`` with the class ``name``, compiled first by a run on the same
        shapes (the chapter's workers compile once per setting and reuse the program)."""
        ns.PauliQNN = classes[name]
        ns._trainer.cache_clear()
        ns._batch_trainer.cache_clear()
        try:
            fn()
            t = time.perf_counter()
            out = fn()
            return time.perf_counter() - t, out
        finally:
            ns.PauliQNN = classes["new"]
            ns._trainer.cache_clear()
            ns._batch_trainer.cache_clear()

    mnist = [ns.Run("mnist", setting, "label_flip", 0.3, 0)]
    ds, spec, model, data, seeds = prepare(mnist)

    def mnist_run():
        params, metrics = ns.train_noisy(model, setting, *data[0], ds.x_val, ds.y_val, spec.cfg, seeds[0])
        return [(params, metrics)]

    xxz = [ns.Run("xxz", setting, "label_flip", a, k) for a in (0.1, 0.5) for k in range(5)]
    xds, xspec, xmodel, xdata, xseeds = prepare(xxz)

    def xxz_batch():
        return ns.train_noisy_batch(xmodel, setting, xdata, xds.x_val, xds.y_val, xspec.cfg, xseeds)

    cases = []
    for what, fn, n in ((f"noise chapter, MNIST QNN (10 qubits, D = 6) under {setting.label}: one run", mnist_run, 1),
                        (f"noise chapter, XXZ QNN under {setting.label}: a run of a batch of 10", xxz_batch, 10)):
        t_old, a = timed("old", fn)
        t_new, b = timed("new", fn)
        cases.append({
            "what": what,
            "seconds_old": round(t_old / n, 3), "seconds_new": round(t_new / n, 3),
            "speed_up": round(t_old / t_new, 2),
            "max_abs_accuracy_difference": {k: max(abs(x[1][k] - y[1][k]) for x, y in zip(a, b))
                                            for k in ("train_acc", "val_acc")},
            "max_abs_angle_difference": float(max(np.max(np.abs(np.asarray(x[0]) - np.asarray(y[0])))
                                                  for x, y in zip(a, b))),
            "runs_with_equal_accuracies": f"{sum(x[1]['train_acc'] == y[1]['train_acc'] and x[1]['val_acc'] == y[1]['val_acc'] for x, y in zip(a, b))} of {n}",
        })
        print(json.dumps(cases[-1]), flush=True)
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_1_5_15_end": [round(x, 2) for x in os.getloadavg()],
        "jax": jax.__version__,
        "threads": 1,
        "kernels": {"old": "pauli-ptm-v2", "new": ns.KERNEL},
        "cases": cases,
    }
    atomic_write_text(OUT, json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
