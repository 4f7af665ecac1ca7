"""The scikit-learn estimators: scikit-learn's own conformance suite, pipelines, search, pickling, y == -1."""

import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from pretrain.sklearn import GreedyLayerwiseTransformer, PretrainedMLPClassifier, expected_failed_checks  # noqa: E402

from .conftest import make_blobs  # noqa: E402

# Small budgets keep scikit-learn's ~100 checks at a few seconds; every objective is covered.
SMALL = [
    GreedyLayerwiseTransformer((8,), epochs=2),
    GreedyLayerwiseTransformer((8, 4), objective="rbm", epochs=2),
    GreedyLayerwiseTransformer((8,), objective="denoising", activation="tanh", epochs=2),
    GreedyLayerwiseTransformer((8,), objective="supervised", epochs=2),
    PretrainedMLPClassifier((16,), pretrain_epochs=2, finetune_epochs=30),
    PretrainedMLPClassifier((16,), objective="rbm", pretrain_epochs=2, finetune_epochs=30),
]


@parametrize_with_checks(SMALL, expected_failed_checks=expected_failed_checks)
def test_scikit_learn_conformance(estimator, check):
    check(estimator)


def test_only_the_semi_supervised_label_check_is_expected_to_fail():
    assert expected_failed_checks(GreedyLayerwiseTransformer()) == {}
    reasons = expected_failed_checks(PretrainedMLPClassifier())
    assert list(reasons) == ["check_classifiers_classes"] and "y == -1" in reasons["check_classifiers_classes"]


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n=300, d=16, classes=3)
    return x[:200], y[:200], x[200:], y[200:]


def test_pipeline_and_grid_search_like_bernoulli_rbm(blobs):
    x, y, x_test, y_test = blobs
    pipe = Pipeline(
        [("features", GreedyLayerwiseTransformer((12,), epochs=3, random_state=0)), ("logistic", LogisticRegression())]
    )
    search = GridSearchCV(
        pipe, {"features__objective": ["autoencoder", "rbm"], "features__hidden_layer_sizes": [(6,), (12,)]}, cv=2
    )
    search.fit(x, y)
    assert set(search.best_params_) == {"features__objective", "features__hidden_layer_sizes"}
    assert search.score(x_test, y_test) > 0.9
    features = search.best_estimator_.named_steps["features"]
    n_out = features.hidden_layer_sizes[-1]
    assert list(features.get_feature_names_out()) == [f"greedylayerwisetransformer{k}" for k in range(n_out)]


def test_codes_are_the_library_codes(blobs):
    x = blobs[0] * 4 - 2  # Gaussian visible units: the exported nn.Sequential folds in their standardisation
    features = GreedyLayerwiseTransformer((8, 4), objective="rbm", epochs=2, random_state=0).fit(x)
    codes = features.pretrainer_.transform(torch.tensor(x)).numpy()
    np.testing.assert_allclose(features.transform(x.astype(np.float64)), codes, atol=1e-5)
    assert features.transform(x).dtype == np.float32 and features.transform(x.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize(
    "estimator",
    [GreedyLayerwiseTransformer((8,), epochs=2), PretrainedMLPClassifier((8,), pretrain_epochs=2, finetune_epochs=5)],
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


def test_unlabelled_rows_are_pretrained_on_but_not_fine_tuned_on(blobs):
    x, y, x_test, y_test = blobs
    partial = np.where(np.arange(len(y)) % 10 == 0, y, -1)  # 20 labelled rows of 200
    clf = PretrainedMLPClassifier((12,), pretrain_epochs=3, finetune_epochs=40, batch_size=10, random_state=0)
    clf.fit(x, partial)
    assert list(clf.classes_) == [0, 1, 2] and clf.finetune_result_.n_train == 20
    assert clf.predict_proba(x_test).shape == (100, 3) and clf.score(x_test, y_test) > 0.8
    names = np.array(["a", "b", "c"])[y]  # string labels have no unlabelled marker
    assert list(PretrainedMLPClassifier((4,), pretrain_epochs=1, finetune_epochs=1).fit(x, names).classes_) == list(
        "abc"
    )
    with pytest.raises(ValueError, match="at least 2 classes among the labelled rows"):
        PretrainedMLPClassifier().fit(x, np.where(y == 0, 0, -1))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"pretrain_options": {"noise_level": 2.0}, "objective": "denoising"}, "noise level"),
        ({"pretrain_options": {"no_such": 1}}, "unknown settings: no_such"),
        ({"finetune_options": {"no_such": 1}}, "finetune_options"),
        ({"hidden_layer_sizes": (4, 0)}, "positive integers"),
        ({"objective": "pca"}, "objective"),
    ],
)
def test_bad_settings_are_value_errors_at_fit(params, message, blobs):
    x, y = blobs[0][:20], blobs[1][:20]
    with pytest.raises(ValueError, match=message):
        PretrainedMLPClassifier(**params).fit(x, y)


def test_the_supervised_objective_learns_from_y_in_the_transformer_only(blobs):
    x, y = blobs[0], blobs[1]
    features = GreedyLayerwiseTransformer((6,), objective="supervised", epochs=3, random_state=0)
    assert features.fit_transform(x, y).shape == (200, 6)
    with pytest.raises(ValueError, match="requires y to be passed"):
        features.fit(x)
    with pytest.raises(ValueError, match="objective"):  # the classifier pretrains on unlabelled rows too
        PretrainedMLPClassifier(objective="supervised").fit(x, y)
