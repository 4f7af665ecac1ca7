"""The scikit-learn estimators: scikit-learn's conformance suite; behaving as MLPClassifier and BernoulliRBM do."""

import pickle
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

import scipy.sparse  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.neural_network import BernoulliRBM, MLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from pretrain.sklearn import GreedyLayerwiseTransformer, PretrainedMLPClassifier  # noqa: E402

from .conftest import make_blobs  # noqa: E402

# Small budgets keep scikit-learn's checks at seconds; every objective is covered. No expected failures.
SMALL = [
    GreedyLayerwiseTransformer(8, n_iter=2),
    GreedyLayerwiseTransformer(4, hidden_layer_sizes=(8,), n_iter=2),
    GreedyLayerwiseTransformer(8, objective="autoencoder", n_iter=2, batch_size=32),
    GreedyLayerwiseTransformer(8, objective="denoising", activation="tanh", n_iter=2, batch_size=32),
    GreedyLayerwiseTransformer(8, objective="supervised", n_iter=2, batch_size=32),
    PretrainedMLPClassifier((16,), pretrain_n_iter=2, learning_rate_init=0.01, max_iter=50),
    PretrainedMLPClassifier(
        (16,), pretrain_objective="autoencoder", pretrain_n_iter=2, solver="sgd", learning_rate_init=0.1, max_iter=50
    ),
]


@parametrize_with_checks(SMALL)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_scikit_learn_conformance(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n=300, d=16, classes=3)
    return x[:200], y[:200], x[200:], y[200:]


def quick(**params) -> PretrainedMLPClassifier:
    """A classifier that fits the blobs in well under a second."""
    settings = {"pretrain_n_iter": 2, "learning_rate_init": 0.01, "max_iter": 30, "random_state": 0}
    return PretrainedMLPClassifier((8,), **{**settings, **params})


@pytest.mark.parametrize(
    "labels",
    [[-1, 0, 1], [-1, 1], ["neg", "neutral", "pos"], np.array(["neg", "neutral", "pos"], dtype=object)],
    ids=["-1/0/1", "-1/+1", "strings", "object"],
)
def test_every_label_is_a_class_as_in_mlp_classifier(labels, blobs):
    x, y = blobs[0], blobs[1]
    y = np.asarray(labels)[y % len(labels)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = quick(max_iter=2).fit(x, y)
        theirs = MLPClassifier((8,), max_iter=2, random_state=0).fit(x, y)
    assert list(ours.classes_) == list(theirs.classes_)
    assert ours.finetune_result_.n_train == len(y)  # no row dropped
    assert set(ours.predict(x)) <= set(theirs.classes_) and ours.predict_proba(x).shape == (len(y), len(labels))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_unlabeled_label_marks_rows_that_are_pretrained_on_and_not_fine_tuned_on(blobs):
    x, y, x_test, y_test = blobs
    partial = np.where(np.arange(len(y)) % 10 == 0, y, -1)  # 20 labelled rows of 200
    clf = quick(unlabeled_label=-1, batch_size=10, max_iter=60).fit(x, partial)
    assert list(clf.classes_) == [0, 1, 2] and clf.finetune_result_.n_train == 20
    assert clf.pretrainer_.history_[0].samples == 2 * 200  # two epochs over every row
    assert clf.score(x_test, y_test) > 0.8
    objects = np.where(partial == -1, -1, np.array(["a", "b", "c"], dtype=object)[y])  # as SelfTrainingClassifier
    assert objects.dtype == object and list(quick(unlabeled_label=-1, max_iter=1).fit(x, objects).classes_) == list(
        "abc"
    )
    names = np.where(partial == -1, "?", np.array(["a", "b", "c"])[y])
    assert list(quick(unlabeled_label="?", max_iter=1).fit(x, names).classes_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="at least 2 classes"):
        quick(unlabeled_label=-1).fit(x, np.where(y == 0, 0, -1))


def test_a_run_cut_short_warns_as_mlp_classifier_does(blobs):
    x, y = blobs[0], blobs[1]
    for estimator in (quick(max_iter=2), MLPClassifier((8,), max_iter=2, random_state=0)):
        with pytest.warns(ConvergenceWarning, match="hasn't converged yet"):
            estimator.fit(x, y)
    clf = quick(max_iter=2)
    with pytest.warns(ConvergenceWarning):
        clf.fit(x, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2 and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.finetune_result_.train_error[-1] > 0  # still learning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        done = quick(max_iter=500, tol=1e-2, n_iter_no_change=3).fit(x, y)  # the loss stops improving by 1e-2
    assert done.n_iter_ == len(done.loss_curve_) < 500 and done.finetune_result_.patience_stopped


def test_n_iter_and_curves_as_mlp_classifier(blobs):
    x, y = blobs[0], blobs[1]
    clf = quick(max_iter=200, n_iter_no_change=4, tol=0.0, early_stopping=True, validation_fraction=0.2)
    clf.fit(x, y)
    assert clf.n_iter_ == len(clf.loss_curve_) == len(clf.validation_scores_) < 200
    assert clf.best_validation_score_ == max(clf.validation_scores_) and clf.best_loss_ is None
    best = int(np.argmax(clf.validation_scores_))
    assert clf.n_iter_ == best + 1 + 5  # stops after more than n_iter_no_change epochs without improvement
    assert clf.finetune_result_.n_train == 160 and clf.finetune_result_.n_val == 40
    # the restored weights are the best epoch's: their validation accuracy is the best score
    val_error = clf.finetune_result_.val_error_best
    assert clf.best_validation_score_ == pytest.approx(1 - val_error)
    plain = quick(max_iter=3)
    with pytest.warns(ConvergenceWarning):
        plain.fit(x, y)
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None
    warm = clone(plain).set_params(warm_start=True)
    with pytest.warns(ConvergenceWarning):
        warm.fit(x, y)
        stack = warm.model_[0].weight.clone()
        warm.fit(x, y)
    assert warm.n_iter_ == 6 and len(warm.loss_curve_) == 6
    assert not torch.equal(warm.model_[0].weight, stack)  # fine-tuned on from where it was
    with pytest.raises(ValueError, match="same classes"):
        warm.fit(x, np.where(y == 2, 1, y))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["transformer", "classifier"])
def test_sample_weight_ones_is_no_weight_and_zero_drops_the_row(kind, blobs):
    x, y, x_test, _ = blobs
    if kind == "transformer":
        est, out = GreedyLayerwiseTransformer(6, n_iter=2, random_state=0), "transform"
    else:
        est, out = quick(max_iter=3, batch_size=16), "predict_proba"
    plain = getattr(clone(est).fit(x, y), out)(x_test)
    ones = getattr(clone(est).fit(x, y, sample_weight=np.ones(len(y))), out)(x_test)
    np.testing.assert_allclose(ones, plain, rtol=1e-5, atol=1e-6)
    keep = np.arange(len(y)) % 3 != 0
    dropped = getattr(clone(est).fit(x[keep], y[keep]), out)(x_test)
    zeros = getattr(clone(est).fit(x, y, sample_weight=keep.astype(float)), out)(x_test)
    np.testing.assert_allclose(zeros, dropped, rtol=1e-5, atol=1e-6)
    # an integer weight is that many copies of the row; the order of the rows does not matter
    w = np.arange(len(y)) % 3
    repeated = getattr(clone(est).fit(np.repeat(x, w, axis=0), np.repeat(y, w)), out)(x_test)
    shuffled = np.random.default_rng(0).permutation(len(y))
    weighted = getattr(clone(est).fit(x[shuffled], y[shuffled], sample_weight=w[shuffled]), out)(x_test)
    np.testing.assert_allclose(weighted, repeated, rtol=1e-5, atol=1e-6)
    half = getattr(clone(est).fit(x, y, sample_weight=np.where(keep, 1.0, 0.5)), out)(x_test)
    assert not np.allclose(half, plain)  # fractional weights count


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["transformer", "classifier"])
def test_sparse_csr_input_gives_what_dense_input_gives(kind, blobs):
    x, y, x_test, _ = blobs
    x = np.where(x > 0.5, x, 0).astype(np.float32)  # half zeros
    if kind == "transformer":
        est, out = GreedyLayerwiseTransformer(6, n_iter=2, random_state=0), "transform"
    else:
        est, out = quick(max_iter=3, batch_size=16), "predict_proba"
    dense = clone(est).fit(x, y)
    sparse = clone(est).fit(scipy.sparse.csr_matrix(x), y)
    np.testing.assert_allclose(getattr(sparse, out)(x_test), getattr(dense, out)(x_test), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        getattr(dense, out)(scipy.sparse.csr_array(x_test)), getattr(dense, out)(x_test), rtol=1e-12, atol=1e-12
    )


def test_partial_fit_as_bernoulli_rbm(blobs):
    x = blobs[0]
    ours, theirs = GreedyLayerwiseTransformer(6, random_state=0), BernoulliRBM(6, random_state=0)
    for est in (ours, theirs):
        for chunk in np.array_split(x, 20):  # batches of 10 rows: one step each, in both
            est.partial_fit(chunk)
        assert est.transform(x).shape == (200, 6)
    assert len(ours.pretrainer_.history_[0].train_loss) == 20
    first = GreedyLayerwiseTransformer(6, random_state=0).partial_fit(x[:10])
    assert not np.allclose(first.transform(x), ours.transform(x))  # later calls train on
    with pytest.raises(ValueError, match="features"):
        ours.partial_fit(x[:, :5])
    assert not hasattr(GreedyLayerwiseTransformer(4, hidden_layer_sizes=(8,)), "partial_fit")  # one layer only


def test_a_bernoulli_rbm_grid_runs_unchanged(blobs):
    x, y, x_test, y_test = blobs
    grid = {
        "rbm__n_components": [4, 12],
        "rbm__learning_rate": [0.01, 0.1],
        "rbm__n_iter": [5],
        "rbm__batch_size": [10],
    }
    scores = {}
    for rbm in (BernoulliRBM(random_state=0), GreedyLayerwiseTransformer(random_state=0)):
        pipe = Pipeline([("rbm", rbm), ("logistic", LogisticRegression(C=100))])
        search = GridSearchCV(pipe, grid, cv=2).fit(x, y)
        assert set(search.best_params_) == set(grid)
        scores[type(rbm).__name__] = search.score(x_test, y_test)
    assert scores["GreedyLayerwiseTransformer"] > 0.9 and scores["BernoulliRBM"] > 0.9, scores
    features = GreedyLayerwiseTransformer(12, n_iter=2).fit(x)
    assert list(features.get_feature_names_out()) == [f"greedylayerwisetransformer{k}" for k in range(12)]


def test_codes_are_the_library_codes(blobs):
    x = blobs[0] * 4 - 2  # Gaussian visible units: the exported nn.Sequential folds in their standardisation
    features = GreedyLayerwiseTransformer(4, hidden_layer_sizes=(8,), n_iter=2, random_state=0).fit(x)
    codes = features.pretrainer_.transform(torch.tensor(x)).numpy()
    np.testing.assert_allclose(features.transform(x.astype(np.float64)), codes, atol=1e-5)
    assert features.transform(x).dtype == np.float32 and features.transform(x.astype(np.float64)).dtype == np.float64
    with pytest.raises(ValueError, match="whole input at once"):  # standardising needs every row
        GreedyLayerwiseTransformer(4, n_iter=1).fit(scipy.sparse.csr_matrix(x))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "estimator",
    [GreedyLayerwiseTransformer(8, n_iter=2), quick(max_iter=5)],
    ids=["transformer", "classifier"],
)
def test_same_random_state_same_results_and_pickle_round_trip(estimator, blobs):
    x, y, x_test, _ = blobs
    out = "predict_proba" if hasattr(estimator, "predict_proba") else "transform"
    a, b, c = (clone(estimator).set_params(random_state=s).fit(x, y) for s in (3, 3, 4))
    np.testing.assert_array_equal(getattr(a, out)(x_test), getattr(b, out)(x_test))
    assert not np.array_equal(getattr(a, out)(x_test), getattr(c, out)(x_test))
    loaded = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(getattr(loaded, out)(x_test), getattr(a, out)(x_test))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predict_log_proba_and_device(blobs):
    x, y, x_test, _ = blobs
    clf = quick(max_iter=3, device=torch.device("cpu")).fit(x, y)
    np.testing.assert_allclose(clf.predict_log_proba(x_test), np.log(clf.predict_proba(x_test)), atol=1e-12)
    assert next(clf.model_.parameters()).device.type == "cpu"
    for device in ("cuda:99", "tpu"):
        with pytest.raises(ValueError, match="device"):
            quick(device=device).fit(x, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_training_on_cuda_gives_a_cpu_model_that_predicts(blobs):
    x, y, x_test, y_test = blobs
    clf = quick(max_iter=30, device="cuda").fit(scipy.sparse.csr_matrix(x), y)
    assert next(clf.model_.parameters()).device.type == "cpu" and clf.score(x_test, y_test) > 0.8
    codes = GreedyLayerwiseTransformer(6, n_iter=2, device="cuda:0", random_state=0).fit(x).transform(x_test)
    assert codes.shape == (100, 6)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"pretrain_options": {"noise_level": 2.0}, "pretrain_objective": "denoising"}, "noise level"),
        ({"pretrain_options": {"no_such": 1}}, "unknown settings: no_such"),
        ({"hidden_layer_sizes": (4, 0)}, "positive integers"),
        ({"pretrain_objective": "supervised"}, "pretrain_objective"),  # the classifier pretrains on unlabelled rows
        ({"solver": "lbfgs"}, "solver"),
    ],
)
def test_bad_settings_are_value_errors_at_fit(params, message, blobs):
    x, y = blobs[0][:20], blobs[1][:20]
    with pytest.raises(ValueError, match=message):
        PretrainedMLPClassifier(**params).fit(x, y)


def test_the_supervised_objective_learns_from_y_in_the_transformer(blobs):
    x, y = blobs[0], blobs[1]
    features = GreedyLayerwiseTransformer(6, objective="supervised", n_iter=3, random_state=0)
    assert features.fit_transform(x, y).shape == (200, 6)
    with pytest.raises(ValueError, match="requires y to be passed"):
        features.fit(x)
    assert not hasattr(features, "partial_fit")
