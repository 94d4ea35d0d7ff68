"""Tests of gan_lib.metrics.images against references computed another way.

References: the Fréchet distance of Gaussians in closed form (diagonal covariances:
||mu1 - mu2||^2 + sum (s1 - s2)^2) and by scipy.linalg.sqrtm, on features built to have exactly
the chosen sample mean and covariance; a numpy double loop over pairs for KID's unbiased MMD^2;
the Inception Score by hand (uniform -> 1, confident balanced -> K, numpy KL on random
probabilities); a numpy brute-force k-nearest-neighbour computation and a hand-worked 1-D case for
precision and recall; label counts for the classification accuracy score. Classifiers are trained
at a tiny size on the digits, in tmp_path.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from gan_lib.data import digits
from gan_lib.metrics import images as mi

RNG = np.random.default_rng(11)
TINY = mi.ClassifierConfig(widths=(8, 16), feature_dim=16, epochs=4, batch_size=64, lr=5e-3)
P = {"reference": "test set", "extractor": "given features"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def with_moments(n: int, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """n points whose sample mean is ``mean`` and unbiased sample covariance is ``cov``, exactly."""
    z = RNG.normal(size=(n, mean.size))
    z -= z.mean(axis=0)
    white = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return mean + white @ np.linalg.cholesky(cov).T


# --- FID ---------------------------------------------------------------------------------------


def test_fid_of_diagonal_gaussians_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5, 1.5]), np.array([0.5, 2.5, 0.5, 1.0])
    x, y = with_moments(50, mu1, np.diag(s1**2)), with_moments(80, mu2, np.diag(s2**2))
    exact = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    result = mi.fid(x, y, **P)
    assert result.value == pytest.approx(exact, rel=1e-8)
    assert result.protocol == {"n_real": 50, "n_generated": 80, "reference": "test set", "extractor": "given features"}
    assert mi.fid(x, x, **P).value == pytest.approx(0.0, abs=1e-8)


def test_fid_of_correlated_gaussians_against_scipy_sqrtm():
    d = 5
    a, b = RNG.normal(size=(d, d)), RNG.normal(size=(d, d))
    c1, c2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    mu1, mu2 = RNG.normal(size=d), RNG.normal(size=d)
    x, y = with_moments(40, mu1, c1), with_moments(60, mu2, c2)
    root = scipy.linalg.sqrtm(c1 @ c2).real
    exact = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * root)
    assert mi.fid(torch.from_numpy(x).float(), y, **P).value == pytest.approx(exact, rel=1e-5)  # float32 input
    assert mi.fid(x, y, **P).value == pytest.approx(exact, rel=1e-8)


# --- KID ---------------------------------------------------------------------------------------


def mmd2_unbiased_loops(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda u, v: (float(u @ v) / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_one_full_subset_is_the_u_statistic():
    x, y = RNG.normal(size=(25, 3)), RNG.normal(0.3, 1.2, size=(25, 3))
    result = mi.kid(x, y, subsets=1, subset_size=25, **P)
    assert result.value == pytest.approx(mmd2_unbiased_loops(x, y), rel=1e-10)
    assert result.protocol["subset_size"] == 25 and result.protocol["subsets"] == 1


def test_kid_subsets_average_to_the_full_u_statistic():
    # the mean over random subsets (drawn without replacement) of the subset U-statistic is the full one
    x, y = RNG.normal(size=(40, 2)), RNG.normal(0.5, 1.0, size=(40, 2))
    result = mi.kid(x, y, subsets=400, subset_size=10, seed=3, **P)
    full = mmd2_unbiased_loops(x, y)
    assert abs(result.value - full) < 4 * result.spread / math.sqrt(400)
    again = mi.kid(x, y, subsets=400, subset_size=10, seed=3, **P)
    assert again.value == result.value  # seeded
    state = torch.get_rng_state()
    mi.kid(x, y, subsets=5, subset_size=10, seed=1, **P)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is untouched


def test_kid_subset_size_is_capped_by_the_smaller_set():
    x, y = RNG.normal(size=(12, 2)), RNG.normal(size=(9, 2))
    assert mi.kid(x, y, subsets=3, subset_size=1000, **P).protocol["subset_size"] == 9
    assert mi.kid(x, y, subsets=3, subset_size=None, **P).protocol["subset_size"] == 9


# --- IS ----------------------------------------------------------------------------------------


def test_inception_score_limits():
    assert mi.inception_score(np.zeros((30, 7)), extractor="e", splits=3).value == pytest.approx(1.0, abs=1e-12)
    k = 5
    onehot = np.tile(np.eye(k), (6, 1)) * 60.0  # p(y|x) one-hot to 1e-26, classes balanced
    result = mi.inception_score(onehot, extractor="e", splits=1)
    assert result.value == pytest.approx(k, rel=1e-12) and result.spread == 0.0
    assert result.protocol["n_real"] == 0 and result.protocol["n_generated"] == 30


def inception_score_by_hand(p: np.ndarray) -> float:
    marginal = p.mean(axis=0)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


def test_inception_score_by_hand():
    logits = RNG.normal(scale=2.0, size=(40, 6))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert mi.inception_score(logits, extractor="e", splits=1).value == pytest.approx(inception_score_by_hand(p), rel=1e-10)
    # splits: the images shuffled by torch.randperm after torch.manual_seed(seed), then cut in order
    torch.manual_seed(5)
    perm = torch.randperm(40).numpy()
    parts = [inception_score_by_hand(p[perm][i * 10 : (i + 1) * 10]) for i in range(4)]
    result = mi.inception_score(logits, extractor="e", splits=4, seed=5)
    assert result.value == pytest.approx(np.mean(parts), rel=1e-10)
    assert result.spread == pytest.approx(np.std(parts, ddof=1), rel=1e-8)


# --- precision and recall ----------------------------------------------------------------------


def precision_recall_brute(real: np.ndarray, gen: np.ndarray, k: int) -> tuple[float, float]:
    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    radius_r = np.sort(dist(real, real), axis=1)[:, k]  # column 0 is the point itself
    radius_g = np.sort(dist(gen, gen), axis=1)[:, k]
    precision = np.mean([(dist(g[None], real)[0] <= radius_r).any() for g in gen])
    recall = np.mean([(dist(r[None], gen)[0] <= radius_g).any() for r in real])
    return float(precision), float(recall)


def test_precision_recall_hand_worked_1d():
    real, gen = np.arange(5.0)[:, None], np.array([[0.5], [10.0]])
    pr = mi.precision_recall(real, gen, k=1, **P)
    # real radii 1: only 0.5 is inside; generated radii 9.5: every real point is inside
    assert (pr.precision.value, pr.recall.value) == (0.5, 1.0)
    assert pr.precision.protocol["k"] == 1 and pr.recall.protocol["n_real"] == 5


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_against_brute_force(k):
    real = RNG.normal(size=(60, 3))
    gen = RNG.normal(0.7, 0.6, size=(45, 3))
    expected = precision_recall_brute(real, gen, k)
    for block in (7, 1024):
        pr = mi.precision_recall(real, gen, k=k, block=block, **P)
        assert (pr.precision.value, pr.recall.value) == pytest.approx(expected, abs=1e-12)
    assert 0.0 < expected[0] < 1.0 and 0.0 < expected[1] < 1.0  # the case is not trivial


# --- bad input ---------------------------------------------------------------------------------


def test_bad_inputs():
    x = RNG.normal(size=(10, 3))
    with pytest.raises(ValueError, match="dimension 3 .* 2"):
        mi.fid(x, x[:, :2], **P)
    with pytest.raises(ValueError, match="non-finite"):
        mi.kid(x, np.full((10, 3), np.nan), **P)
    with pytest.raises(ValueError, match="reference"):
        mi.fid(x, x, reference="", extractor="e")
    with pytest.raises(ValueError, match="shape"):
        mi.precision_recall(x[:3], x, k=3, **P)
    with pytest.raises(ValueError, match="subsets"):
        mi.kid(x, x, subsets=0, **P)
    with pytest.raises(ValueError, match="splits"):
        mi.inception_score(x, extractor="e", splits=11)
    with pytest.raises(ValueError, match="epochs"):
        mi.ClassifierConfig(epochs=0)
    with pytest.raises(ValueError, match="widths"):
        mi.ClassifierConfig(widths=[8])


# --- extractor, CAS, evaluate_images -----------------------------------------------------------


@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    return mi.digits_extractor(config=TINY, cache_dir=tmp_path_factory.mktemp("extractors"))


def test_digits_extractor_outputs(extractor):
    test = digits("test")
    assert extractor.name.startswith("digits-cnn[") and "NOT Inception" in extractor.description
    assert extractor.test_accuracy > 0.6  # tiny net, 4 epochs; chance is 0.1
    feats, logits = extractor.features_and_logits(test.images)
    assert feats.shape == (450, 16) and logits.shape == (450, 10) and feats.dtype == torch.float64
    # accuracy agrees with argmax of the logits counted by numpy
    assert extractor.test_accuracy == pytest.approx(np.mean(logits.numpy().argmax(1) == test.labels.numpy()))
    train_feats = extractor.features(digits("train").images)
    assert float(train_feats.square().mean()) == pytest.approx(1.0, rel=1e-5)  # feature_scale
    torch.testing.assert_close(extractor.probabilities(test.images[:5]).sum(1), torch.ones(5, dtype=torch.float64))


def test_extractor_cache_is_reused_and_keyed(tmp_path, monkeypatch):
    first = mi.digits_extractor(config=TINY, cache_dir=tmp_path)
    files = list(tmp_path.glob("digits-cnn-*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob(".*.ganbook-*"))  # no temporary left

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the cache file exists")

    monkeypatch.setattr(mi, "train_classifier", no_training)
    second = mi.digits_extractor(config=TINY, cache_dir=tmp_path)
    x = digits("test").images[:20]
    torch.testing.assert_close(first.features(x), second.features(x), rtol=0, atol=0)
    assert first.name == second.name
    monkeypatch.undo()
    files[0].write_bytes(b"not a torch file")  # a damaged cache is retrained, not fatal
    third = mi.digits_extractor(config=TINY, cache_dir=tmp_path)
    torch.testing.assert_close(first.features(x), third.features(x))
    other = mi.digits_extractor(config=mi.ClassifierConfig(**{**TINY.__dict__, "epochs": 1}), cache_dir=tmp_path)
    assert other.name != first.name and len(list(tmp_path.glob("digits-cnn-*.pt"))) == 2
    with pytest.raises(ValueError, match="takes images of shape"):
        first.features(torch.zeros(2, 1, 28, 28))


def test_evaluate_images_reference_against_itself(extractor):
    test = digits("test")
    out = mi.evaluate_images(test.images, test, extractor, kid_subsets=20, kid_subset_size=100)
    assert set(out) == {"fid", "kid", "is", "precision", "recall"}
    assert out["fid"].value == pytest.approx(0.0, abs=1e-6)
    assert out["precision"].value == 1.0 and out["recall"].value == 1.0
    # KID of a set against itself: independent subsets share points, whose k(x, x) enter only the
    # cross term, so its expectation is the (negative) full U-statistic of the set against itself
    f = extractor.features(test.images).numpy()
    gram = (f @ f.T / f.shape[1] + 1.0) ** 3
    n = len(f)
    full = 2 * (gram.sum() - np.trace(gram)) / (n * (n - 1)) - 2 * gram.mean()
    assert full < 0 and abs(out["kid"].value - full) < 4 * out["kid"].spread / math.sqrt(20)
    for result in out.values():
        assert result.protocol["extractor"] == extractor.name and result.protocol["n_generated"] == 450
    assert out["fid"].protocol["reference"] == "digits test split" and out["fid"].protocol["n_real"] == 450
    assert "450 generated vs 450 real" in out["fid"].summary()
    # noise is far worse on every metric
    noise = torch.rand(450, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    bad = mi.evaluate_images(noise, test, extractor, metrics=("fid", "precision", "recall"))
    assert set(bad) == {"fid", "precision", "recall"}
    assert bad["fid"].value > 5.0 and bad["precision"].value < 0.2 and bad["recall"].value < 0.2
    with pytest.raises(ValueError, match="metrics"):
        mi.evaluate_images(noise, test, extractor, metrics=("fid", "lpips"))
    # features of the reference computed once by the caller give the same numbers
    given = mi.evaluate_images(noise, test, extractor, metrics=("fid", "recall"), reference_features=f)
    assert (given["fid"].value, given["recall"].value) == (bad["fid"].value, bad["recall"].value)
    with pytest.raises(ValueError, match="reference_features"):
        mi.evaluate_images(noise, test, extractor, metrics=("fid",), reference_features=f[:10])


def test_classification_accuracy_score(extractor):
    train, test = digits("train"), digits("test")
    real = mi.classification_accuracy_score(train.images, train.labels, test, config=TINY, source="real train")
    assert real.value > 0.6 and real.protocol["labels"] == "given (conditional)"
    assert real.protocol["n_generated"] == 1347 and real.protocol["n_real"] == 450
    shuffled = train.labels[torch.randperm(1347, generator=torch.Generator().manual_seed(0))]
    chance = mi.classification_accuracy_score(train.images, shuffled, test, config=TINY)
    assert chance.value < 0.3
    # labelled by the extractor: its labels are mostly right, so the score is close to the real one
    labelled = mi.classification_accuracy_score(train.images, None, test, labeller=extractor, config=TINY)
    assert labelled.protocol["labels"] == f"argmax of {extractor.name}" and labelled.value > 0.5
    # a labeller that always says 0: the classifier learns "0", scoring the share of zeros in the test set
    zero = mi.FeatureExtractor("zeros", "always class 0", lambda x: (x.flatten(1), torch.eye(10)[[0] * len(x)]))
    only_zero = mi.classification_accuracy_score(train.images, None, test, labeller=zero, config=TINY)
    assert only_zero.value == pytest.approx(np.mean(test.labels.numpy() == 0))
    with pytest.raises(ValueError, match="labeller"):
        mi.classification_accuracy_score(train.images, None, test)


def test_inception_extractor_without_torch_fidelity(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights-inception-2015-12-05"):
        mi.inception_extractor(tmp_path / "missing.pth")
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"")
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install torch-fidelity"):
            mi.inception_extractor(weights)
    else:
        pytest.skip("torch-fidelity is installed; the missing-package error cannot be shown")


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5])
def test_seeds_outside_torchs_64_bits_are_refused_by_name(seed):
    x, y = RNG.normal(size=(12, 2)), RNG.normal(size=(12, 2))
    with pytest.raises(ValueError, match=r"seed=.* not allowed"):
        mi.kid(x, y, subsets=2, subset_size=4, seed=seed, **P)
    with pytest.raises(ValueError, match=r"seed=.* not allowed"):
        mi.inception_score(torch.zeros(8, 10), extractor="e", splits=2, seed=seed)
    with pytest.raises(ValueError, match=r"seed=.* not allowed"):
        mi.ClassifierConfig(seed=seed)
    assert math.isfinite(mi.kid(x, y, subsets=2, subset_size=4, seed=2**64 - 1, **P).value)  # the largest torch takes
