"""The published Fig. 3 runs, the distance of our unlearning curves to them, and the scorecard
reading the MLP unlearning claim under the gauge that Fig. 3b matches."""

import numpy as np
import pandas as pd
import pytest

from qmu_core import published, scorecard
from qmu_core import unlearning_chapter as uc


def test_fig3_is_the_shipped_file():
    d = published.fig3()
    assert len(d) == 4000
    assert set(d.method) == {"retrain", "finetune", "scrub", "gradient_ascent"}
    assert sorted(set(d.step)) == list(range(50)) and sorted(set(d.run)) == list(range(5))
    # what the numbers reveal: MNIST MLP validation on all 2144 test 1s and 9s, XXZ MLP on 84 states
    for ds, n in (("mnist", 2144), ("xxz", 84)):
        v = d[(d.dataset == ds) & (d.model == "mlp")].val_acc * n
        assert np.allclose(v, np.round(v), atol=1e-6)
    # the code's shared-model protocol: every run of a from-poisoned method starts at one model
    s0 = d[(d.step == 0) & (d.method != "retrain")]
    assert (s0.groupby(["dataset", "model"]).val_acc.nunique() == 1).all()


def test_fig3_checksum_is_enforced(monkeypatch):
    published._raw.cache_clear()
    monkeypatch.setattr(published, "sha256_bytes", lambda b: "0" * 64)
    with pytest.raises(OSError, match="published_fig3.csv"):
        published.fig3()
    published._raw.cache_clear()


def _ours(shift_fixed: float, shift_random: float, extra: bool = True) -> pd.DataFrame:
    """A step table in the chapter's format made of the published runs (steps 0..49, with one
    extra step 50 as ours record) and an XXZ MLP copy per gauge, shifted."""
    pub = published.fig3()
    d = pub[["dataset", "model", "method", "run", "step", "train_acc", "val_acc"]]
    if extra:  # step 50 is not in the published record: ignored by the comparison
        d = pd.concat([d, d[d.step == 49].assign(step=50, val_acc=0.0)])
    parts = [d[d.dataset == "mnist"].assign(gauge="none"), d[(d.dataset == "xxz") & (d.model == "qnn")].assign(gauge="fixed")]
    mlp = d[(d.dataset == "xxz") & (d.model == "mlp")]
    parts += [mlp.assign(gauge="fixed", val_acc=mlp.val_acc + shift_fixed),
              mlp.assign(gauge="random_phase", val_acc=mlp.val_acc + shift_random)]
    return pd.concat(parts, ignore_index=True)


def test_compare_fig3_uses_the_common_steps_and_finds_the_gauge():
    c = published.compare_fig3(_ours(0.1, 0.0))
    assert len(c) == 20 and (c.n_steps == 50).all()  # step 50 (ours only) is left out
    same = c[~((c.dataset == "xxz") & (c.model == "mlp") & (c.gauge == "fixed"))]
    assert np.allclose(same.val_rms, 0.0, atol=1e-12)
    assert np.allclose(c[(c.gauge == "fixed") & (c.model == "mlp")].val_rms, 0.1)
    closer = published.fig3_gauge_closer(c)
    assert closer["all"] == "random_phase" and closer["scrub"] == "random_phase"
    assert published.fig3_gauge_closer(_ours(0.0, -0.2).pipe(published.compare_fig3))["all"] == "fixed"
    g = uc.published_glue(c)
    assert g["up_gauge_fig3b"] == "random phase" and g["up_xxz_fixed_mlp_retrain_rms"] == "0.100"
    # the published MNIST QNN dip: gradient ascent's lowest mean is at step 1
    r = c[(c.dataset == "mnist") & (c.model == "qnn") & (c.method == "gradient_ascent")].iloc[0]
    assert r.published_min_step == 1 and r.published_min < 0.6


def _summary(retrain_fixed: float, retrain_random: float) -> pd.DataFrame:
    """XXZ MLP summaries: approximate methods end at 0.90, Retrain at the given values."""
    rows = []
    for gauge, rv in (("fixed", retrain_fixed), ("random_phase", retrain_random)):
        for m in ("retrain", "finetune", "gradient_ascent", "scrub"):
            for step in (0, 1, 50):
                rows.append({"dataset": "xxz", "gauge": gauge, "model": "mlp", "method": m, "step": step,
                             "val_acc": rv if m == "retrain" else 0.9})
    return pd.DataFrame(rows)


def test_mlp_claim_is_read_under_the_matched_gauge():
    s = _summary(0.90, 0.97)  # Retrain a clear upper bound only under random phases
    both = uc.claims(s)[0]
    assert both["ours_verdict"] == scorecard.PARTLY
    only = uc.claims(s, mlp_gauge="random_phase")[0]
    assert only["ours_verdict"] == scorecard.AGREES and "fixed" not in only["ours_numbers"]
    assert uc.claims(s, mlp_gauge="fixed")[0]["ours_verdict"] == scorecard.DISAGREES


def test_scorecard_reads_the_published_runs_and_the_closer_gauge():
    rows = {r["claim"]: r for r in scorecard.unlearning_claims(_ours(0.1, 0.0, extra=False))}
    mlp = rows["unlearning_mlp"]
    assert "random phase gauge, the one Fig. 3b matches" in mlp["ours_numbers"]
    assert "XXZ (fixed)" not in mlp["ours_numbers"]
    # published runs read by the same rule (the chapter's copy of them gives the same verdict)
    assert mlp["published_verdict"] == mlp["ours_verdict"]
    assert "(step 49)" in mlp["published_numbers"]
    none = {r["claim"]: r for r in scorecard.unlearning_claims(None)}
    assert none["unlearning_mlp"]["ours_verdict"] == scorecard.MISSING
    assert none["unlearning_mlp"]["published_verdict"] != "n/a"


def test_ga_trials_build_the_code_settings():
    from qmu_core import unlearning_trials as ut

    P = uc.UnlearningParams(mnist_n_val=200, epoch_scale=0.05, steps=2, workers=1)
    ts = ut.tasks(P, "SI text: full batch, lr 0.001, shared model", 2)
    assert [t.run for t in ts] == [0, 1] and all(t.data_run == 0 and not t.extras for t in ts)
    (label, m), = ts[0].methods
    assert label == "gradient_ascent" and m.batch_size == 0 and m.lr == 0.001 and m.beta == 0.2 and m.epochs == 2
    t = ut.tasks(P, "code's batch and lr, independent runs", 1)[0]
    assert t.protocol == "independent" and t.methods[0][1].batch_size == 256 and t.methods[0][1].lr == 0.005
    with pytest.raises(Exception, match="ga_trial_runs"):
        uc.UnlearningParams(ga_trial_runs=-1)
