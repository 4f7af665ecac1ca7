"""scikit-learn estimators over the library (``pip install -e ".[sklearn]"``).

- :class:`GreedyLayerwiseTransformer`: ``fit(X)`` pretrains a stack greedily (``GreedyPretrainer``),
  ``transform(X)`` returns its top codes. With its defaults (one RBM layer) its ``n_components``,
  ``learning_rate``, ``batch_size``, ``n_iter`` and ``random_state`` mean what they mean in
  ``BernoulliRBM``, and it has ``partial_fit``.
- :class:`PretrainedMLPClassifier`: ``fit(X, y)`` pretrains the hidden layers greedily, then fine-tunes
  the whole MLP (``finetune``) with ``MLPClassifier``'s names and stopping rules (``max_iter``, ``tol``,
  ``n_iter_no_change``, ``early_stopping``, ...). Rows whose label is ``unlabeled_label`` (when set)
  are pretrained on and not fine-tuned on.

Both take dense or sparse CSR ``X`` (made dense one batch at a time), ``sample_weight`` and a torch
``device``. Training runs in float32 on ``device``; ``transform``, ``predict`` and ``predict_proba``
compute in float64 on the CPU from the trained weights (see ``_Stack._output``). ``random_state``
seeds everything (an int gives the same results on every fit).

>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.linear_model import LogisticRegression
>>> clf = make_pipeline(GreedyLayerwiseTransformer(100), LogisticRegression())
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import scipy.sparse
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .data import Dataset, Split
from .errors import DivergenceError, PretrainError
from .finetuning import FinetuneConfig, finetune
from .greedy import GreedyConfig, GreedyPretrainer
from .init import init_head
from .layers import OBJECTIVES
from .mlp import ACTIVATIONS, build_mlp

__all__ = ["GreedyLayerwiseTransformer", "PretrainedMLPClassifier"]

_POSITIVE_INT = Interval(Integral, 1, None, closed="left")
_POSITIVE = Interval(Real, 0, None, closed="neither")
_UNSUPERVISED = {name for name, spec in OBJECTIVES.items() if not spec.needs_labels}
_CHUNK = 8192  # rows of sparse input made dense at a time when predicting


@contextmanager
def _value_errors():
    """The library's ``PretrainError`` for bad input as scikit-learn's ``ValueError`` (a divergence stays one)."""
    try:
        yield
    except DivergenceError:
        raise
    except PretrainError as err:
        raise ValueError(str(err)) from None


def _needs_labels(objective: str) -> bool:
    return objective in OBJECTIVES and OBJECTIVES[objective].needs_labels


def _recipe(objective: str, learning_rate: float | None, options: dict | None) -> dict:
    """The pretraining settings an objective starts from, with ``options`` over them.

    An RBM trains as ``BernoulliRBM`` does: persistent CD-1, plain SGD (no momentum), learning rate
    0.1. The other objectives use Adam at 1e-3. ``learning_rate=None`` takes the optimizer's default.
    """
    base = {"optimizer": "sgd", "momentum": 0.0, "persistent": True} if objective == "rbm" else {"optimizer": "adam"}
    settings = {**base, **(options or {})}
    if learning_rate is not None:
        settings["lr"] = learning_rate
    else:
        settings.setdefault("lr", 0.1 if settings["optimizer"] == "sgd" else 1e-3)
    return settings


def _torch(X) -> torch.Tensor:
    """float32 tensor of ``X``: a copy of a dense array, a sparse COO tensor of a sparse matrix."""
    if scipy.sparse.issparse(X):
        coo = X.tocoo()
        indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        return torch.sparse_coo_tensor(
            indices, torch.from_numpy(coo.data.astype(np.float32)), coo.shape, check_invariants=True
        )
    return torch.tensor(X, dtype=torch.float32)  # a copy: read-only and Fortran-ordered inputs are fine


def _canonical_order(X, codes: np.ndarray | None) -> np.ndarray:
    """Row indices that sort the rows by their content (and label): fitting does not depend on row order.

    The trainers shuffle with a seeded permutation of positions; putting the rows in an order that
    depends only on what they hold makes a shuffled copy of the data give the same model, and a
    weight of k the same model as k copies of the row (scikit-learn checks both).
    """
    key = np.asarray(X @ np.random.default_rng(0).standard_normal(X.shape[1])).ravel()
    return np.lexsort((key,) if codes is None else (codes, key))


def _weighted_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(rows, loss weights)``: each row ``ceil(w)`` times, each copy weighing ``w / ceil(w)``.

    An integer weight k is k copies of the row (loss weights None when every copy weighs 1), a
    weight of 0 drops it, and a fractional part is carried by the copies' loss weights.
    """
    copies = np.ceil(w).astype(np.int64)
    rows = np.repeat(np.arange(len(w)), copies)
    share = (w / np.maximum(copies, 1))[rows]
    return rows, None if np.all(share == 1) else share.astype(np.float32)


def _sampled_rows(w: np.ndarray) -> np.ndarray:
    """Rows drawn with probability proportional to ``w`` (systematic sampling), in row order.

    ``max(rows of positive weight, round(sum(w)))`` draws: integer weights give each row exactly
    ``w`` times (as ``_weighted_rows``), equal weights each positive row once.
    """
    positive = np.flatnonzero(w > 0)
    if np.all(w[positive] == w[positive[0]]) and w[positive[0]] <= 1:
        return positive
    n = max(len(positive), int(round(float(w.sum()))))
    cum = np.cumsum(w, dtype=np.float64)
    points = (np.arange(n) + 0.5) * (cum[-1] / n)  # half a step from every boundary of an integer weight
    return np.minimum(np.searchsorted(cum, points, side="right"), len(w) - 1)


class _Stack:
    """What both estimators share: the device, the seed, input checks and float64 inference."""

    def _device(self) -> torch.device:
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device={self.device!r} is not a torch device: {err}") from None
        if device.type == "cuda" and (
            not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()
        ):
            raise ValueError(f"device={self.device!r}: no such CUDA device on this machine")
        return device

    def _greedy_config(self, layers, objective, epochs, batch_size, learning_rate, options, seed) -> GreedyConfig:
        """The ``GreedyConfig``; a bad setting is a ``ValueError`` at ``fit``, as scikit-learn's own are."""
        settings = {
            "layers": layers,
            "objective": objective,
            "activation": self.activation,
            "epochs": epochs,
            "batch_size": batch_size,
            **_recipe(objective, learning_rate, options),
            "seed": seed,
        }
        try:
            return GreedyConfig.from_flat(settings)
        except PretrainError as err:
            raise ValueError(str(err)) from None

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _check_X(self, X, reset: bool):
        # fit needs 2 rows: a Gaussian RBM layer standardises its inputs by their std
        return validate_data(
            self,
            X,
            reset=reset,
            accept_sparse="csr",
            dtype=(np.float32, np.float64),
            ensure_min_samples=2 if reset else 1,
        )

    def _weights(self, sample_weight, X) -> np.ndarray:
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not np.any(w > 0):
            raise ValueError("Sample weights must contain at least one non-zero number.")
        return w

    def _output(self, X) -> tuple[torch.Tensor, np.dtype]:
        """``model_(X)`` computed in float64 on the CPU from the float32 weights, and ``X``'s dtype.

        float32 kernels (the vectorised sigmoid, a multi-threaded matmul) can round a value by one
        unit in the last place (1e-7) depending on where its row sits in the batch; in float64 such
        differences are ~1e-16, so a row's output does not depend on its batch at float32 precision.
        Sparse ``X`` is made dense 8192 rows at a time.
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        params = {k: v.detach().cpu().double() for k, v in self.model_.state_dict().items()}
        parts = []
        with torch.no_grad():
            for lo in range(0, X.shape[0], _CHUNK if scipy.sparse.issparse(X) else max(X.shape[0], 1)):
                part = X[lo : lo + _CHUNK].toarray() if scipy.sparse.issparse(X) else X
                x = torch.tensor(part, dtype=torch.float64)
                parts.append(torch.func.functional_call(self.model_, params, (x,)))
        return torch.cat(parts), X.dtype

    def _sklearn_input_tags(self, tags):
        tags.input_tags.sparse = True
        return tags


def _one_layer(self) -> bool:
    """``partial_fit`` is there for a one-layer stack with an unsupervised objective."""
    try:
        return len(self.hidden_layer_sizes) == 0 and not _needs_labels(self.objective)
    except TypeError:
        return False


class GreedyLayerwiseTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _Stack, BaseEstimator):
    """Greedy layer-wise pretraining of a stack of RBMs, autoencoders or denoising autoencoders.

    ``fit`` trains layer k on the codes of layers 1..k-1 (``pretrain.GreedyPretrainer``);
    ``transform`` returns the codes of the top layer, ``n_components`` of them. With its defaults
    (``objective="rbm"``, no ``hidden_layer_sizes``) it is one RBM trained as ``BernoulliRBM`` trains
    one: persistent CD-1 with as many chains as ``batch_size``, plain SGD at ``learning_rate``,
    ``n_iter`` epochs; a ``BernoulliRBM`` parameter grid works on it unchanged.

    Parameters
    ----------
    n_components : int, default=256
        Number of output features: the size of the top layer.
    hidden_layer_sizes : array-like of int, default=()
        Sizes of the layers below the top one, bottom first; ``()`` is a single layer.
    objective : {"rbm", "autoencoder", "denoising", "supervised"}, default="rbm"
        What each layer is trained to do. Inputs outside [0, 1] get Gaussian RBM visible units or an
        mse autoencoder loss. ``supervised`` trains each layer through a temporary softmax head on
        ``y``: ``fit(X, y)``.
    activation : {"sigmoid", "tanh", "relu", "linear"}, default="sigmoid"
        Hidden activation (an RBM's hidden units are sigmoid or linear).
    learning_rate : float, default=None
        Learning rate of every layer (None: 0.1 with the RBM's SGD, as ``BernoulliRBM``; 1e-3 with Adam,
        the other objectives' optimizer).
    batch_size : int, default=10
        Examples per mini-batch.
    n_iter : int, default=10
        Passes over the training data (epochs) per layer.
    pretrain_options : dict, default=None
        Any other flat ``GreedyConfig.from_flat`` setting, over the objective's recipe: ``optimizer``,
        ``momentum``, ``weight_decay``, ``top_activation``, the objective's options (``cd_k``,
        ``persistent``, ``noise_level``, ``tied``, ``loss``, ``visible``, ...).
    device : str or torch.device, default="cpu"
        Where training runs: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    verbose : int, default=0
        Above 0: a progress bar per layer with its running loss.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the data order and any sampling; an int gives the same codes on every fit.

    Attributes
    ----------
    pretrainer_ : GreedyPretrainer
        The fitted stack: ``pretrainer_.history_`` holds its per-layer losses, and
        ``pretrain.stack_checkpoint(pretrainer_, {...})`` is the checkpoint dict that
        ``pretrain.save_atomic`` writes (``.pt`` or ``.safetensors``).
    model_ : torch.nn.Sequential
        The stack as a plain ``Linear, act, ...`` network on the CPU; ``transform`` runs it.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Input feature names, when ``X`` has string column names.
    """

    _parameter_constraints = {
        "n_components": [_POSITIVE_INT],
        "hidden_layer_sizes": ["array-like"],
        "objective": [StrOptions(set(OBJECTIVES))],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "learning_rate": [_POSITIVE, None],
        "batch_size": [_POSITIVE_INT],
        "n_iter": [_POSITIVE_INT],
        "pretrain_options": [dict, None],
        "device": [str, torch.device],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=256,
        *,
        hidden_layer_sizes=(),
        objective="rbm",
        activation="sigmoid",
        learning_rate=None,
        batch_size=10,
        n_iter=10,
        pretrain_options=None,
        device="cpu",
        verbose=0,
        random_state=None,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.objective = objective
        self.activation = activation
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.pretrain_options = pretrain_options
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _hidden(self) -> list[int]:
        sizes = list(self.hidden_layer_sizes)
        if not all(isinstance(n, Integral) and n > 0 for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        return [int(n) for n in sizes]

    def _config(self, epochs: int, seed: int) -> GreedyConfig:
        layers = [*self._hidden(), int(self.n_components)]
        return self._greedy_config(
            layers, self.objective, epochs, self.batch_size, self.learning_rate, self.pretrain_options, seed
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Pretrain the stack on ``X`` of shape (n_samples, n_features), dense or sparse CSR. Returns self.

        ``y`` (n_samples,): class labels, used only by objectives that learn from them (``supervised``).
        ``sample_weight`` (n_samples,): rows are drawn in proportion to their weight (see the docs); an
        integer weight k is k copies of the row, and a weight of 0 drops it.
        """
        device, seed = self._device(), self._seed()
        config = self._config(self.n_iter, seed)
        labels = None
        if not _needs_labels(self.objective):
            X = self._check_X(X, reset=True)
        elif y is None:
            # scikit-learn's own wording, which its checks look for
            raise ValueError(f"objective={self.objective!r} requires y to be passed, but the target y is None")
        else:
            X, y = validate_data(self, X, y, accept_sparse="csr", dtype=(np.float32, np.float64), ensure_min_samples=2)
            check_classification_targets(y)
            labels = np.unique(y, return_inverse=True)[1].astype(np.int64)
        order = _canonical_order(X, labels)
        rows = order[_sampled_rows(self._weights(sample_weight, X)[order])]
        self.pretrainer_ = GreedyPretrainer(config, device)
        with _value_errors():
            self.pretrainer_.fit(
                _torch(X[rows]), y=None if labels is None else torch.from_numpy(labels[rows]), progress=self.verbose > 0
            )
        self._export()
        return self

    @available_if(_one_layer)
    def partial_fit(self, X, y=None):
        """One pass over ``X`` (n_samples, n_features) in mini-batches of ``batch_size``. Returns self.

        Online learning, as ``BernoulliRBM.partial_fit`` (which takes one step on ``X`` as one batch:
        the same when ``X`` has at most ``batch_size`` rows). The first call builds the layer; later
        calls continue with the same optimizer and random state. One layer only (no
        ``hidden_layer_sizes``) and an unsupervised objective.
        """
        first = not hasattr(self, "pretrainer_")
        if first:
            self._validate_params()
        X = self._check_X(X, reset=first)
        if first:
            self.pretrainer_ = GreedyPretrainer(self._config(1, self._seed()), self._device())
        with _value_errors():
            self.pretrainer_.partial_fit(_torch(X))
        self._export()
        return self

    def _export(self) -> None:
        with torch.random.fork_rng(devices=[]):  # building it draws initial weights: leave the global RNG as it was
            self.model_ = self.pretrainer_.to_sequential().eval()
        self._n_features_out = self.pretrainer_.config.layers[-1]

    def transform(self, X):
        """The top codes of ``X`` (n_samples, n_features): shape (n_samples, n_components), ``X``'s dtype."""
        codes, dtype = self._output(X)
        return codes.numpy().astype(dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = _needs_labels(self.objective)
        return self._sklearn_input_tags(tags)


class PretrainedMLPClassifier(ClassifierMixin, _Stack, BaseEstimator):
    """An MLP classifier whose hidden layers are pretrained greedily, then fine-tuned as ``MLPClassifier``.

    ``fit(X, y)`` pretrains the hidden layers on every row of ``X`` (``GreedyPretrainer``), puts a
    Xavier-initialised softmax head on top, then fine-tunes the whole network with cross-entropy on
    the labelled rows (``pretrain.finetuning.finetune``). The fine-tuning parameters have
    ``MLPClassifier``'s names, defaults and meaning; the pretraining ones start with ``pretrain_``.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Hidden layer sizes, bottom first.
    activation : {"sigmoid", "tanh", "relu", "linear"}, default="sigmoid"
        Hidden activation (an RBM's hidden units are sigmoid or linear).
    solver : {"adam", "sgd"}, default="adam"
        Fine-tuning optimizer (SGD with ``momentum``, without Nesterov).
    alpha : float, default=0.0001
        L2 penalty, scaled as ``MLPClassifier``'s: weight decay ``alpha / batch_size`` (on the biases too).
    batch_size : int or "auto", default="auto"
        Fine-tuning mini-batch size; ``"auto"`` is ``min(200, n_samples)``.
    learning_rate_init : float, default=0.001
        Fine-tuning learning rate (constant).
    max_iter : int, default=200
        Most fine-tuning epochs. A run that reaches it still improving gets a ``ConvergenceWarning``.
    tol : float, default=1e-4
        An epoch improves when the training loss (or, with ``early_stopping``, the validation accuracy)
        beats the best so far by more than ``tol``.
    n_iter_no_change : int, default=10
        Stop after more than this many epochs in a row without improvement.
    momentum : float, default=0.9
        SGD momentum (``solver="sgd"`` only).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the labelled rows (stratified), judge on their accuracy,
        and end with the weights of the best epoch. Otherwise judge on the training loss and end with
        the last weights.
    validation_fraction : float, default=0.1
        The held-out share of the labelled rows with ``early_stopping``.
    warm_start : bool, default=False
        Refit from the fitted network (no new pretraining), for ``max_iter`` more epochs.
    unlabeled_label : int, str or None, default=None
        The label that marks an unlabelled row (e.g. ``-1``, as ``sklearn.semi_supervised``): such rows
        are pretrained on, not fine-tuned on, and not a class. None: every label is a class.
    pretrain_objective : {"rbm", "autoencoder", "denoising"}, default="rbm"
        The pretraining objective of every hidden layer (unsupervised: it sees the unlabelled rows too).
    pretrain_n_iter : int, default=10
        Pretraining epochs per layer.
    pretrain_learning_rate : float, default=None
        Pretraining learning rate (None: 0.1 with the RBM's SGD, 1e-3 with Adam).
    pretrain_batch_size : int, default=10
        Pretraining mini-batch size.
    pretrain_options : dict, default=None
        Other flat ``GreedyConfig.from_flat`` settings (``optimizer``, ``cd_k``, ``noise_level``, ...).
    device : str or torch.device, default="cpu"
        Where training runs: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    verbose : int, default=0
        Above 0: progress bars with the running losses (and validation error) of both stages.
    random_state : int, RandomState instance or None, default=None
        Seeds the pretraining, the head, the validation split and the fine-tuning order.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``y`` (``unlabeled_label`` excluded).
    model_ : torch.nn.Sequential
        The fine-tuned classifier on the CPU; its outputs are logits over ``classes_``.
    pretrainer_ : GreedyPretrainer
        The pretrained stack (its per-layer losses in ``history_``).
    finetune_result_ : pretrain.finetuning.FinetuneResult
        The last fit's per-epoch fine-tuning metrics.
    n_iter_ : int
        Fine-tuning epochs run (summed over warm-started fits).
    loss_curve_ : list of float
        Mean training cross-entropy of every epoch (weighted by ``sample_weight``; the L2 term left out).
    best_loss_ : float or None
        The lowest value of ``loss_curve_``; None with ``early_stopping``.
    validation_scores_ : list of float or None
        Validation accuracy of every epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
        The best of ``validation_scores_``, whose weights the model has; None without ``early_stopping``.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Input feature names, when ``X`` has string column names.
    """

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", _POSITIVE_INT],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"adam", "sgd"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), _POSITIVE_INT],
        "learning_rate_init": [_POSITIVE],
        "max_iter": [_POSITIVE_INT],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [_POSITIVE_INT],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "warm_start": ["boolean"],
        "unlabeled_label": [Integral, str, None],
        "pretrain_objective": [StrOptions(_UNSUPERVISED)],
        "pretrain_n_iter": [_POSITIVE_INT],
        "pretrain_learning_rate": [_POSITIVE, None],
        "pretrain_batch_size": [_POSITIVE_INT],
        "pretrain_options": [dict, None],
        "device": [str, torch.device],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="sigmoid",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        momentum=0.9,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        unlabeled_label=None,
        pretrain_objective="rbm",
        pretrain_n_iter=10,
        pretrain_learning_rate=None,
        pretrain_batch_size=10,
        pretrain_options=None,
        device="cpu",
        verbose=0,
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.momentum = momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.unlabeled_label = unlabeled_label
        self.pretrain_objective = pretrain_objective
        self.pretrain_n_iter = pretrain_n_iter
        self.pretrain_learning_rate = pretrain_learning_rate
        self.pretrain_batch_size = pretrain_batch_size
        self.pretrain_options = pretrain_options
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _hidden(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not sizes or not all(isinstance(n, Integral) and n > 0 for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        return [int(n) for n in sizes]

    def _labelled(self, y: np.ndarray) -> np.ndarray:
        marker = self.unlabeled_label
        numeric = y.dtype.kind in "biuf"
        if (
            marker is None
            or (numeric and isinstance(marker, str))
            or (y.dtype.kind in "US" and not isinstance(marker, str))
        ):
            return np.ones(y.shape, dtype=bool)
        return ~np.asarray(y == marker, dtype=bool)  # elementwise, object labels too

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Pretrain on every row of ``X`` (n_samples, n_features), fine-tune on the labelled rows.

        ``X``: dense or sparse CSR. ``y`` (n_samples,): class labels; with ``unlabeled_label`` set,
        that label marks an unlabelled row. ``sample_weight`` (n_samples,): a weight of 0 drops the
        row; pretraining draws rows in proportion to their weight, fine-tuning weighs each row's loss
        (an integer weight k is exactly k copies of the row). Returns self.
        """
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=(np.float32, np.float64), ensure_min_samples=2)
        device, seed = self._device(), self._seed()
        w = self._weights(sample_weight, X)
        labelled = self._labelled(y)
        check_classification_targets(y[labelled])  # object labels may mix strings and an int marker
        labelled &= w > 0
        classes, codes = np.unique(y[labelled], return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes among the labelled rows of positive weight, "
                f"got {len(classes)} class(es) in {int(labelled.sum())} rows"
            )
        warm = self.warm_start and hasattr(self, "model_")
        if warm and not np.array_equal(classes, self.classes_):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the previous call to fit"
            )
        self.classes_ = classes
        if warm:
            model = self.model_.to(device)
        else:
            model = self._pretrain(X, w, seed, device)
        result = self._finetune(model, X[labelled], codes.astype(np.int64), w[labelled], seed, device)
        self.model_ = model.cpu().eval()
        self.finetune_result_ = result
        self._record(result, warm)
        return self

    def _pretrain(self, X, w: np.ndarray, seed: int, device: torch.device) -> torch.nn.Sequential:
        hidden = self._hidden()
        config = self._greedy_config(
            hidden,
            self.pretrain_objective,
            self.pretrain_n_iter,
            self.pretrain_batch_size,
            self.pretrain_learning_rate,
            self.pretrain_options,
            seed,
        )
        order = _canonical_order(X, None)
        rows = order[_sampled_rows(w[order])]
        with _value_errors():
            self.pretrainer_ = GreedyPretrainer(config, device).fit(_torch(X[rows]), progress=self.verbose > 0)
        with torch.random.fork_rng(devices=[]):  # building it draws initial weights: leave the global RNG as it was
            model = build_mlp(X.shape[1], hidden, len(self.classes_), config.activations)
        model.load_state_dict(self.pretrainer_.state_dict_sequential(), strict=False)
        init_head(model, torch.Generator().manual_seed(seed))
        return model.to(device)

    def _finetune(self, model, X, codes: np.ndarray, w: np.ndarray, seed: int, device: torch.device):
        order = _canonical_order(X, codes)
        rows, share = _weighted_rows(w[order])
        rows, val = order[rows], None
        if self.early_stopping:  # a stratified share of the (copies of the) labelled rows
            fit, held = train_test_split(
                np.arange(len(rows)), test_size=self.validation_fraction, random_state=seed, stratify=codes[rows]
            )
            val = Split(_torch(X[rows[held]]), torch.from_numpy(codes[rows[held]]))  # accuracy: every row counts once
            rows, share = rows[fit], None if share is None else share[fit]
        w_train = None if share is None else torch.from_numpy(share)
        train = Split(_torch(X[rows]), torch.from_numpy(codes[rows]), w_train)  # sparse X stays sparse
        val = train if val is None else val
        batch = min(200, len(train)) if self.batch_size == "auto" else min(self.batch_size, len(train))
        n_done = getattr(self, "n_iter_", 0) if self.warm_start else 0
        with _value_errors():
            config = FinetuneConfig(
                optimizer=self.solver,
                lr=self.learning_rate_init,
                momentum=self.momentum,
                weight_decay=self.alpha / batch,
                epochs=self.max_iter,
                batch_size=batch,
                patience=self.n_iter_no_change + 1,  # MLPClassifier stops when the count exceeds n_iter_no_change
                tol=self.tol,
                monitor="val_error" if self.early_stopping else "train_loss",
                restore_best=self.early_stopping,
                seed=seed + n_done,
            )
        result = finetune(
            model, Dataset("scikit-learn", train, val, val), config, progress=self.verbose > 0, score_test=False
        )
        if not result.patience_stopped:
            warnings.warn(
                f"{type(self).__name__}: maximum iterations ({self.max_iter}) reached and the optimization "
                "hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return result

    def _record(self, result, warm: bool) -> None:
        """``n_iter_``, ``loss_curve_`` and the best scores, continued over warm-started fits."""
        scores = [1.0 - e for e in result.val_error] if self.early_stopping else None
        if warm:
            self.n_iter_ += len(result.steps)
            self.loss_curve_ = [*self.loss_curve_, *result.train_loss]
            if scores is not None:
                scores = [*(self.validation_scores_ or []), *scores]
        else:
            self.n_iter_, self.loss_curve_ = len(result.steps), list(result.train_loss)
        self.validation_scores_ = scores
        self.best_validation_score_ = None if scores is None else max(scores)
        self.best_loss_ = None if self.early_stopping else min(self.loss_curve_)

    def predict_proba(self, X):
        """Class probabilities of ``X`` (n_samples, n_features): (n_samples, n_classes), columns as ``classes_``."""
        return torch.softmax(self._output(X)[0], dim=1).numpy()

    def predict_log_proba(self, X):
        """Log class probabilities of ``X``: (n_samples, n_classes), columns as ``classes_``."""
        return torch.log_softmax(self._output(X)[0], dim=1).numpy()

    def predict(self, X):
        """The most probable class of each row of ``X`` (n_samples, n_features): shape (n_samples,)."""
        best = self._output(X)[0].argmax(1).numpy()
        return self.classes_[best]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return self._sklearn_input_tags(tags)
