"""The XXZ QNN label-flip trials of the resilience chapter (qmu_core.resilience_trials)."""

import numpy as np
import pandas as pd
import pytest

from qmu_core import data
from qmu_core import resilience_trials as rt
from qmu_core.resilience import ResilienceParams
from qmu_core.validation import ParameterError


@pytest.fixture(scope="module")
def trial_runs(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("QMU_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    P = ResilienceParams(dataset="xxz", n_runs=1, alphas=(0.0, 0.5), epoch_scale=0.05, xxz_qnn_trial_runs=3,
                         workers=1)
    runs = rt.run(P, P.xxz_qnn_trial_runs)
    yield P, runs
    mp.undo()


def test_every_trial_runs_its_protocol(trial_runs):
    P, runs = trial_runs
    s = rt.summary(runs)
    assert s.trial.tolist() == list(rt.TRIALS)
    assert s.n_runs.tolist() == [1, 3, 3, 3]
    assert s.xxz_set.tolist() == ["released_code", "released_code", "paper_text", "released_code"]
    assert s.adam.tolist() == ["optax", "optax", "optax", "keras"]
    for text in s["sides_0.5"]:
        assert sum(map(int, text.split(" / "))) in (1, 3)
    # the chapter's runs are the first runs of the larger trial: same seeds, same numbers
    a = runs[runs.trial == "chapter's protocol, the chapter's runs"].set_index(["alpha", "run"]).val_acc
    b = runs[runs.trial == rt.REFERENCE_TRIAL].set_index(["alpha", "run"]).val_acc
    assert (b.loc[a.index] == a).all()
    # Keras's Adam trains other models from the same start
    k = runs[runs.trial == "Keras Adam (the released code's optimizer)"]
    assert not np.allclose(k.train_loss.to_numpy(), runs[runs.trial == rt.REFERENCE_TRIAL].train_loss.to_numpy())


def test_flip_geometry_finds_the_flipped_states(trial_runs):
    P, runs = trial_runs
    geo = rt.flip_geometry(P, runs)
    assert len(geo) == 3 and (geo.n_flipped == 40).all()  # floor(0.5 * 82) rounded down to even
    # 20 flips per phase, drawn from 41 states at distances 0.04 to 2.0 from Delta = 1
    assert geo.flipped_mean_distance.between(0.3, 1.7).all()
    r = rt.geometry_reading(geo)
    assert -1 <= r["corr"] <= 1 and r["n_runs"] == 3
    values = rt.glue_values(P, runs)
    assert values["xt_geo_corr"] != "not run" and values["xt_1_sides"] != "not run"
    assert set(rt.glue_values(P, None).values()) == {"not run", "3"}


def test_five_run_rms_is_zero_for_runs_on_the_published_mean_and_spreads_otherwise():
    p = rt._published().groupby("alpha").val_acc.mean()
    rows = [{"trial": rt.REFERENCE_TRIAL, "alpha": a, "run": r, "val_acc": v} for a, v in p.items() for r in range(8)]
    same = rt.five_run_rms(pd.DataFrame(rows))
    assert same["median"] == pytest.approx(0, abs=1e-12) and same["q95"] == pytest.approx(0, abs=1e-12)
    noisy = pd.DataFrame(rows).assign(val_acc=lambda d: d.val_acc + np.where(d.run % 2, 0.1, -0.1))
    s = rt.five_run_rms(noisy, draws=500)
    assert 0 <= s["q05"] <= s["median"] <= s["q95"] <= 0.1 + 1e-9 and s["q95"] > 0
    with pytest.raises(ParameterError, match="'k'"):
        rt.five_run_rms(noisy, k=9)


def test_sides_counts():
    assert rt.sides([0.9, 0.5, 0.1, 0.61, 0.39]) == "2 / 1 / 2"
    assert rt.sides([]) == "n/a"
    assert data.XXZ_CRITICAL_DELTA == 1.0
