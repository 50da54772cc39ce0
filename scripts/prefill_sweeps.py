"""Fill the sweep cache of a chapter ahead of its execution (same specs as the notebook).

Useful to run a long chapter's trainings in the background, resumably; executing the
chapter afterwards reads every finished run from the cache.

    python scripts/prefill_sweeps.py resilience            # both datasets, paper scale
    python scripts/prefill_sweeps.py capacity --n-runs 1
    python scripts/prefill_sweeps.py capacity --shard 0/2 &   # one process per core
    python scripts/prefill_sweeps.py capacity --shard 1/2
"""

import argparse
import dataclasses
import time

from qmu_core import data, resilience

p = argparse.ArgumentParser()
p.add_argument("chapter", choices=("resilience", "capacity"))
p.add_argument("--n-runs", type=int, default=5)
p.add_argument("--shard", default="0/1", help="K/N: this process trains every N-th alpha from the K-th")
args = p.parse_args()
k, n = (int(v) for v in args.shard.split("/"))
if not 0 <= k < n:
    p.error(f"--shard {args.shard!r}: need K/N with 0 <= K < N")

if args.chapter == "resilience":
    jobs = [(name, resilience.resilience_specs(name, n_runs=args.n_runs)) for name in ("mnist", "xxz")]
else:
    jobs = [("xxz", resilience.CapacityParams(n_runs=args.n_runs).specs())]
for name, specs in jobs:
    ds = data.load(name)
    for s in sorted(specs, key=lambda s: s.model.kind == "qnn"):  # cheap MLPs first
        # The cache key leaves out the alpha grid, so shards share one cache folder.
        s = dataclasses.replace(s, alphas=s.alphas[k::n])
        t = time.time()
        resilience.run(ds, [s], progress=True)
        print(f"{name} {s.model.label} {s.corruption}: {time.time() - t:.0f} s", flush=True)
