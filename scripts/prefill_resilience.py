"""Fill the sweep cache for the resilience chapter at paper scale (same specs as the notebook)."""
import sys, time
from qmu_core import data, resilience
order = sys.argv[1:] or ["mnist", "xxz"]
for name in order:
    ds = data.load(name)
    specs = resilience.resilience_specs(name)
    specs = sorted(specs, key=lambda s: s.model.kind == "mlp")  # QNNs first
    for s in specs:
        t = time.time()
        resilience.run(ds, [s], progress=True)
        print(f"{name} {s.model.label} {s.corruption}: {time.time() - t:.0f} s", flush=True)
