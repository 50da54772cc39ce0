"""Reading curves, the published numbers, the comparison and the scorecard's rules."""

import numpy as np
import pandas as pd
import pytest

from qmu_core import published, reading, scorecard

ALPHAS = np.round(np.arange(10) * 0.1, 1)


def test_read_curve_on_a_plateau_and_on_a_decline():
    plateau = np.array([0.98, 0.98, 0.97, 0.96, 0.95, 0.50, 0.10, 0.05, 0.03, 0.02])
    r = reading.read_curve(ALPHAS, plateau)
    assert r["clean"] == 0.98 and r["flat_until"] == 0.4  # 0.95 >= 0.98 - 0.05, then 0.50
    assert r["drop_0_04"] == pytest.approx(0.03)
    # halfway to chance is 0.74, crossed between 0.4 (0.95) and 0.5 (0.50)
    assert r["alpha_c"] == pytest.approx(0.4 + (0.95 - 0.74) / (0.95 - 0.50) * 0.1)
    decline = 0.98 - 0.9 * ALPHAS
    r = reading.read_curve(ALPHAS, decline)
    assert r["flat_until"] == 0.0 and r["slope_0_04"] == pytest.approx(-0.9)
    assert r["drop_0_04"] == pytest.approx(0.36)
    assert np.isnan(reading.read_curve(ALPHAS, np.full(10, 0.9))["alpha_c"])


def test_published_numbers_are_the_shipped_file():
    d = published.fig2()
    assert len(d) == 400 and set(d.dataset) == {"mnist", "xxz"}
    # what the numbers reveal (SPEC.md): MNIST MLP validation on 2144 images, XXZ MLP on 82 / 84 states
    v = d[(d.dataset == "mnist") & (d.model == "mlp")].val_acc * 2144
    assert np.allclose(v, np.round(v), atol=1e-6)
    x = d[(d.dataset == "xxz") & (d.model == "mlp")]
    assert np.allclose(x.train_acc * 82, np.round(x.train_acc * 82), atol=1e-6)
    assert np.allclose(x.val_acc * 84, np.round(x.val_acc * 84), atol=1e-6)


def test_published_checksum_is_enforced(monkeypatch):
    published._raw.cache_clear()
    monkeypatch.setattr(published, "sha256_bytes", lambda b: "0" * 64)
    with pytest.raises(OSError, match="SHA-256"):
        published.fig2()
    published._raw.cache_clear()


def test_compare_measures_the_gap():
    pub = published.fig2()
    ours = pub.assign(gauge="none", val_acc=pub.val_acc - 0.1)
    ours.loc[(ours.alpha == 0.3) & (ours.dataset == "mnist"), "val_acc"] -= 0.2
    c = published.compare(ours, pub)
    assert len(c) == 8 and (c.n_alphas == 10).all()
    np.testing.assert_allclose(c.train_rms, 0.0, atol=1e-12)
    m = c[c.dataset == "mnist"].iloc[0]
    assert m.val_max_gap == pytest.approx(-0.3) and m.val_max_gap_alpha == 0.3
    x = c[c.dataset == "xxz"].iloc[0]
    assert x.val_rms == pytest.approx(0.1)


def _runs(model, values, train=None, dataset="mnist", corruption="label_flip"):
    rows = []
    for a, v in zip(ALPHAS, values):
        for run in range(2):
            rows.append({"dataset": dataset, "gauge": "none", "model": model, "corruption": corruption,
                         "alpha": a, "run": run, "val_acc": v, "train_acc": 1.0 if train is None else train(a)})
    return rows


def test_scorecard_rules():
    assert scorecard.combine([True, True]) == scorecard.AGREES
    assert scorecard.combine([True, False, None]) == scorecard.PARTLY
    assert scorecard.combine([False]) == scorecard.DISAGREES
    assert scorecard.combine([None]) == scorecard.MISSING
    mlp = _runs("mlp", 0.99 - 0.9 * ALPHAS)  # declines, fits every flip
    qnn = _runs("qnn", [0.98, 0.98, 0.97, 0.97, 0.96, 0.5, 0.1, 0.05, 0.03, 0.02], train=lambda a: 1 - a)
    rows = scorecard.resilience_claims(pd.DataFrame(mlp + qnn), None)
    v = {r["claim"]: r["ours_verdict"] for r in rows}
    assert v["lf_mlp"] == v["lf_mlp_fit"] == v["lf_qnn"] == v["lf_qnn_refuse"] == scorecard.AGREES
    assert v["lf_qnn_alpha_c"] == scorecard.AGREES
    assert {r["published_verdict"] for r in rows} == {scorecard.MISSING}
    # swap the models: every claim about them now fails
    swapped = pd.DataFrame(mlp + qnn).replace({"model": {"mlp": "qnn", "qnn": "mlp"}})
    v = {r["claim"]: r["ours_verdict"] for r in scorecard.resilience_claims(swapped, None)}
    assert v["lf_mlp"] == v["lf_qnn"] == v["lf_mlp_fit"] == v["lf_qnn_refuse"] == scorecard.DISAGREES


def test_landscape_claim_reads_the_paper_setting_only():
    def summary(mlp, qnn, released_qnn=0.5):
        rows = [{"setting": "paper", "model": m, "alpha": a, "lrr": v} for m, vals in (("mlp", mlp), ("qnn", qnn))
                for a, v in zip((0.0, 0.2, 0.3, 0.4), (1.0, *vals))]
        return pd.DataFrame(rows + [{"setting": "released_code", "model": "qnn", "alpha": 0.2, "lrr": released_qnn}])

    verdict = lambda s: scorecard.landscape_claims(s)[0]["ours_verdict"]  # noqa: E731
    assert verdict(summary((700, 1500, 1700), (0.5, 0.6, 1.0))) == scorecard.AGREES
    assert verdict(summary((700, 1500, 1700), (0.5, 0.6, 1.0), released_qnn=50)) == scorecard.AGREES
    assert verdict(summary((700, 5, 1700), (0.5, 0.6, 1.0))) == scorecard.PARTLY
    assert verdict(summary((1.1, 1.0, 0.9), (30, 60, 90))) == scorecard.DISAGREES
    assert verdict(None) == scorecard.MISSING
    row = scorecard.landscape_claims(summary((700, 1500, 1700), (0.5, 0.6, 1.0)))[0]
    assert "paper MLP (α = 0.2, 0.3, 0.4): 700, 1500, 1700" in row["ours_numbers"]
