"""What noise in the training loop costs: one Adam step of the noisy QNN at the paper's sizes,
by the two exact simulations side by side.

For the XXZ QNN (12 qubits, depth 4, batch 32) and the MNIST QNN (10 qubits, depth 6, batch
256), times one jitted value-and-gradient of the mean cross-entropy of
:class:`qmu_core.noise.NoisyQNN` (``density``: the observable as a complex density-matrix-sized
operator, one conjugation per gate and channel) and of :class:`qmu_core.pauli.PauliQNN`
(``pauli``: Pauli transfer matrices, fused per qubit, on the qubits reached so far; the noise
chapter's simulation), both on the light-cone register in the Heisenberg picture, noiseless
and with depolarising noise p = 0.01 after every gate. Projects the seconds of one training run
(the resilience chapter's epochs, batch sizes and training-set sizes) and the CPU-hours of one
noise level of a resilience sweep (10 alphas x 5 runs x 2 corruptions). Random real input
states (MNIST's amplitudes are real): the cost does not depend on the data. Both simulations
run in one process, one after the other, on the same machine and load.

Writes benchmarks/results/noise_cost.json. ``--sims pauli`` skips the slow density matrices.

    PYTHONPATH=. python benchmarks/noise_cost.py [--sims density,pauli]
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "noise_cost.json"
# (name, qubits, depth, batch, training samples, epochs): the resilience chapter's protocol
CASES = [("XXZ QNN", 12, 4, 32, 82, 200), ("MNIST QNN", 10, 6, 256, 500, 100)]
SWEEP_RUNS = 10 * 5 * 2  # alphas x runs x corruptions, one dataset, one noise level
REPEATS = 3


def time_step(sim, n, depth, batch, noise):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from qmu_core.noise import NoisyQNN
    from qmu_core.pauli import PauliQNN
    from qmu_core.qnn import QNN

    qnn = QNN(n, depth)
    model = (NoisyQNN if sim == "density" else PauliQNN)(qnn, noise)
    rng = np.random.default_rng(0)
    states = rng.normal(size=(batch, 2**n)).astype(np.float32)
    states /= np.linalg.norm(states, axis=1, keepdims=True)
    rho = model.inputs(states)
    y = jnp.asarray(rng.integers(0, 2, batch), jnp.float32)
    params = qnn.init(jax.random.PRNGKey(0))

    def loss(p):
        logit = model.logits(p, rho)
        return jnp.mean(jnp.logaddexp(0.0, logit) - y * logit)

    step = jax.jit(jax.value_and_grad(loss))
    t = time.perf_counter()
    jax.block_until_ready(step(params))
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(REPEATS):
        jax.block_until_ready(step(params))
    from qmu_core.noise import light_cone_ops

    return {"simulation": sim, "register_qubits": len(model.register), "operations": len(light_cone_ops(qnn, noise)[1]),
            "first_call_s": round(first, 2), "step_s": round((time.perf_counter() - t) / REPEATS, 4)}


def main():
    import argparse

    from qmu_core.io import atomic_write_text
    from qmu_core.noise import NoiseModel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", default="density,pauli", help="comma-separated: density, pauli")
    sims = [x for x in ap.parse_args().sims.split(",") if x]
    bad = [x for x in sims if x not in ("density", "pauli")]
    if bad:
        ap.error(f"--sims: unknown simulation(s) {bad}; allowed: density, pauli")

    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "repeats": REPEATS,
              "load_average_1_5_15_start": [round(x, 2) for x in os.getloadavg()], "cases": []}
    for name, n, depth, batch, n_train, epochs in CASES:
        steps = epochs * -(-n_train // batch)
        for sim, (label, noise) in ((s, c) for c in (("noiseless", NoiseModel()),
                                                      ("depolarising p=0.01", NoiseModel(depolarizing=0.01)))
                                    for s in sims):
            r = time_step(sim, n, depth, batch, noise)
            r.update(what=f"{name} ({n} qubits, D={depth}, batch {batch})", noise=label,
                     steps_per_run=steps, run_s=round(steps * r["step_s"], 1),
                     sweep_cpu_hours_per_noise_level=round(steps * r["step_s"] * SWEEP_RUNS / 3600, 2))
            record["cases"].append(r)
            print(json.dumps(r), flush=True)
    atomic_write_text(OUT, json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
