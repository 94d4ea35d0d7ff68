r"""Sample-quality metrics for image generators, computed on the features of a stated extractor.

Every metric compares generated images with a *reference* set of real images (except the Inception
Score, which looks at generated images alone) through a feature extractor ``phi``; its value depends
on the extractor, on the numbers of images and on the reference set, so each result carries its
protocol (:class:`MetricResult`): the counts, the reference, the extractor's name and the options.

- FID, the Fréchet distance between Gaussians fitted to the two feature sets (Heusel et al. 2017):
  ``||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^{1/2})``. Biased upwards at small sample sizes:
  compare values only at the same numbers of images.
- KID, the unbiased estimate of the squared MMD with the cubic kernel
  ``k(x, y) = (x.y / d + 1)^3`` (Bińkowski et al. 2018), averaged over random subsets.
- IS, ``exp(E_x KL(p(y|x) || p(y)))`` of the extractor's class probabilities (Salimans et al. 2016),
  mean and standard deviation over splits.
- Improved precision and recall (Kynkäänniemi et al. 2019): the fraction of generated features
  inside the real "manifold" (the union of balls around each real feature whose radius is the
  distance to its ``k``-th nearest real neighbour), and the fraction of real features inside the
  generated manifold.
- The classification accuracy score (Ravuri & Vinyals 2019): train a classifier on generated,
  labelled images only and report its accuracy on real test images.

FID, KID and IS are computed by :mod:`torchmetrics` (its ``FrechetInceptionDistance``,
``KernelInceptionDistance`` and ``InceptionScore`` accept any ``nn.Module`` as feature extractor and
need torch-fidelity only for their built-in Inception network); they are given features computed
once here, so all metrics of one evaluation share a single pass of the extractor. Precision, recall
and the classification accuracy score are implemented here.

Extractors (:class:`FeatureExtractor`). :func:`digits_extractor` trains a small convolutional
classifier on the train split of :func:`gan_lib.data.digits` (seconds on a CPU) and caches it on
disk; its penultimate layer gives the features, its last layer the class logits. **These are not
Inception features**: numbers computed with it compare only with other numbers computed with the
same extractor in this book, never with published FID/IS values. :func:`inception_extractor` wraps
the standard FID Inception network (torch-fidelity, weights from a file the user provides) for
image-scale runs.

Typical use (the reference is the digits test split; features are computed once per call)::

    from gan_lib.data import digits
    from gan_lib.metrics import digits_extractor, evaluate_images

    reference, extractor = digits("test"), digits_extractor()
    results = evaluate_images(generated_images, reference, extractor)  # fid, kid, is, precision, recall
    results["fid"].value, results["fid"].protocol, results["fid"].summary()
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from gan_lib.data.images import ImageSet, default_root, digits, to_uint8
from gan_lib.files import atomic_open
from gan_lib.validation import integer_number, named, real_number, seed_number

__all__ = [
    "MetricResult",
    "PrecisionRecall",
    "fid",
    "kid",
    "inception_score",
    "precision_recall",
    "ClassifierConfig",
    "SmallClassifier",
    "train_classifier",
    "classifier_accuracy",
    "FeatureExtractor",
    "classifier_extractor",
    "digits_extractor",
    "inception_extractor",
    "classification_accuracy_score",
    "evaluate_images",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# Results with their protocol
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    """A metric's value and the protocol it was computed under.

    ``spread`` is the standard deviation over KID subsets or IS splits (``None`` where the metric
    has none). ``protocol`` always holds ``n_real`` (0 for IS), ``n_generated``, ``reference`` (what
    the real images are, e.g. ``"digits test split (seed 0, 450 images)"``) and ``extractor`` (the
    feature extractor's name), plus the metric's options.
    """

    metric: str
    value: float
    spread: float | None
    protocol: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)

    def summary(self) -> str:
        """One line: value (± spread), counts, reference and extractor."""
        p = self.protocol
        spread = "" if self.spread is None else f" ± {self.spread:.3g}"
        real = f" vs {p['n_real']} real ({p['reference']})" if p.get("n_real") else ""
        return f"{self.metric} = {self.value:.4g}{spread}: {p['n_generated']} generated{real}; features: {p['extractor']}"


class PrecisionRecall(NamedTuple):
    """What :func:`precision_recall` returns."""

    precision: MetricResult
    recall: MetricResult


def _protocol(n_real: int, n_generated: int, reference: str, extractor: str, **options: Any) -> dict[str, Any]:
    for name, value in (("reference", reference), ("extractor", extractor)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}={value!r} not allowed: state it as a non-empty string (part of the protocol)")
    return {"n_real": n_real, "n_generated": n_generated, "reference": reference, "extractor": extractor, **options}


def _features(name: str, values: Any, min_rows: int = 2) -> Tensor:
    t = torch.as_tensor(np.asarray(values) if not isinstance(values, Tensor) else values.detach())
    t = t.to(dtype=torch.float64, device="cpu")
    if t.ndim != 2 or t.shape[0] < min_rows or t.shape[1] < 1:
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected (n, d) with n >= {min_rows} and d >= 1")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains non-finite values")
    return t


def _pair(real: Any, generated: Any, min_rows: int = 2) -> tuple[Tensor, Tensor]:
    r, g = _features("real_features", real, min_rows), _features("generated_features", generated, min_rows)
    if r.shape[1] != g.shape[1]:
        raise ValueError(f"real features have dimension {r.shape[1]} and generated {g.shape[1]}; they must match")
    return r, g


def _int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    return named(name, value, lambda v: integer_number(v, lo, hi))


class _Given(nn.Module):
    """The identity on precomputed features, as torchmetrics' "feature extractor"."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: Tensor) -> Tensor:
        return x


_BUFFER_WARNING = ".*will save all extracted features in buffer.*"  # torchmetrics' memory note


# ------------------------------------------------------------------------------------------------
# FID, KID, IS (torchmetrics on given features)
# ------------------------------------------------------------------------------------------------


def fid(real_features: Any, generated_features: Any, *, reference: str, extractor: str) -> MetricResult:
    r"""Fréchet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017).

    ``FID = ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^{1/2})`` with sample means ``mu`` and
    unbiased sample covariances ``S`` (float64), by
    :class:`torchmetrics.image.fid.FrechetInceptionDistance` (the trace of the square root as the sum
    of square roots of the eigenvalues of ``S_r S_g``). The estimate is biased upwards by a term
    that shrinks like ``1/n``: compare FIDs computed from the same numbers of images.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    r, g = _pair(real_features, generated_features)
    protocol = _protocol(r.shape[0], g.shape[0], reference, extractor)
    metric = FrechetInceptionDistance(feature=_Given(r.shape[1]))
    metric.update(r, real=True)
    metric.update(g, real=False)
    return MetricResult("FID", float(metric.compute()), None, protocol)


def kid(
    real_features: Any,
    generated_features: Any,
    *,
    reference: str,
    extractor: str,
    subsets: int = 100,
    subset_size: int | None = 1000,
    seed: int = 0,
) -> MetricResult:
    r"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased squared MMD, cubic kernel.

    For ``subsets`` times, ``m = subset_size`` real and ``m`` generated features are drawn without
    replacement, and
    ``MMD_u^2 = [sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2``
    with ``k(x, y) = (x.y / d + 1)^3`` is computed; the result is the mean over subsets (``spread``:
    their standard deviation). ``subset_size`` larger than either set is reduced to the smaller set
    size (``None``: use that size); the protocol records the size used. Subsets are drawn from
    ``torch.manual_seed(seed)`` inside a forked RNG, so the caller's RNG is untouched. By
    :class:`torchmetrics.image.kid.KernelInceptionDistance`. Unlike FID it is unbiased, so values
    from different sample sizes compare (their noise differs), and it can be slightly negative.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    r, g = _pair(real_features, generated_features)
    subsets = _int("subsets", subsets, 1)
    seed = named("seed", seed, seed_number)
    m = min(r.shape[0], g.shape[0])
    m = m if subset_size is None else min(_int("subset_size", subset_size, 2), m)
    protocol = _protocol(r.shape[0], g.shape[0], reference, extractor, subsets=subsets, subset_size=m, seed=seed, kernel="(x.y/d + 1)^3")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BUFFER_WARNING)
        metric = KernelInceptionDistance(feature=_Given(r.shape[1]), subsets=subsets, subset_size=m)
    metric.update(r, real=True)
    metric.update(g, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return MetricResult("KID", float(mean), float(std), protocol)


def inception_score(logits: Any, *, extractor: str, splits: int = 10, seed: int = 0) -> MetricResult:
    r"""Inception Score (Salimans et al. 2016) of generated images from their class logits.

    With ``p(y|x) = softmax(logits)`` the images are shuffled (``torch.manual_seed(seed)`` in a
    forked RNG) and cut into ``splits`` groups; in each, ``IS = exp(mean_x KL(p(y|x) || p(y)))`` with
    ``p(y)`` the group's mean of ``p(y|x)``. The result is the mean over groups, ``spread`` their
    standard deviation (``n - 1`` in the denominator; 0 for one split). It lies in ``[1, K]``: 1
    when every image gets the same class distribution, ``K`` when each image is confidently one
    class and the classes are balanced. By :class:`torchmetrics.image.inception.InceptionScore`.
    It ignores the real data altogether (the protocol has ``n_real = 0``).
    """
    from torchmetrics.image.inception import InceptionScore

    z = _features("logits", logits, min_rows=1)
    splits = _int("splits", splits, 1, z.shape[0])
    seed = named("seed", seed, seed_number)
    protocol = _protocol(0, z.shape[0], "none (IS uses generated images only)", extractor, splits=splits, seed=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BUFFER_WARNING)
        metric = InceptionScore(feature=_Given(z.shape[1]), splits=splits)
    metric.update(z)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom")  # one split: no spread
        torch.manual_seed(seed)
        mean, std = metric.compute()
    spread = 0.0 if splits == 1 else float(std)
    return MetricResult("IS", float(mean), spread, protocol)


# ------------------------------------------------------------------------------------------------
# Improved precision and recall
# ------------------------------------------------------------------------------------------------


def _kth_neighbour_radii(x: Tensor, k: int, block: int) -> Tensor:
    out = torch.empty(x.shape[0], dtype=x.dtype)
    for start in range(0, x.shape[0], block):
        d = torch.cdist(x[start : start + block], x)
        # the k+1 smallest include the point itself (distance 0)
        out[start : start + block] = d.kthvalue(k + 1, dim=1).values
    return out


def _inside_fraction(points: Tensor, centres: Tensor, radii: Tensor, block: int) -> float:
    inside = 0
    for start in range(0, points.shape[0], block):
        d = torch.cdist(points[start : start + block], centres)
        inside += int((d <= radii[None, :]).any(dim=1).sum())
    return inside / points.shape[0]


def precision_recall(
    real_features: Any,
    generated_features: Any,
    *,
    reference: str,
    extractor: str,
    k: int = 3,
    block: int = 1024,
) -> PrecisionRecall:
    r"""Improved precision and recall (Kynkäänniemi et al. 2019), ``k``-nearest-neighbour manifolds.

    The manifold of a feature set ``A`` is ``union_a B(a, r_k(a))``, where ``r_k(a)`` is the
    Euclidean distance from ``a`` to its ``k``-th nearest neighbour in ``A`` other than itself.
    Precision is the fraction of generated features inside the real manifold
    (``exists r: ||g - r|| <= r_k(r)``): are the samples realistic? Recall is the fraction of real
    features inside the generated manifold: is the data's variety produced? The paper uses ``k = 3``
    with 50,000 images per set and VGG-16 features; both numbers depend on ``k`` and the set sizes,
    so compare only under the same protocol. Distances in float64, ``block`` rows at a time.
    """
    k = _int("k", k, 1)
    block = _int("block", block, 1)
    r, g = _pair(real_features, generated_features, min_rows=k + 1)
    protocol = _protocol(r.shape[0], g.shape[0], reference, extractor, k=k)
    radii_real = _kth_neighbour_radii(r, k, block)
    radii_gen = _kth_neighbour_radii(g, k, block)
    return PrecisionRecall(
        MetricResult("precision", _inside_fraction(g, r, radii_real, block), None, dict(protocol)),
        MetricResult("recall", _inside_fraction(r, g, radii_gen, block), None, dict(protocol)),
    )


# ------------------------------------------------------------------------------------------------
# A small classifier: feature extractor for 8x8 digits, and the classifier of the CAS
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture and training of :class:`SmallClassifier` (Adam on the cross-entropy).

    ``widths``: channels of the convolution stages (each: 3x3 convolution, ReLU, 2x2 average
    pooling); ``feature_dim``: width of the penultimate layer (the features).
    """

    widths: tuple[int, ...] = (32, 64)
    feature_dim: int = 64
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.widths, tuple) or not self.widths:
            raise ValueError(f"widths={self.widths!r} not allowed: must be a non-empty tuple of channel counts")
        for w in self.widths:
            _int("widths entry", w, 1, 4096)
        _int("feature_dim", self.feature_dim, 1, 65536)
        _int("epochs", self.epochs, 1)
        _int("batch_size", self.batch_size, 1)
        named("seed", self.seed, seed_number)
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            try:
                value = real_number(value)
            except ValueError as err:
                raise ValueError(f"{name}={value!r} not allowed: {err}") from None
            if value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"{name}={value!r} not allowed: must be {'> 0' if name == 'lr' else '>= 0'}")


class SmallClassifier(nn.Module):
    """Convolution stages, a penultimate layer of ``feature_dim`` ReLU units, and class logits.

    Each stage is ``Conv2d(3x3, padding 1) -> ReLU -> AvgPool2d(2)`` (while the image is at least
    2 pixels wide); then adaptive average pooling to 2x2, a linear layer to ``feature_dim`` with
    ReLU (the features), and a linear layer to ``n_classes`` logits. The features are multiplied
    by the buffer ``feature_scale``, which :func:`train_classifier` sets so that they have mean
    square 1 on the training images (so FID and KID have a scale that does not depend on how large
    the activations happened to grow; KID's kernel ``(x.y/d + 1)^3`` assumes entries of order 1).
    """

    def __init__(self, in_channels: int, n_classes: int, config: ClassifierConfig, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, size = in_channels, image_size
        for w in config.widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
            if size >= 2:
                layers.append(nn.AvgPool2d(2))
                size //= 2
            c = w
        layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * c, config.feature_dim), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(config.feature_dim, n_classes)
        self.register_buffer("feature_scale", torch.ones(()))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(features, logits)``: the penultimate activations times ``feature_scale``, and the logits."""
        h = self.body(x)
        return h * self.feature_scale, self.head(h)


def _check_images(name: str, images: Any) -> Tensor:
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        desc = f"{images.dtype} tensor of shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a float tensor (N, C, H, W) with values in [-1, 1]; got {desc}")
    if images.shape[0] == 0 or not torch.isfinite(images).all():
        raise ValueError(f"{name} must be non-empty and finite")
    return images.detach().to("cpu", torch.float32)


def _check_labels(name: str, labels: Any, n: int, n_classes: int) -> Tensor:
    y = torch.as_tensor(labels).reshape(-1)
    if y.numel() != n or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold {n} integer labels; got {y.dtype} with {y.numel()} entries")
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"{name} must be in 0..{n_classes - 1}; got range [{int(y.min())}, {int(y.max())}]")
    return y.to(torch.int64)


def train_classifier(
    images: Tensor, labels: Any, *, n_classes: int = 10, config: ClassifierConfig = ClassifierConfig()
) -> SmallClassifier:
    """Train a :class:`SmallClassifier` on ``(images, labels)``; deterministic given ``config.seed``.

    Minibatches of ``config.batch_size`` in an order drawn from a generator seeded with
    ``config.seed`` (initial weights from the same seed in a forked RNG), ``config.epochs`` passes,
    Adam with ``lr`` and ``weight_decay``. Returned in eval mode, with ``feature_scale`` set so the
    features of the training images have mean square 1.
    """
    x = _check_images("images", images)
    n_classes = _int("n_classes", n_classes, 2)
    y = _check_labels("labels", labels, x.shape[0], n_classes)
    if not isinstance(config, ClassifierConfig):
        raise TypeError(f"config must be a ClassifierConfig; got {type(config).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = SmallClassifier(x.shape[1], n_classes, config, min(x.shape[2], x.shape[3]))
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    net.train()
    for _ in range(config.epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for start in range(0, x.shape[0], config.batch_size):
            idx = order[start : start + config.batch_size]
            _, logits = net(x[idx])
            loss = nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        h = torch.cat([net.body(x[s : s + 512]) for s in range(0, x.shape[0], 512)])
        mean_square = float(h.double().square().mean())
        net.feature_scale.fill_(1.0 / mean_square**0.5 if mean_square > 0 else 1.0)
    return net


def _batched(net: Callable[[Tensor], tuple[Tensor, Tensor]], images: Tensor, batch: int) -> tuple[Tensor, Tensor]:
    feats, logits = [], []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch):
            f, z = net(images[start : start + batch])
            feats.append(f.double().cpu())
            logits.append(z.double().cpu())
    return torch.cat(feats), torch.cat(logits)


def _on_device_of(net: nn.Module) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        param = next(net.parameters(), None)
        return net(x if param is None else x.to(param.device))

    return forward


def classifier_accuracy(net: nn.Module, images: Tensor, labels: Any, *, batch: int = 512) -> float:
    """Top-1 accuracy of a :class:`SmallClassifier` (or any module returning ``(features, logits)``)."""
    x = _check_images("images", images)
    _, logits = _batched(_on_device_of(net), x, batch)
    y = _check_labels("labels", labels, x.shape[0], logits.shape[1])
    return float((logits.argmax(dim=1) == y).double().mean())


# ------------------------------------------------------------------------------------------------
# Feature extractors
# ------------------------------------------------------------------------------------------------


class FeatureExtractor:
    """Images ``(N, C, H, W)`` in ``[-1, 1]`` -> features ``(N, d)`` and class logits ``(N, K)``, float64.

    ``name`` is what metric protocols record; ``description`` says what the features are;
    ``input_shape`` is the ``(C, H, W)`` it accepts (``None``: any); ``test_accuracy`` is the
    classifier's accuracy on its reference split where it has one; ``module`` is the network (move
    it with ``extractor.module.to(device)``: images follow it there, outputs come back to the CPU).
    """

    def __init__(
        self,
        name: str,
        description: str,
        forward: Callable[[Tensor], tuple[Tensor, Tensor]],
        *,
        input_shape: tuple[int, int, int] | None = None,
        test_accuracy: float | None = None,
        batch: int = 512,
        module: nn.Module | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.input_shape = input_shape
        self.test_accuracy = test_accuracy
        self.module = module
        self._forward = forward
        self._batch = _int("batch", batch, 1)

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.name!r})"

    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Both outputs in one pass (batched, without gradients), float64 on the CPU."""
        x = _check_images("images", images)
        if self.input_shape is not None and tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"{self.name} takes images of shape (N, {', '.join(map(str, self.input_shape))}); got {tuple(x.shape)}")
        return _batched(self._forward, x, self._batch)

    def features(self, images: Tensor) -> Tensor:
        """Penultimate-layer features ``(N, d)``."""
        return self.features_and_logits(images)[0]

    def logits(self, images: Tensor) -> Tensor:
        """Class logits ``(N, K)``."""
        return self.features_and_logits(images)[1]

    def probabilities(self, images: Tensor) -> Tensor:
        """Class probabilities ``softmax(logits)``."""
        return torch.softmax(self.logits(images), dim=1)


def _data_hash(images: Tensor, labels: Tensor) -> str:
    h = hashlib.sha256()
    h.update(str(tuple(images.shape)).encode())
    h.update(images.detach().cpu().float().contiguous().numpy().tobytes())
    h.update(labels.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


_CACHE_FORMAT = 1


def classifier_extractor(
    train: ImageSet,
    test: ImageSet,
    *,
    config: ClassifierConfig = ClassifierConfig(),
    cache_dir: str | os.PathLike[str] | None = None,
    label: str | None = None,
) -> FeatureExtractor:
    """A :class:`SmallClassifier` trained on ``train`` as a feature extractor, cached on disk.

    The cache file ``cache_dir/<name>-<key>.pt`` (``cache_dir`` defaults to
    ``default_root()/extractors``) is keyed by the SHA-256 of the config, the class count and the
    training images and labels, so a changed config or data set trains a new classifier; it is
    written atomically (temp file + rename) and read with ``weights_only=True``. ``test`` only
    measures the accuracy reported in ``test_accuracy`` and the description.
    """
    if not isinstance(train, ImageSet) or not isinstance(test, ImageSet):
        raise TypeError("train and test must be gan_lib.data.ImageSet objects")
    if not isinstance(config, ClassifierConfig):
        raise TypeError(f"config must be a ClassifierConfig; got {type(config).__name__}")
    base = label or f"{train.name}-cnn"
    payload = json.dumps(
        {"format": _CACHE_FORMAT, "config": dataclasses.asdict(config), "n_classes": train.n_classes,
         "data": _data_hash(train.images, train.labels)},
        sort_keys=True,
    )
    key = hashlib.sha256(payload.encode()).hexdigest()[:16]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_root() / "extractors"
    path = folder / f"{base}-{key}.pt"
    channels, height, width = train.image_shape
    net = None
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("key") == key:
                with torch.random.fork_rng(devices=[]):
                    net = SmallClassifier(channels, train.n_classes, config, min(height, width))
                net.load_state_dict(saved["state_dict"])
                net.eval()
        except Exception as err:  # a damaged cache file is retrained, not fatal
            log.warning("cache file %s unreadable (%s); training the classifier again", path, err)
            net = None
    if net is None:
        log.info("training the %s feature classifier (%d images); cache %s", base, len(train), path)
        net = train_classifier(train.images, train.labels, n_classes=train.n_classes, config=config)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            torch.save({"key": key, "state_dict": net.state_dict()}, f)
    accuracy = classifier_accuracy(net, test.images, test.labels)
    description = (
        f"penultimate layer ({config.feature_dim} ReLU units) of a small CNN classifier trained on the "
        f"{train.name} {train.split} split ({len(train)} images; {accuracy:.1%} accuracy on the "
        f"{len(test)} {test.split} images); NOT Inception features -- numbers compare only within this book"
    )
    return FeatureExtractor(
        f"{base}[{key[:8]}]", description, _on_device_of(net), input_shape=train.image_shape, test_accuracy=accuracy, module=net
    )


def digits_extractor(
    *,
    config: ClassifierConfig = ClassifierConfig(),
    cache_dir: str | os.PathLike[str] | None = None,
    test_fraction: float = 0.25,
    split_seed: int = 0,
) -> FeatureExtractor:
    """The book's offline extractor: :func:`classifier_extractor` on :func:`gan_lib.data.digits`.

    Trained on ``digits("train", test_fraction=test_fraction, seed=split_seed)`` (a few seconds on a
    CPU the first time, then read from the cache), accuracy measured on the matching ``"test"``
    split, which is also the reference split of the book's metrics. Features: 64 penultimate ReLU
    units of a small CNN; logits: 10 digit classes. Not Inception features.
    """
    train = digits("train", test_fraction=test_fraction, seed=split_seed)
    test = digits("test", test_fraction=test_fraction, seed=split_seed)
    return classifier_extractor(train, test, config=config, cache_dir=cache_dir, label="digits-cnn")


def inception_extractor(weights_path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> FeatureExtractor:
    """The standard FID Inception-v3 (2048 pool features, 1008 logits) from a local weights file.

    Needs the ``torch-fidelity`` package (``pip install torch-fidelity``; it is not a dependency of
    this book) and its weights file ``weights-inception-2015-12-05-6726825d.pth`` (the TensorFlow FID
    Inception of Heusel et al. converted to PyTorch, published with torch-fidelity's releases),
    downloaded by you beforehand: nothing is downloaded here. pytorch-fid's port of the same network
    (``pt_inception-2015-12-05-6726825d.pth``) belongs to pytorch-fid's own model code; loading it
    here is untested. Images in ``[-1, 1]`` are mapped to ``uint8``, grey images repeated to three
    channels, and resized by torch-fidelity to 299x299 as in the reference FID code; the network
    runs on ``device``.
    """
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Inception weights file {path} does not exist; download weights-inception-2015-12-05-6726825d.pth "
            f"(torch-fidelity's release assets) and pass its path"
        )
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise ImportError(
            "inception_extractor needs torch-fidelity: `pip install torch-fidelity` (CPU or matching CUDA "
            "build of torch already installed); then pass the path of its weights file "
            "weights-inception-2015-12-05-6726825d.pth"
        ) from None
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path))
    net.eval().to(device)

    def forward(images: Tensor) -> tuple[Tensor, Tensor]:
        x = to_uint8(images)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        feats, logits = net(x.to(next(net.parameters()).device))
        return feats.reshape(x.shape[0], -1), logits.reshape(x.shape[0], -1)

    return FeatureExtractor(
        "inception-v3-fid",
        f"pool3 features (2048) of the FID Inception-v3 ({path.name}); comparable with published FID/IS "
        f"only with the same image counts and resizing",
        forward,
        batch=64,
        module=net,
    )


# ------------------------------------------------------------------------------------------------
# Classification accuracy score
# ------------------------------------------------------------------------------------------------


def classification_accuracy_score(
    train_images: Tensor,
    train_labels: Any | None,
    test: ImageSet,
    *,
    labeller: FeatureExtractor | None = None,
    config: ClassifierConfig = ClassifierConfig(),
    n_classes: int = 10,
    source: str = "generated",
) -> MetricResult:
    """Classification accuracy score (Ravuri & Vinyals 2019): train on generated images, test on real.

    A fresh :class:`SmallClassifier` (``config``) is trained on ``(train_images, train_labels)``
    only and its top-1 accuracy on the real ``test`` set is returned. With a class-conditional
    generator ``train_labels`` are the classes it was asked for (the paper's protocol). For an
    unconditional generator pass ``train_labels=None`` and a ``labeller``: each image gets the
    class its classifier finds most likely -- a variant that also scores how recognisable the
    samples are to that classifier; the protocol records which labels were used. Pass real
    training images (with their labels) to get the same classifier's real-data accuracy, the
    yardstick the paper reports CAS against.
    """
    if not isinstance(test, ImageSet):
        raise TypeError("test must be a gan_lib.data.ImageSet (real images with labels)")
    x = _check_images("train_images", train_images)
    if train_labels is None:
        if labeller is None:
            raise ValueError("train_labels=None needs a labeller (a FeatureExtractor with class logits) to label the images")
        y = labeller.logits(x).argmax(dim=1)
        labels_from = f"argmax of {labeller.name}"
    else:
        y = _check_labels("train_labels", train_labels, x.shape[0], n_classes)
        labels_from = "given (conditional)"
    net = train_classifier(x, y, n_classes=n_classes, config=config)
    accuracy = classifier_accuracy(net, test.images, test.labels)
    protocol = _protocol(
        len(test), x.shape[0], f"{test.name} {test.split} split", f"SmallClassifier{config.widths} trained on {source} images",
        labels=labels_from, epochs=config.epochs, seed=config.seed, train_source=source,
    )
    return MetricResult("CAS", accuracy, None, protocol)


# ------------------------------------------------------------------------------------------------
# Everything at once
# ------------------------------------------------------------------------------------------------


def evaluate_images(
    generated: Tensor,
    reference: ImageSet,
    extractor: FeatureExtractor,
    *,
    metrics: Sequence[str] = ("fid", "kid", "is", "precision", "recall"),
    kid_subsets: int = 100,
    kid_subset_size: int | None = 1000,
    is_splits: int = 10,
    k: int = 3,
    seed: int = 0,
    reference_features: Tensor | None = None,
) -> dict[str, MetricResult]:
    """FID, KID, IS, precision and recall of ``generated`` against ``reference``, one extractor pass each.

    ``metrics`` picks a subset of ``("fid", "kid", "is", "precision", "recall")``. The reference is
    described in each protocol as ``"<name> <split> split"``; ``seed`` fixes the KID subsets and the
    IS splits. ``reference_features`` (``extractor.features(reference.images)``, computed once by
    the caller) saves the reference pass when many generators are scored against one reference. The
    classification accuracy score trains a classifier, so it has its own function
    (:func:`classification_accuracy_score`).
    """
    allowed = ("fid", "kid", "is", "precision", "recall")
    chosen = tuple(metrics)
    bad = [m for m in chosen if m not in allowed]
    if bad or not chosen:
        raise ValueError(f"metrics={list(chosen)!r} not allowed: choose from {allowed}")
    if not isinstance(reference, ImageSet):
        raise TypeError("reference must be a gan_lib.data.ImageSet")
    if not isinstance(extractor, FeatureExtractor):
        raise TypeError(f"extractor must be a FeatureExtractor; got {type(extractor).__name__}")
    gen_feats, gen_logits = extractor.features_and_logits(generated)
    ref_name = f"{reference.name} {reference.split} split"
    out: dict[str, MetricResult] = {}
    real_feats = None
    if set(chosen) - {"is"}:
        if reference_features is None:
            real_feats = extractor.features(reference.images)
        else:
            real_feats = _features("reference_features", reference_features)
            if real_feats.shape[0] != len(reference) or real_feats.shape[1] != gen_feats.shape[1]:
                raise ValueError(
                    f"reference_features has shape {tuple(real_feats.shape)}; expected ({len(reference)}, "
                    f"{gen_feats.shape[1]}) -- the features of reference.images by this extractor"
                )
    if "fid" in chosen:
        out["fid"] = fid(real_feats, gen_feats, reference=ref_name, extractor=extractor.name)
    if "kid" in chosen:
        out["kid"] = kid(real_feats, gen_feats, reference=ref_name, extractor=extractor.name,
                         subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    if "is" in chosen:
        out["is"] = inception_score(gen_logits, extractor=extractor.name, splits=min(is_splits, gen_logits.shape[0]), seed=seed)
    if "precision" in chosen or "recall" in chosen:
        pr = precision_recall(real_feats, gen_feats, reference=ref_name, extractor=extractor.name, k=k)
        if "precision" in chosen:
            out["precision"] = pr.precision
        if "recall" in chosen:
            out["recall"] = pr.recall
    return out
