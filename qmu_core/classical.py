"""More classical models (main text: "to ensure that the observed brittle memorization is
universal ..."): linear classifiers, kernel machines, random Fourier features and small
convolutional networks, trained through the resilience protocol beside the MLP.

The paper names the families (support vector machine, logistic regression, CNN, ResNet,
random Fourier feature network) but their settings are in a supplement we do not have, so
each family here has a standard setting, stated in :data:`FAMILIES`, and an alternative for
the one judgement call that matters most (regularisation, width), so a reader sees how much
the choice moves the curve. Every model takes a seed and is deterministic under it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from .data import XXZ_DEFAULT_SET, XXZ_GAUGES
from .paths import ResultsDir
from .resilience import CORRUPTION_NAMES, PAPER_ALPHAS, SweepEngine, XXZData, check_alphas, check_engine
from .validation import ParameterError, check_choice

#: family -> (what it is, its standard setting, the alternative shown)
FAMILIES = {
    "logistic": ("logistic regression (scikit-learn, L2, lbfgs)", {"C": 1.0}, {"C": 0.01}),
    "linear_svm": ("linear SVM (scikit-learn LinearSVC, squared hinge, L2)", {"C": 1.0}, {"C": 0.01}),
    "rbf_svm": ("RBF-kernel SVM (scikit-learn SVC, gamma='scale')", {"C": 1.0}, {"C": 100.0}),
    "rff": ("random Fourier features (RBFSampler, gamma='scale') + logistic regression",
            {"n_components": 2000, "C": 1.0}, {"n_components": 2000, "C": 100.0}),
    "cnn": ("CNN: conv 16 - pool - conv 32 - pool - dense 64 - 1, ReLU, Adam",
            {"epochs": 20, "width": 16}, {"epochs": 20, "width": 4}),
    "resnet": ("ResNet: conv stem + 3 residual blocks with batch norm (8, 16, 32 channels), Adam",
               {"epochs": 20, "width": 8}, {"epochs": 20, "width": 4}),
}
IMAGE_FAMILIES = ("cnn", "resnet")
TORCH_LR, TORCH_BATCH = 1e-3, 64


@dataclass(frozen=True)
class ClassicalSpec:
    """A classical model: its family and its settings (``setting='standard'`` or ``'alternative'``)."""

    family: str
    setting: str = "standard"

    def __post_init__(self):
        check_choice("family", self.family, tuple(FAMILIES))
        check_choice("setting", self.setting, ("standard", "alternative"))

    @property
    def options(self) -> dict:
        return dict(FAMILIES[self.family][1 if self.setting == "standard" else 2])

    @property
    def label(self) -> str:
        opts = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.options.items())
        return f"{self.family} ({opts})"


# ----------------------------------------------------------------------------- scikit-learn
def _sklearn_model(spec: ClassicalSpec, seed: int):
    from sklearn.kernel_approximation import RBFSampler
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC, LinearSVC

    o = spec.options
    if spec.family == "logistic":
        return LogisticRegression(C=o["C"], max_iter=5000)
    if spec.family == "linear_svm":
        return LinearSVC(C=o["C"], max_iter=20000, random_state=seed)
    if spec.family == "rbf_svm":
        return SVC(kernel="rbf", C=o["C"], gamma="scale")
    return make_pipeline(_ScaledRBFSampler(o["n_components"], seed, RBFSampler),
                         LogisticRegression(C=o["C"], max_iter=5000))


class _ScaledRBFSampler:
    """RBFSampler with gamma = 1 / (n_features * Var(X)) of the training set (SVC's 'scale')."""

    def __init__(self, n_components: int, seed: int, cls):
        self.n_components, self.seed, self.cls = n_components, seed, cls

    def fit(self, x, y=None):
        gamma = 1.0 / (x.shape[1] * x.var())
        self.sampler = self.cls(gamma=gamma, n_components=self.n_components, random_state=self.seed).fit(x)
        return self

    def transform(self, x):
        return self.sampler.transform(x)

    def fit_transform(self, x, y=None):
        return self.fit(x).transform(x)

    def get_params(self, deep=True):  # the pipeline's clone() protocol
        return {"n_components": self.n_components, "seed": self.seed, "cls": self.cls}

    def set_params(self, **p):
        for k, v in p.items():
            setattr(self, k, v)
        return self


# ----------------------------------------------------------------------------- torch
class SmallCNN(nn.Module):
    """Two 3x3 convolutions (``width``, 2 ``width`` channels) with max pooling, then a dense
    layer of 64 units: the textbook MNIST convnet, shrunk for 500 images."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


class SmallResNet(nn.Module):
    """A ResNet for 28x28 inputs (He et al. 2016, CIFAR-style, one block per stage): a 3x3
    stem, residual blocks of ``width``, 2 ``width`` and 4 ``width`` channels (the last two
    downsampling), global average pooling and one output."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            _Block(w, w, 1), _Block(w, 2 * w, 2), _Block(2 * w, 4 * w, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def torch_model(spec: ClassicalSpec) -> nn.Module:
    return (SmallCNN if spec.family == "cnn" else SmallResNet)(spec.options["width"])


def n_params(spec: ClassicalSpec, n_features: int = 784) -> int:
    """Trainable parameters (for the kernel machines: the number of coefficients of the fitted
    decision function is data-dependent; we report the feature-space dimension instead)."""
    if spec.family in IMAGE_FAMILIES:
        return sum(p.numel() for p in torch_model(spec).parameters())
    if spec.family in ("logistic", "linear_svm"):
        return n_features + 1
    if spec.family == "rff":
        return spec.options["n_components"] + 1
    return -1  # an RBF SVM's size is its number of support vectors


def _images(x: np.ndarray) -> torch.Tensor:
    """The first 784 features as 28x28 one-channel images (the MNIST vectors' layout)."""
    if x.shape[1] < 784:
        raise ParameterError(f"image models need 784 pixel features, got {x.shape[1]}")
    return torch.from_numpy(np.ascontiguousarray(x[:, :784], dtype=np.float32)).reshape(-1, 1, 28, 28)


def _train_torch_reference(spec: ClassicalSpec, x, y, seed: int) -> nn.Module:
    """The torch models' training as first written (contiguous NCHW tensors, for-loop Adam):
    the reference :func:`_train_torch` is tested against (tests/test_classical_fast.py) and
    the "old" side of benchmarks/classical_speed.py. Its runs were cached without a kernel
    name; :data:`TORCH_KERNEL` names the other arithmetic where a family has one."""
    torch.manual_seed(int(seed))  # conv and BN initialisation draw from torch's global generator
    net = torch_model(spec)
    # the inputs are unit vectors (entries ~0.04): rescale so a pixel is O(1), as for raw images
    xt, yt = _images(x) * 28.0, torch.from_numpy(np.asarray(y, np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=TORCH_LR)
    _fit(spec, net, opt, xt, yt, seed)
    return net


#: The arithmetic of :func:`_train_torch` per torch family, part of the sweep cache key of
#: their runs (:func:`qmu_core.sweep.cache_key`). The CNN trains on channels-last tensors,
#: pooling before its ReLU, with fused Adam: same model, data, initialisation and minibatch
#: order as :func:`_train_torch_reference`, other rounding (the convolutions' reduction
#: order, Adam's). The ResNet trains exactly as the reference (None: no name, so its runs
#: cached before keep their key): channels-last would speed it up ~1.4x, but torch's CPU
#: batch norm on channels-last tensors is ~60x less accurate in float32 (measured: 2e-5 vs
#: 4e-7 absolute error against float64 on O(5) activations, 1e-2 relative error in the
#: gradients at initialisation).
TORCH_KERNEL = {"cnn": "channels-last+pool-relu+adam-fused", "resnet": None}


def _train_torch(spec: ClassicalSpec, x, y, seed: int) -> nn.Module:
    """Train a CNN or ResNet from ``seed`` as :func:`_train_torch_reference` does (same
    initial parameters, same minibatches); the CNN faster on a CPU core
    (benchmarks/classical_speed.py), the ResNet by the reference itself (:data:`TORCH_KERNEL`):

    * channels-last (NHWC) tensors: oneDNN's convolutions run ~1.5x faster on them than on
      NCHW ones (measured, one thread, batch 64);
    * pooling before the ReLU (:func:`_pool_before_relu`): the same numbers, gradients
      included, from a ReLU on a quarter of the pixels;
    * fused Adam: one pass per parameter tensor, as for the MLPs (``training.MLP_OPTIMIZER``).

    Training several runs at once (``torch.func.vmap`` over stacked parameters and buffers)
    was measured and left out: on one CPU thread these small convolutions are compute-bound,
    and the grouped convolutions vmap makes of them were no faster (5 runs, contiguous
    tensors: CNN 3.9-4.5 s per run vmapped vs 3.5 s alone, ResNet 10.2-10.7 s vs 10.7 s).
    """
    if TORCH_KERNEL[spec.family] is None:
        return _train_torch_reference(spec, x, y, seed)
    torch.manual_seed(int(seed))  # the same draws as the reference: the layers are built in the same order
    net = _pool_before_relu(torch_model(spec)).to(memory_format=torch.channels_last)
    xt = (_images(x) * 28.0).contiguous(memory_format=torch.channels_last)
    yt = torch.from_numpy(np.asarray(y, np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=TORCH_LR, fused=True)
    _fit(spec, net, opt, xt, yt, seed)
    return net


def channels_last(spec: ClassicalSpec, reference: bool = False) -> bool:
    """Whether :func:`_train_torch` (or, ``reference``, the reference) trains ``spec`` on
    channels-last tensors, so that its predictions are made on them too."""
    return not reference and TORCH_KERNEL[spec.family] is not None


def _pool_before_relu(net: SmallCNN) -> SmallCNN:
    """Swap each ReLU of ``net`` with the max pooling after it, in place. ReLU is monotone,
    so max(relu(a)) = relu(max(a)) exactly, and the gradients agree too (a window's gradient
    goes to its first maximum, where both orders pass it through iff the maximum is > 0);
    the parameter names (``net.0``, ``net.3``, ...) do not move."""
    layers = list(net.net)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.ReLU) and isinstance(layers[i + 1], nn.MaxPool2d):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    net.net = nn.Sequential(*layers)
    return net


def _fit(spec: ClassicalSpec, net: nn.Module, opt, xt: torch.Tensor, yt: torch.Tensor, seed: int) -> None:
    """Minibatch training of ``net`` for the spec's epochs; the minibatch order is drawn from
    ``seed + 1`` (a generator of its own, so it does not depend on the initialisation)."""
    g = torch.Generator().manual_seed(int(seed) + 1)
    net.train()
    for _ in range(spec.options["epochs"]):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), TORCH_BATCH):
            idx = perm[i:i + TORCH_BATCH]
            if len(idx) < 2 and spec.family == "resnet":
                continue  # batch norm cannot normalise a batch of one
            loss = nn.functional.binary_cross_entropy_with_logits(net(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()


def _torch_predict(net: nn.Module, x, channels_last: bool = False) -> np.ndarray:
    """0/1 predictions of a trained net, on inputs in the memory format it was trained in
    (told, not inferred: a one-channel tensor passes both formats' contiguity tests)."""
    xt = _images(x) * 28.0
    if channels_last:
        xt = xt.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        return (net(xt) > 0).numpy().astype(np.int64)


def fit_evaluate(spec: ClassicalSpec, x_train, y_train, x_val, y_val, seed: int, *,
                 reference: bool = False) -> dict[str, float]:
    """Train ``spec`` on (x_train, y_train) from ``seed``; final training and validation
    accuracy. Complex inputs (XXZ states) enter as [Re, Im], as for the MLP. ``reference``:
    train a CNN or ResNet with :func:`_train_torch_reference` (the former arithmetic) instead
    of :func:`_train_torch`; the scikit-learn models have one way only."""
    from .data import as_real_features
    from .validation import check_bool

    check_bool("reference", reference)
    x_train, x_val = as_real_features(x_train), as_real_features(x_val)
    y_train, y_val = np.asarray(y_train, np.int64), np.asarray(y_val, np.int64)
    with torch.no_grad():
        threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread, as for the MLPs (no contention with workers)
    # One BLAS thread as well: OpenBLAS splits a product by its thread count, and the RFF
    # model's liblinear solve (C = 100) lands on other accuracies with 2 threads than with 1,
    # so a run in the notebook's process would differ from the same run on a worker.
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            if spec.family in IMAGE_FAMILIES:
                net = (_train_torch_reference if reference else _train_torch)(spec, x_train, y_train, seed)
                cl = channels_last(spec, reference)
                p_train, p_val = (_torch_predict(net, x, cl) for x in (x_train, x_val))
            else:
                m = _sklearn_model(spec, seed).fit(x_train, y_train)
                p_train, p_val = m.predict(x_train), m.predict(x_val)
    finally:
        torch.set_num_threads(threads)
    return {"train_acc": float(np.mean(p_train == y_train)), "val_acc": float(np.mean(p_val == y_val))}


# ----------------------------------------------------------------------------- the chapter
@dataclass(frozen=True)
class ClassicalParams(SweepEngine, ResultsDir):
    """Validated parameters of the classical-models chapter (meaning: its parameters cell)."""

    families: tuple = tuple(FAMILIES)
    alternatives: bool = True
    n_runs: int = 5
    alphas: tuple = PAPER_ALPHAS
    xxz: bool = True
    xxz_set: str = XXZ_DEFAULT_SET
    xxz_gauges: tuple = XXZ_GAUGES
    seed: int = 0
    scheduler: str = ""
    workers: int = 0
    results_dir: str = ""

    def __post_init__(self):
        from .validation import check_bool, check_int, check_sequence, check_str

        fams = check_sequence("families", self.families, lambda n, v: check_choice(n, v, tuple(FAMILIES)))
        object.__setattr__(self, "families", fams)
        check_bool("alternatives", self.alternatives)
        check_int("n_runs", self.n_runs, min=1)
        object.__setattr__(self, "alphas", check_alphas(self.alphas))
        check_bool("xxz", self.xxz)
        object.__setattr__(self, "xxz_gauges", XXZData(self.xxz_set, self.xxz_gauges).xxz_gauges)
        check_int("seed", self.seed, min=0)
        check_engine(self)
        check_str("results_dir", self.results_dir)


    def specs(self):
        """(ModelSpec, TrainConfig) of the standard and, if asked, the alternative settings."""
        out = [(model_spec(f, "standard"), None) for f in self.families]
        if self.alternatives:
            out += [(model_spec(f, "alternative"), None) for f in self.families]
        return [(m, train_config(m)) for m, _ in out]

    def jobs(self):
        """The sweeps: every family's standard setting on MNIST under both corruptions; the
        alternative settings on MNIST under label flipping; the vector models on the XXZ
        states under both corruptions and every gauge."""
        from . import data
        from .resilience import final_only
        from .sweep import SweepSpec

        def sweep(m, cfg, corruption):
            return SweepSpec(m, corruption, tuple(self.alphas), self.n_runs, final_only(cfg), seed=self.seed)

        mnist = data.mnist_1v9()
        out = []
        for m, cfg in self.specs():
            corrs = ("label_flip", "feature_random") if m.setting == "standard" else ("label_flip",)
            out += [(mnist, sweep(m, cfg, c)) for c in corrs]
        if self.xxz:
            for ds in XXZData(self.xxz_set, self.xxz_gauges).datasets().values():
                for m, cfg in self.specs():
                    if m.setting == "standard" and m.kind not in IMAGE_FAMILIES:
                        out += [(ds, sweep(m, cfg, c)) for c in ("label_flip", "feature_random")]
        return out


def model_spec(family: str, setting: str = "standard"):
    """The :class:`qmu_core.config.ModelSpec` of a classical family (its ``kind``)."""
    from .config import ModelSpec

    return ModelSpec(family, setting=setting)


def train_config(spec):
    """The sweep's TrainConfig of a classical model: the torch models' epochs, batch and
    learning rate; a placeholder (1 epoch) for the scikit-learn models, which fit to
    convergence and have none."""
    from .config import TrainConfig

    c = ClassicalSpec(spec.kind, spec.setting)
    if c.family in IMAGE_FAMILIES:
        return TrainConfig(c.options["epochs"], TORCH_BATCH, TORCH_LR)
    return TrainConfig(1, 1, 1.0)


def size_table(P: ClassicalParams):
    """Family, setting, label and parameter count (784 MNIST inputs; 8192 for XXZ vectors)."""
    import pandas as pd

    rows = []
    for m, _ in P.specs():
        c = ClassicalSpec(m.kind, m.setting)
        rows.append({"family": FAMILIES[c.family][0], "setting": c.setting, "model": c.label,
                     "parameters (MNIST)": n_params(c, 784) if n_params(c) >= 0 else "support vectors",
                     "parameters (XXZ)": (n_params(c, 8192) if c.family not in IMAGE_FAMILIES and n_params(c) >= 0
                                          else "—" if c.family in IMAGE_FAMILIES else "support vectors")})
    return pd.DataFrame(rows)


def readings(df):
    """:func:`qmu_core.reading.read_curve` of every classical curve, plus the training
    accuracy at alpha = 0.3 (whether the flipped labels are fitted)."""
    import pandas as pd

    from .reading import read_curve

    rows = []
    keys = ["dataset", "gauge", "model", "model_label", "corruption"]
    for k, d in df.groupby(keys, sort=False):
        mean = d.groupby("alpha")[["train_acc", "val_acc"]].mean()
        r = read_curve(mean.index, mean.val_acc.to_numpy())
        near = np.isclose(mean.index, 0.3)
        rows.append({**dict(zip(keys, k)), **r,
                     "train_0_3": float(mean.train_acc[near].iloc[0]) if near.any() else float("nan")})
    return pd.DataFrame(rows)


def glue_values(table) -> dict[str, str]:
    """``cl_<family>[_alt]_<dataset>[_<gauge>]_<corruption>_<reading>`` for the chapter's prose
    (every family and setting of :data:`FAMILIES`, 'n/a' where not run)."""
    out = {}
    for fam in FAMILIES:
        for setting in ("standard", "alternative"):
            label = ClassicalSpec(fam, setting).label
            for ds, gauge in (("mnist", None), ("xxz", "fixed"), ("xxz", "random_phase")):
                for c in ("label_flip", "feature_random"):
                    key = "_".join(["cl", fam] + (["alt"] if setting == "alternative" else []) + [ds]
                                   + ([gauge] if gauge else []) + [c])
                    m = (table.model_label == label) & (table.dataset == ds) & (table.corruption == c) \
                        if len(table) else []
                    if len(table) and gauge:
                        m &= table.gauge == gauge
                    r = table[m] if len(table) else table
                    for col, fmt in (("clean", "{:.3f}"), ("drop_0_04", "{:.2f}"), ("flat_until", "{:.1f}"),
                                     ("slope_0_04", "{:+.2f}"), ("train_0_3", "{:.2f}")):
                        out[f"{key}_{col}"] = fmt.format(r.iloc[0][col]) if len(r) else "n/a"
    return out


def plot(summary, dataset: str, corruption: str, *, reference=None):
    """One panel per family: the standard setting's training (solid) and validation (dashed)
    accuracy with ± 1 sd bands, the alternative setting in grey, and (``reference``: the
    resilience chapter's summary) the MLP and QNN validation curves as thin lines."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    sub = summary[(summary.dataset == dataset) & (summary.corruption == corruption)]
    curves = [(f, g) for f in FAMILIES for g in dict.fromkeys(sub.gauge) if (sub.model == f).any()]
    if not curves:
        return None
    ncol = min(3, len(curves))
    nrow = -(-len(curves) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.6 * nrow), sharex=True, sharey=True, squeeze=False)
    for ax, (fam, gauge) in zip(axes.flat, curves):
        d = sub[(sub.model == fam) & (sub.gauge == gauge)]
        for label, dd in d.groupby("model_label", sort=False):
            alt = label == ClassicalSpec(fam, "alternative").label
            for what, style in (("train", "-"), ("val", "--")):
                mu, sd = dd[f"{what}_acc_mean"].to_numpy(), dd[f"{what}_acc_std"].fillna(0).to_numpy()
                col = "0.55" if alt else COLORS[what]
                ax.plot(dd.alpha, mu, style, color=col, lw=1.2 if alt else 1.8,
                        label=f"{'alternative' if alt else 'standard'}, {'training' if what == 'train' else 'validation'}")
                if not alt:
                    ax.fill_between(dd.alpha, mu - sd, mu + sd, color=col, alpha=0.2, lw=0)
        if reference is not None:
            r = reference[(reference.dataset == dataset) & (reference.corruption == corruption)]
            if "gauge" in r.columns and dataset == "xxz":
                r = r[(r.model == "qnn") | (r.gauge == gauge)]
            for m in ("mlp", "qnn"):
                rr = r[r.model == m]
                if len(rr):
                    ax.plot(rr.alpha, rr.val_acc_mean, ":", lw=1.0, color=COLORS[m], label=f"{m.upper()} validation")
        g = f", {gauge.replace('_', ' ')}" if dataset == "xxz" else ""
        ax.set_title(f"{fam.replace('_', ' ')}{g}", fontsize=9)
        ax.set_ylim(0, 1.04)
    for ax in axes.flat[len(curves):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(r"noise ratio $\alpha$")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    handles = {}
    for ax in axes.flat:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=3, fontsize=7.5,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"{dataset.upper() if dataset == 'xxz' else 'MNIST'}, {CORRUPTION_NAMES[corruption]}")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return axes
