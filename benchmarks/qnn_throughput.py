"""QNN training throughput: the released code's way, qmu's trainer and PennyLane, side by side.

Baseline (the authors' released code style): a ``tc.Circuit`` built gate by gate,
cotengra contractor, complex128, ``K.jit(K.vvag(...))`` over the batch, one Adam step
per call. Ours: the epoch of :func:`qmu_core.training._qnn_trainer`, what every training in
the book runs, with the kernel :func:`qmu_core.training.qnn_kernel_name` picks (on a CPU the
adjoint kernel of :mod:`qmu_core.adjoint`, a host loop with one kernel call per mini-batch).
Peers, as a new user would write them with PennyLane: ``default.qubit`` with the JAX
interface, backprop, the batch broadcast through ``qml.StatePrep`` and the whole Adam step
jitted; and ``lightning.qubit`` with ``diff_method="adjoint"`` (the JAX interface, not jitted:
jitting it ran for more than 9 minutes at 7.5 GB without finishing its first 12-qubit step).
All train the same circuit: amplitude-encoded input, RX-RY-RX on every qubit, IsingZZ on a
ring, <Z> of the last qubit, p = sigmoid(5 <Z>), mean binary cross-entropy, Adam (lr 0.01).

For each configuration, each side runs in a fresh process (no shared compilation caches).
``compile_s`` is the time of the first call minus a steady call (a step for the baseline and
the peers, an epoch for ours); for ours it is measured with numba's on-disk cache of the
kernel filled, and ``compile_cold_cache_s`` with it empty (once per installation).
``sample_grads_per_s`` counts per-sample gradients per second in steady state, from the
median time of 20 steps (baseline), 10 epochs of 20 steps (ours) or ``steps`` steps (peers).

PennyLane is optional (``pip install -e ".[bench]"``). It pins autoray 0.8.4 while this
project's cotengra takes 0.11, so it may live in a separate environment: the peers run with
the interpreter in ``QMU_BENCH_PENNYLANE_PYTHON`` (default: this one) and are recorded as
skipped, with the reason, where PennyLane cannot be imported.

    python benchmarks/qnn_throughput.py            # writes benchmarks/results/qnn_throughput.json
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

CONFIGS = [(12, 4, 32), (10, 6, 256)]  # (n_qubits, depth, batch)
OUT = Path(__file__).resolve().parent / "results" / "qnn_throughput.json"
PEERS = {"pennylane_default_qubit_jax": 5, "pennylane_lightning_adjoint": 3}  # name: steps timed
PEER_TIMEOUT_S = 900  # a peer process still running then is recorded as timed out


def _states(n_states, n_qubits, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_states, 2**n_qubits))
    return x / np.linalg.norm(x, axis=1, keepdims=True), rng.integers(0, 2, n_states)


def _median_call(f, reps):
    """Median wall time of ``reps`` calls of ``f`` (each waited for; its result may be JAX
    or NumPy arrays): robust to the occasional stall of a shared machine."""
    import statistics

    import jax

    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(f())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _timed_steps(step, params, state, steps):
    """(first call, median steady call) of ``step(params, state) -> (params, state)``."""
    import jax

    t = time.perf_counter()
    params, state = jax.block_until_ready(step(params, state))
    first = time.perf_counter() - t
    return first, _median_call(lambda: step(params, state)[0], steps)


def bench_baseline(n, depth, bs, steps=20):
    import numpy as np
    import optax
    import tensorcircuit as tc

    K = tc.set_backend("jax")
    tc.set_dtype("complex128")
    tc.set_contractor("cotengra")

    def loss(x, y, params):
        c = tc.Circuit(n, inputs=x)
        for j in range(depth):
            for i in range(n):
                c.rx(i, theta=params[j, i, 0])
                c.ry(i, theta=params[j, i, 1])
                c.rx(i, theta=params[j, i, 2])
            for i in range(n):
                c.rzz(i, (i + 1) % n, theta=params[j, i, 3])
        p = K.sigmoid(5.0 * K.real(c.expectation_ps(z=[n - 1])))
        return -(y * K.log(p) + (1 - y) * K.log(1 - p))

    vvag = K.jit(K.vvag(loss, argnums=2, vectorized_argnums=(0, 1)))
    opt = optax.adam(0.01)
    x, y = _states(bs, n)
    x, y = K.convert_to_tensor(x.astype(np.complex128)), K.convert_to_tensor(y.astype(np.float64))
    params = K.implicit_randn([depth, n, 4], stddev=0.01)

    def step(params, state):
        _, g = vvag(x, y, params)
        u, state = opt.update(g / bs, state, params)
        return optax.apply_updates(params, u), state

    first, dt = _timed_steps(step, params, opt.init(params), steps)
    return {"compile_s": first - dt, "first_step_s": first, "step_s": dt, "sample_grads_per_s": bs / dt}


def bench_pennylane(n, depth, bs, device, steps):
    """One Adam step on the mini-batch, jitted, with PennyLane's ``device``."""
    import jax
    import jax.numpy as jnp
    import optax
    import pennylane as qml

    dev = qml.device(device, wires=n)
    diff = "backprop" if device == "default.qubit" else "adjoint"

    @qml.qnode(dev, interface="jax", diff_method=diff)
    def circuit(x, params):
        qml.StatePrep(x, wires=range(n))
        for j in range(depth):
            for i in range(n):
                qml.RX(params[j, i, 0], wires=i)
                qml.RY(params[j, i, 1], wires=i)
                qml.RX(params[j, i, 2], wires=i)
            for i in range(n):
                qml.IsingZZ(params[j, i, 3], wires=[i, (i + 1) % n])
        return qml.expval(qml.PauliZ(n - 1))

    x, y = _states(bs, n)
    x, y = jnp.asarray(x), jnp.asarray(y, jnp.float32)

    def loss(params):
        z = 5.0 * circuit(x, params)
        return jnp.mean(jax.nn.softplus(z) - y * z)

    opt = optax.adam(0.01)

    def step(params, state):
        g = jax.grad(loss)(params)
        u, state = opt.update(g, state, params)
        return optax.apply_updates(params, u), state

    if device == "default.qubit":
        step = jax.jit(step)

    params = 0.01 * jax.random.normal(jax.random.PRNGKey(0), (depth, n, 4))
    first, dt = _timed_steps(step, params, opt.init(params), steps)
    return {"device": device, "diff_method": diff, "steps_timed": steps, "compile_s": first - dt,
            "first_step_s": first, "step_s": dt, "sample_grads_per_s": bs / dt,
            "jax_enable_x64": bool(jax.config.jax_enable_x64),
            "versions": {p: version(p) for p in ("pennylane", "pennylane_lightning", "jax")}}


def bench_qmu(n, depth, bs, batches_per_epoch=20, epochs=10):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from qmu_core import adjoint
    from qmu_core.config import TrainConfig
    from qmu_core.qnn import QNN
    from qmu_core.training import _qnn_trainer, qnn_kernel, qnn_kernel_name

    model = QNN(n, depth)
    cfg = TrainConfig(epochs, bs, 0.01, eval_every=epochs)
    x, y = _states(bs * batches_per_epoch, n)
    init, epoch, _ = _qnn_trainer(model, cfg, len(x))
    xj, yj = jnp.asarray(x, jnp.complex64), jnp.asarray(y, jnp.float32)
    params = model.init(jax.random.PRNGKey(0))
    state, key = init(params), jax.random.PRNGKey(1)
    t = time.perf_counter()
    params, state, key = jax.block_until_ready(epoch(params, state, key, xj, yj))  # first call: compiles
    first = time.perf_counter() - t
    dt = _median_call(lambda: epoch(params, state, key, xj, yj)[0], epochs)
    per_step = dt / batches_per_epoch
    out = {"kernel": qnn_kernel_name(), "compile_s": first - dt, "first_epoch_s": first, "epoch_s": dt,
           "sample_grads_per_s": len(x) / dt,
           "rotations_applied": sum(len(q) for q, _ in model.light_cone)}
    xb = xj[:bs]
    if out["kernel"] == adjoint.KERNEL:
        # where the time goes: the kernel's forward pass alone and its loss-and-gradient call
        # (forward and backward) on one mini-batch, called directly
        circ = adjoint._Circuit(model)
        xk, yb, p = circ.kernel_input(np.asarray(xb)), np.asarray(yj[:bs]), np.asarray(params)
        circ.run(xk, p, 2, yb)
        t_fwd = _median_call(lambda: circ.run(xk, p), 50)
        t_grad = _median_call(lambda: circ.run(xk, p, 2, yb), 50)
        out["kernel_threads"] = adjoint._n_threads()
        out["backward_over_forward"] = (t_grad - t_fwd) / t_fwd
        out["kernel_share"] = t_grad / per_step
    else:
        fwd = jax.jit(qnn_kernel(model))
        fwd(params, xb).block_until_ready()
        t_fwd = _median_call(lambda: fwd(params, xb), 50)
    out["forward_share"] = t_fwd / per_step
    # the forward's arithmetic: 16 real flops per amplitude per 2x2 gate, 6 per RZZ phase layer
    flops = 2**n * sum(16 * len(q) + (6 if zz else 0) for q, zz in model.light_cone)
    out["forward_gflops_per_s"] = flops * bs / t_fwd / 1e9
    return out


def _child(python, side, n, depth, bs, env=None, timeout=None):
    """Run one measurement in a fresh process; its result, or {"skipped": reason}."""
    try:
        out = subprocess.run([python, __file__, side, str(n), str(depth), str(bs)], capture_output=True,
                             text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {timeout} s"}
    lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    if out.returncode or not lines:
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        if side != "baseline" and side != "qmu":
            return {"skipped": err}
        raise RuntimeError(f"{side} failed: {out.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def _peer_python() -> tuple[str, str | None]:
    """The interpreter for the PennyLane peers, and why they are skipped (or None)."""
    python = os.environ.get("QMU_BENCH_PENNYLANE_PYTHON", sys.executable)
    probe = subprocess.run([python, "-c", "import pennylane, pennylane_lightning"], capture_output=True, text=True)
    if probe.returncode:
        return python, "PennyLane not installed (pip install -e '.[bench]'): " + (probe.stderr.strip().splitlines() or [""])[-1]
    return python, None


def main():
    if len(sys.argv) == 5:  # child process: one measurement
        side, n, depth, bs = sys.argv[1], *map(int, sys.argv[2:])
        if side == "baseline":
            res = bench_baseline(n, depth, bs)
        elif side == "qmu":
            res = bench_qmu(n, depth, bs)
        else:
            dev = "default.qubit" if side == "pennylane_default_qubit_jax" else "lightning.qubit"
            res = bench_pennylane(n, depth, bs, dev, PEERS[side])
        print("RESULT " + json.dumps(res))
        return
    peer_python, skip = _peer_python()
    results = {}
    for n, depth, bs in CONFIGS:
        key = f"n{n}_d{depth}_b{bs}"
        r = results[key] = {"n_qubits": n, "depth": depth, "batch": bs}
        r["baseline"] = _child(sys.executable, "baseline", n, depth, bs)
        print(key, "baseline", r["baseline"], flush=True)
        # Ours runs twice on one fresh numba cache: the first process compiles the kernel
        # (as on a fresh installation), the second loads it, as every later process does.
        with tempfile.TemporaryDirectory() as numba_cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": numba_cache}
            cold = _child(sys.executable, "qmu", n, depth, bs, env)
            r["qmu"] = {**_child(sys.executable, "qmu", n, depth, bs, env), "compile_cold_cache_s": cold["compile_s"]}
        print(key, "qmu", r["qmu"], flush=True)
        r["speedup"] = r["qmu"]["sample_grads_per_s"] / r["baseline"]["sample_grads_per_s"]
        r["peers"] = {}
        for peer in PEERS:
            res = {"skipped": skip} if skip else _child(peer_python, peer, n, depth, bs, timeout=PEER_TIMEOUT_S)
            if "sample_grads_per_s" in res:
                res["qmu_speedup"] = r["qmu"]["sample_grads_per_s"] / res["sample_grads_per_s"]
            r["peers"][peer] = res
            print(key, peer, res, flush=True)
    doc = {
        "configs": results,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg()},
        "versions": {p: version(p) for p in ("jax", "jaxlib", "numba", "tensorcircuit-ng", "cotengra", "optax", "numpy")},
        "peer_python": peer_python,
        "date": time.strftime("%Y-%m-%d"),
    }
    sys.path.insert(0, str(OUT.parents[2]))
    from qmu_core.io import atomic_write_text

    atomic_write_text(OUT, json.dumps(doc, indent=2) + "\n")
    print(f"\n{'config':<14}{'side':<30}{'compile s':>10}{'sample-grads/s':>16}  (qmu compile with an empty numba cache)")
    for key, r in results.items():
        sides = [("baseline", r["baseline"]), ("qmu", r["qmu"]), *r["peers"].items()]
        for side, res in sides:
            if "skipped" in res:
                print(f"{key:<14}{side:<30}  skipped: {res['skipped']}")
                continue
            cold = f"  ({res['compile_cold_cache_s']:.1f})" if side == "qmu" else ""
            print(f"{key:<14}{side:<30}{res['compile_s']:>10.1f}{res['sample_grads_per_s']:>16.0f}{cold}")
        print(f"{'':<14}{'speedup over baseline':<30}{'':>10}{r['speedup']:>15.1f}x")
        q = r["qmu"]
        print(f"{'':<14}qmu ({q['kernel']}): {q['rotations_applied']} of {r['n_qubits'] * r['depth']} rotations "
              f"in the light cone; forward pass {100 * q['forward_share']:.0f}% of a step's time at "
              f"{q['forward_gflops_per_s']:.0f} GFLOP/s"
              + (f"; backward/forward {q['backward_over_forward']:.1f}; kernel {100 * q['kernel_share']:.0f}% of a step"
                 if "kernel_share" in q else ""))


if __name__ == "__main__":
    main()
