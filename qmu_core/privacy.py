"""Membership inference: can an attacker tell the forget set from samples the model never saw?

The unlearning chapter's privacy check (beyond the paper; the standard test of the unlearning
literature, e.g. Kurmanji et al. 2023): a logistic regression reads one score per sample (its
loss, or the entropy of the model's prediction) and is asked to separate forget-set samples
(members) from validation samples (non-members); its cross-validated ROC AUC is reported.
0.5: the two are indistinguishable by that score; the oracle's AUC (a model that never saw the
forget set) is the reference an unlearned model should reach.
"""

from __future__ import annotations

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from .validation import ParameterError, check_int

FOLDS = 5


def prediction_entropy(z) -> np.ndarray:
    """Entropy (nats) of the Bernoulli prediction sigmoid(z), per sample (needs no label)."""
    z = np.asarray(z, np.float64)
    p = 0.5 * (1.0 + np.tanh(0.5 * z))
    lp, l1p = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)
    return -(p * lp + (1 - p) * l1p)


def membership_auc(members, nonmembers, seed: int, folds: int = FOLDS) -> float:
    """Cross-validated ROC AUC (``folds`` stratified folds, shuffled from ``seed``) of a logistic
    regression separating ``members`` from ``nonmembers`` (one score per sample). The larger
    group is subsampled (seeded) to the size of the smaller, so chance is 0.5."""
    a, b = np.asarray(members, np.float64).ravel(), np.asarray(nonmembers, np.float64).ravel()
    folds = check_int("folds", folds, min=2)
    if min(len(a), len(b)) < folds:
        raise ParameterError(f"membership_auc needs at least {folds} samples per group, got {len(a)} and {len(b)}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ParameterError("membership_auc: scores must be finite")
    rng = np.random.default_rng(int(seed))
    n = min(len(a), len(b))
    a, b = a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)]
    x = np.concatenate([a, b])[:, None]
    y = np.concatenate([np.ones(n), np.zeros(n)])
    x = (x - x.mean()) / (x.std() or 1.0)
    cv = StratifiedKFold(folds, shuffle=True, random_state=int(seed) % 2**32)
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):  # inputs checked above
        return float(np.mean(cross_val_score(LogisticRegression(), x, y, cv=cv, scoring="roc_auc")))
