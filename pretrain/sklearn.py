"""scikit-learn estimators over the library (``pip install -e ".[sklearn]"``).

- :class:`GreedyLayerwiseTransformer`: ``fit(X)`` pretrains a stack greedily (``GreedyPretrainer``),
  ``transform(X)`` returns its top codes; a drop-in for ``BernoulliRBM`` in a ``Pipeline``.
- :class:`PretrainedMLPClassifier`: ``fit(X, y)`` pretrains on every row (the ``greedy`` init of
  ``make_classifier``), then fine-tunes the whole MLP on the labelled rows (``finetune``); rows
  with ``y == -1`` are unlabelled, scikit-learn's semi-supervised convention.

Both are thin wrappers: the settings they do not name go to the library as they are
(``pretrain_options`` to ``GreedyConfig.from_flat``, ``finetune_options`` to ``FinetuneConfig``),
and a setting left at None takes the library's default. Training runs in float32 on the CPU;
``transform`` and ``predict_proba`` compute in float64 from the trained weights (see ``_predict64``).
``random_state`` seeds everything (an int gives the same results on every fit).

>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.linear_model import LogisticRegression
>>> clf = make_pipeline(GreedyLayerwiseTransformer((100,), objective="rbm"), LogisticRegression())
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .data import Dataset, Split
from .errors import PretrainError
from .finetuning import FinetuneConfig, finetune
from .greedy import GreedyConfig, GreedyPretrainer
from .init import make_classifier
from .layers import OBJECTIVES
from .mlp import ACTIVATIONS

__all__ = ["GreedyLayerwiseTransformer", "PretrainedMLPClassifier", "UNLABELLED", "expected_failed_checks"]

UNLABELLED = -1  # the label of an unlabelled row, as in sklearn.semi_supervised

_POSITIVE_INT = Interval(Integral, 1, None, closed="left")
_POSITIVE = Interval(Real, 0, None, closed="neither")
_COMMON_CONSTRAINTS = {
    "hidden_layer_sizes": ["array-like", _POSITIVE_INT],
    "objective": [StrOptions(set(OBJECTIVES))],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "batch_size": [_POSITIVE_INT, None],
    "pretrain_options": [dict, None],
    "random_state": ["random_state"],
}


def _needs_labels(objective: str) -> bool:
    return objective in OBJECTIVES and OBJECTIVES[objective].needs_labels


class _Stack:
    """What both estimators share: the stack's settings, the seed, input checks and float64 inference."""

    def _layers(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not sizes or not all(isinstance(n, Integral) and n > 0 for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        return [int(n) for n in sizes]

    def _greedy_config(self, epochs, lr, seed: int) -> tuple[GreedyConfig, dict]:
        """The ``GreedyConfig`` and its flat settings (None: the library's default); a bad setting
        is a ``ValueError`` at ``fit``, as scikit-learn's own parameter errors are."""
        settings = {
            "layers": self._layers(),
            "objective": self.objective,
            "activation": self.activation,
            "epochs": epochs,
            "batch_size": self.batch_size,
            "lr": lr,
            **(self.pretrain_options or {}),
            "seed": seed,
        }
        try:
            return GreedyConfig.from_flat(settings), settings
        except PretrainError as err:
            raise ValueError(str(err)) from None

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _check_X(self, X, reset: bool) -> np.ndarray:
        # fit needs 2 rows: a Gaussian RBM layer standardises its inputs by their std
        return validate_data(self, X, reset=reset, dtype=(np.float32, np.float64), ensure_min_samples=2 if reset else 1)

    def _predict64(self, X) -> tuple[torch.Tensor, np.dtype]:
        """``model_(X)`` computed in float64 from the float32 weights, and ``X``'s dtype.

        float32 kernels (the vectorised sigmoid, a multi-threaded matmul) can round a value by one
        unit in the last place (1e-7) depending on where its row sits in the batch; in float64 such
        differences are ~1e-16, so a row's output does not depend on its batch at float32 precision.
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        params = {k: v.double() for k, v in self.model_.state_dict().items()}
        with torch.no_grad():
            out = torch.func.functional_call(self.model_, params, (torch.tensor(X, dtype=torch.float64),))
        return out, X.dtype


def _float32(X: np.ndarray) -> torch.Tensor:
    return torch.tensor(X, dtype=torch.float32)  # a copy: read-only and Fortran-ordered inputs are fine


class GreedyLayerwiseTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _Stack, BaseEstimator):
    """Greedy layer-wise pretraining of a stack of autoencoders, denoising autoencoders or RBMs.

    ``fit`` trains layer k on the codes of layers 1..k-1 (``pretrain.GreedyPretrainer``);
    ``transform`` returns the codes of the top layer. A setting left at None takes the
    default of ``pretrain.GreedyConfig``.

    Parameters
    ----------
    hidden_layer_sizes : int or array-like of int, default=(100,)
        Hidden layer sizes, bottom first; the last one is the number of output features.
    objective : {"autoencoder", "denoising", "rbm", "supervised"}, default="autoencoder"
        What each layer is trained to do. Inputs outside [0, 1] get an mse autoencoder loss or
        Gaussian RBM visible units (``pretrain_options={"loss": ...}`` / ``{"visible": ...}`` to choose).
        ``supervised`` trains each layer through a temporary softmax head on ``y``: ``fit(X, y)``.
    activation : {"sigmoid", "tanh", "relu", "linear"}, default="sigmoid"
        Hidden activation (an RBM's hidden units are sigmoid or linear).
    epochs : int, default=None
        Training epochs per layer (None: 10).
    batch_size : int, default=None
        Mini-batch size (None: 128).
    lr : float, default=None
        Learning rate of ``optimizer`` (None: 1e-3 with Adam).
    pretrain_options : dict, default=None
        Any other flat ``GreedyConfig.from_flat`` setting: ``optimizer``, ``momentum``,
        ``weight_decay``, ``top_activation``, the objective's options (``noise_level``, ``tied``,
        ``cd_k``, ``persistent``, ...).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the data order and any noise; an int gives the same codes on every fit.

    Attributes
    ----------
    pretrainer_ : GreedyPretrainer
        The fitted stack: ``pretrainer_.history_`` holds its per-layer losses, and
        ``pretrain.stack_checkpoint(pretrainer_, {...})`` is the checkpoint dict that
        ``pretrain.save_atomic`` writes (``.pt`` or ``.safetensors``).
    model_ : torch.nn.Sequential
        The stack as a plain ``Linear, act, ...`` network (``pretrainer_.to_sequential()``);
        ``transform`` runs it.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Input feature names, when ``X`` has string column names.
    """

    _parameter_constraints = {
        **_COMMON_CONSTRAINTS,
        "epochs": [_POSITIVE_INT, None],
        "lr": [_POSITIVE, None],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        objective="autoencoder",
        activation="sigmoid",
        epochs=None,
        batch_size=None,
        lr=None,
        pretrain_options=None,
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.objective = objective
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.pretrain_options = pretrain_options
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Pretrain the stack on ``X`` of shape (n_samples, n_features). Returns self.

        ``y`` (n_samples,): class labels, used only by objectives that learn from them (``supervised``).
        """
        config, _ = self._greedy_config(self.epochs, self.lr, self._seed())
        labels = None
        if not _needs_labels(self.objective):
            x = _float32(self._check_X(X, reset=True))
        elif y is None:
            # scikit-learn's own wording, which its checks look for
            raise ValueError(f"objective={self.objective!r} requires y to be passed, but the target y is None")
        else:
            X, y = validate_data(self, X, y, dtype=(np.float32, np.float64), ensure_min_samples=2)
            check_classification_targets(y)
            x = _float32(X)
            labels = torch.from_numpy(np.unique(y, return_inverse=True)[1].astype(np.int64))
        self.pretrainer_ = GreedyPretrainer(config).fit(x, y=labels)
        with torch.random.fork_rng(devices=[]):  # building it draws initial weights: leave the global RNG as it was
            self.model_ = self.pretrainer_.to_sequential()
        self._n_features_out = config.layers[-1]
        return self

    def transform(self, X):
        """The top codes of ``X`` (n_samples, n_features): shape (n_samples, hidden_layer_sizes[-1]), ``X``'s dtype."""
        codes, dtype = self._predict64(X)
        return codes.numpy().astype(dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = _needs_labels(self.objective)
        return tags


class PretrainedMLPClassifier(ClassifierMixin, _Stack, BaseEstimator):
    """An MLP classifier pretrained greedily on every row, then fine-tuned on the labelled rows.

    ``fit(X, y)`` builds ``Linear, act, ..., Linear`` with the hidden layers pretrained on all
    of ``X`` (``make_classifier("greedy", ...)``, the head Xavier-initialised), then fine-tunes
    it with cross-entropy on the rows whose label is not ``-1`` (``pretrain.finetuning.finetune``).
    With no held-out set, fine-tuning keeps the weights of its epoch with the lowest training
    error. A setting left at None takes the default of ``GreedyConfig`` or ``FinetuneConfig``.

    Parameters
    ----------
    hidden_layer_sizes : int or array-like of int, default=(100,)
        Hidden layer sizes, bottom first.
    objective : {"autoencoder", "denoising", "rbm"}, default="autoencoder"
        The pretraining objective of every hidden layer (an unsupervised one: it sees every row).
    activation : {"sigmoid", "tanh", "relu", "linear"}, default="sigmoid"
        Hidden activation.
    pretrain_epochs : int, default=None
        Pretraining epochs per layer (None: 10).
    pretrain_lr : float, default=None
        Pretraining learning rate (None: 1e-3 with Adam).
    finetune_epochs : int, default=None
        Fine-tuning epochs (None: ``FinetuneConfig``'s budget).
    finetune_lr : float, default=None
        Fine-tuning learning rate (None: 0.1 with SGD and momentum 0.9).
    batch_size : int, default=None
        Mini-batch size of both stages (None: 128).
    pretrain_options : dict, default=None
        Other flat ``GreedyConfig.from_flat`` settings (``optimizer``, ``noise_level``, ``cd_k``, ...).
    finetune_options : dict, default=None
        Other ``FinetuneConfig`` fields (``optimizer``, ``weight_decay``, ``schedule``, ``max_steps``, ...).
    random_state : int, RandomState instance or None, default=None
        Seeds the pretraining, the head and the fine-tuning order.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``y``, ``-1`` (unlabelled) excluded.
    model_ : torch.nn.Sequential
        The fine-tuned classifier; its outputs are logits over ``classes_``.
    finetune_result_ : pretrain.FinetuneResult
        Per-epoch losses and errors of the fine-tuning on the labelled rows.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Input feature names, when ``X`` has string column names.
    """

    _parameter_constraints = {
        **_COMMON_CONSTRAINTS,
        "objective": [StrOptions({name for name in OBJECTIVES if not _needs_labels(name)})],
        "pretrain_epochs": [_POSITIVE_INT, None],
        "pretrain_lr": [_POSITIVE, None],
        "finetune_epochs": [_POSITIVE_INT, None],
        "finetune_lr": [_POSITIVE, None],
        "finetune_options": [dict, None],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        objective="autoencoder",
        activation="sigmoid",
        pretrain_epochs=None,
        pretrain_lr=None,
        finetune_epochs=None,
        finetune_lr=None,
        batch_size=None,
        pretrain_options=None,
        finetune_options=None,
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.objective = objective
        self.activation = activation
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.finetune_epochs = finetune_epochs
        self.finetune_lr = finetune_lr
        self.batch_size = batch_size
        self.pretrain_options = pretrain_options
        self.finetune_options = finetune_options
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Pretrain on every row of ``X`` (n_samples, n_features), fine-tune on the rows with ``y != -1``.

        ``y``: array-like of shape (n_samples,); ``-1`` marks an unlabelled row. Returns self.
        """
        X, y = validate_data(self, X, y, dtype=(np.float32, np.float64), ensure_min_samples=2)
        check_classification_targets(y)
        labelled = ~_unlabelled(y)
        self.classes_, codes = np.unique(y[labelled], return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes among the labelled rows (y != -1), "
                f"got {len(self.classes_)} class(es) in {int(labelled.sum())} labelled rows"
            )
        seed = self._seed()
        stack, settings = self._greedy_config(self.pretrain_epochs, self.pretrain_lr, seed)
        fields = {"epochs": self.finetune_epochs, "lr": self.finetune_lr, "batch_size": self.batch_size}
        try:
            config = FinetuneConfig(
                **{k: v for k, v in fields.items() if v is not None}, seed=seed, **(self.finetune_options or {})
            )
        except (PretrainError, TypeError) as err:  # TypeError: a field FinetuneConfig does not have
            raise ValueError(f"finetune_options: {err}") from None
        x = _float32(X)
        # make_classifier reads the sizes and activations off the model and seeds the stack from ``seed``
        architecture = ("layers", "activation", "top_activation", "seed")
        model, _ = make_classifier(
            "greedy",
            n_in=x.shape[1],
            n_classes=len(self.classes_),
            hidden=stack.layers,
            activation=stack.activations,
            seed=seed,
            data=x,
            greedy={k: v for k, v in settings.items() if k not in architecture},
        )
        # No held-out split: the labelled rows stand in for validation and test (see the class docstring).
        rows = Split(x[torch.from_numpy(labelled)], torch.from_numpy(codes.astype(np.int64)))
        self.finetune_result_ = finetune(model, Dataset("scikit-learn", rows, rows, rows), config)
        self.model_ = model
        return self

    def predict_proba(self, X):
        """Class probabilities of ``X`` (n_samples, n_features): (n_samples, n_classes), columns as ``classes_``."""
        return torch.softmax(self._predict64(X)[0], dim=1).numpy()

    def predict(self, X):
        """The most probable class of each row of ``X`` (n_samples, n_features): shape (n_samples,)."""
        best = self._predict64(X)[0].argmax(1).numpy()
        return self.classes_[best]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


def _unlabelled(y: np.ndarray) -> np.ndarray:
    """``y == -1`` for numeric labels; string labels have no unlabelled marker."""
    if y.dtype.kind in "biuf":
        return y == UNLABELLED
    return np.zeros(y.shape, dtype=bool)


def expected_failed_checks(estimator) -> dict[str, str]:
    """The ``check_estimator`` checks that cannot apply to ``estimator``, each with the reason.

    Pass it on: ``check_estimator(est, expected_failed_checks=expected_failed_checks(est))`` or
    ``parametrize_with_checks([...], expected_failed_checks=expected_failed_checks)``.
    """
    if isinstance(estimator, PretrainedMLPClassifier):
        return {
            "check_classifiers_classes": "its binary labels are [-1, 1], but y == -1 marks an unlabelled row "
            "(scikit-learn's semi-supervised convention), leaving one labelled class; scikit-learn exempts "
            "its own semi-supervised estimators from those labels by name",
        }
    return {}
