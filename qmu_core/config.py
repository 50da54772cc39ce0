"""The paper's training hyperparameters (SI Table I and the released code; SPEC.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .validation import check_choice, check_float, check_int, check_sequence

#: the forms of Adam's update (:attr:`TrainConfig.adam`)
ADAM_RULES = ("optax", "keras")
#: Keras's default eps (the released code's optimizer)
KERAS_EPS = 1e-7


@dataclass(frozen=True)
class TrainConfig:
    """Adam on mini-batches reshuffled every epoch (the last batch may be smaller).

    ``adam`` is the form of Adam's update (QNN only): ``"optax"`` (ours: eps = 1e-8 added to
    the square root of the bias-corrected second moment) or ``"keras"`` (the released code's
    Keras default: eps = 1e-7 added to the square root of the uncorrected one, i.e. an
    effective eps of 1e-7 / sqrt(1 - 0.999^t) at step t, 3e-6 at the first step). The two
    differ only while gradients are of the order of eps: at the QNN's start, where its
    N(0, 0.01^2) angles sit near a point where the gradient vanishes.
    """

    epochs: int
    batch_size: int
    lr: float
    eval_every: int = 1  # record full-set metrics every k epochs (and always the last)
    adam: str = "optax"

    def __post_init__(self):
        check_int("epochs", self.epochs, min=1)
        check_int("batch_size", self.batch_size, min=1)
        check_float("lr", self.lr, min=0.0, min_inclusive=False)
        check_int("eval_every", self.eval_every, min=1)
        check_choice("adam", self.adam, ADAM_RULES)

    def scaled(self, epoch_scale: float) -> "TrainConfig":
        """The same protocol with ``epochs`` scaled (for quick CI executions)."""
        epoch_scale = check_float("epoch_scale", epoch_scale, min=0.0, min_inclusive=False)
        e = max(1, round(self.epochs * epoch_scale))
        return replace(self, epochs=e, eval_every=min(self.eval_every, e))


#: the classical families of the classical-models chapter (qmu_core.classical.FAMILIES)
CLASSICAL_KINDS = ("logistic", "linear_svm", "rbf_svm", "rff", "cnn", "resnet")


@dataclass(frozen=True)
class ModelSpec:
    """Which model: ``kind='qnn'`` with ``depth`` (+ gate options), ``kind='mlp'`` with
    ``hidden``, or a classical family of :mod:`qmu_core.classical` with its ``setting``."""

    kind: str
    depth: int = 4
    hidden: tuple[int, ...] = (64, 16)
    rotations: tuple[str, str, str] = ("rx", "ry", "rx")
    entangler: str = "ring"
    setting: str = "standard"

    def __post_init__(self):
        check_choice("model", self.kind, ("qnn", "mlp", *CLASSICAL_KINDS))
        check_choice("setting", self.setting, ("standard", "alternative"))
        check_int("depth", self.depth, min=1)
        object.__setattr__(
            self, "hidden", check_sequence("hidden", self.hidden, lambda n, v: check_int(n, v, min=1))
        )
        object.__setattr__(self, "rotations", tuple(self.rotations))

    @property
    def label(self) -> str:
        if self.kind == "qnn":
            return f"QNN D={self.depth}"
        if self.kind == "mlp":
            return "MLP [" + ",".join(map(str, self.hidden)) + "]"
        from .classical import ClassicalSpec

        return ClassicalSpec(self.kind, self.setting).label


def paper_setting(dataset: str, model: str, mnist_mlp: str = "code") -> tuple[ModelSpec, TrainConfig]:
    """Model and hyperparameters of the resilience experiments (Fig. 2).

    ``mnist_mlp='code'`` is what produced Fig. 2c in the authors' code ([64, 16], 100
    epochs, batch 256, lr 0.005); ``'si'`` is SI Table I ([16, 4], batch 128, lr 0.01).
    """
    check_choice("dataset", dataset, ("mnist", "xxz"))
    check_choice("model", model, ("qnn", "mlp"))
    check_choice("mnist_mlp", mnist_mlp, ("code", "si"))
    if dataset == "xxz":
        if model == "mlp":
            return ModelSpec("mlp", hidden=(64, 16)), TrainConfig(400, 32, 0.01)
        return ModelSpec("qnn", depth=4), TrainConfig(200, 32, 0.03)
    if model == "qnn":
        return ModelSpec("qnn", depth=6), TrainConfig(100, 256, 0.005)
    if mnist_mlp == "code":
        return ModelSpec("mlp", hidden=(64, 16)), TrainConfig(100, 256, 0.005)
    return ModelSpec("mlp", hidden=(16, 4)), TrainConfig(100, 128, 0.01)
