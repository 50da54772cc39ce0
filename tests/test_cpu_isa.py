"""The AVX2 caps that make the nbval executions repeat across x86 CPUs (qmu_core.cpu_isa)."""

import os
import subprocess
import sys

from qmu_core import cpu_isa


def test_pin_sets_every_cap_and_keeps_what_the_user_set():
    env = {"MKL_CBWR": "COMPATIBLE", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    changed = cpu_isa.pin(env)
    assert env["MKL_CBWR"] == "COMPATIBLE" and "MKL_CBWR" not in changed
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AVX2"
    for key, value in cpu_isa.PINNED.items():
        if key != "MKL_CBWR":
            assert env[key] == value == changed[key]
    assert cpu_isa.pin(env) == {}  # a second call changes nothing
    env = {"XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2"}
    cpu_isa.pin(env)
    assert env["XLA_FLAGS"] == "--xla_cpu_max_isa=SSE4_2"


def test_the_test_session_and_its_kernels_run_pinned():
    # conftest pins os.environ; a child process (as an nbval kernel is) sees the caps, and
    # the libraries take them: torch reports AVX2, OpenBLAS its Haswell kernels
    for key, value in cpu_isa.PINNED.items():
        assert os.environ[key] == value
    code = ("import threadpoolctl, numpy, torch; numpy.ones((64, 64)) @ numpy.ones((64, 64)); "
            "print(torch.backends.cpu.get_cpu_capability(), "
            "*[i.get('architecture') for i in threadpoolctl.threadpool_info() if i['internal_api'] == 'openblas'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "AVX2"
    assert all(a == "Haswell" for a in out[1:])
