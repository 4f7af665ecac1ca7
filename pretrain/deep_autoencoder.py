"""Deep autoencoders: unroll a pretrained stack, fine-tune it end to end, compare with PCA.

Hinton & Salakhutdinov (Science, 2006) pretrain a stack of layers, "unroll" it into an
encoder (the stack) and a mirrored decoder (the transposed weights, each layer's visible
bias as the decoder bias), then fine-tune the whole autoencoder by backpropagation.

- ``unroll(stack)``: a fitted ``GreedyPretrainer`` or a stack checkpoint dict -> ``DeepAutoencoder``;
- ``random_autoencoder(sizes, ...)``: the same shape from a random start (the control);
- ``DeepAutoencoderTrainer``: end-to-end training with cross-entropy on pixels or MSE, Adam or SGD, resumable;
- ``PCA``: the linear baseline with the same code size (``torch.linalg.svd``);
- ``squared_error_per_image``: the paper's metric, summed over features, averaged over images.

Both halves are plain ``nn.Sequential`` (``Linear, act, Linear, act, ...``), so the encoder
alone loads into ``nn.Sequential`` as a feature extractor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import batches
from .errors import DivergenceError, PretrainError, require
from .greedy import GreedyPretrainer
from .layers.autoencoder import LOSSES, CrossEntropyWithLogits
from .mlp import ACTIVATIONS, build_mlp
from .training import OPTIMIZERS, PRECISIONS, autocast, make_optimizer
from .version import versions

FORMAT = "pretrain.autoencoder/1"

# A layer's decoder output unit, from the reconstruction loss (or visible units) it was pretrained with.
_OUTPUT_ACTIVATION = {"cross-entropy": "sigmoid", "bernoulli": "sigmoid", "mse": "linear", "gaussian": "linear"}


def squared_error_per_image(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """``((x - x_hat)²)`` summed over the ``D`` features, averaged over the ``N`` rows of ``(N, D)``."""
    return float((x - x_hat).square().sum(dim=1).mean())


class DeepAutoencoder(nn.Module):
    """``x (N, D) -> encoder -> code (N, sizes[-1]) -> decoder -> x_hat (N, D)``.

    ``sizes``: the encoder's widths, input first (e.g. ``[784, 1000, 500, 250, 30]``);
    ``activations``: one per encoder layer; ``decoder_activations``: one per decoder layer,
    top first (the last is the output unit: ``sigmoid`` for pixels, ``linear`` for real values).
    """

    def __init__(self, sizes: list[int], activations: list[str], decoder_activations: list[str]):
        super().__init__()
        for act in (*activations, *decoder_activations):
            if act not in ACTIVATIONS:
                raise PretrainError(f"unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")
        self.sizes = list(sizes)
        self.activations = list(activations)
        self.decoder_activations = list(decoder_activations)
        self.encoder = build_mlp(self.sizes[0], self.sizes[1:], None, self.activations)
        self.decoder = build_mlp(self.sizes[-1], self.sizes[::-1][1:], None, self.decoder_activations)

    @property
    def output_activation(self) -> str:
        return self.decoder_activations[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def output_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's last pre-activation ``(N, D)`` (the logits of a sigmoid output)."""
        return self.decoder[:-1](self.encoder(x))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """``(N, D) -> (N, sizes[-1])`` codes, without gradients."""
        return torch.cat([self.encoder(part) for part in x.split(chunk)])

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """``(N, D) -> (N, D)`` reconstructions, without gradients."""
        return torch.cat([self(part) for part in x.split(chunk)])

    def spec(self) -> dict:
        """Sizes and activations: enough to rebuild the two ``nn.Sequential`` halves."""
        return {
            "sizes": self.sizes,
            "activations": self.activations,
            "decoder_activations": self.decoder_activations,
        }

    @classmethod
    def from_state(cls, spec: dict, encoder: dict, decoder: dict) -> DeepAutoencoder:
        """Rebuild from ``spec()`` and the two halves' state dicts."""
        model = cls(spec["sizes"], spec["activations"], spec["decoder_activations"])
        model.encoder.load_state_dict(encoder)
        model.decoder.load_state_dict(decoder)
        return model


@dataclass
class _Stack:
    sizes: list[int]
    weights: list[torch.Tensor]  # (n_out, n_in) each
    biases: list[torch.Tensor]
    decoders: list[dict]  # "bias" (n_in,) and optionally "weight" (n_in, n_out)
    activations: list[str]
    losses: list[str]


def _read_stack(stack: GreedyPretrainer | dict) -> _Stack:
    if isinstance(stack, GreedyPretrainer):
        if not stack.history_ or not all(h.done for h in stack.history_):
            raise PretrainError("the stack is not fully trained; fit it before unrolling")
        state = stack.state_dict_sequential()
        decoders = [layer.decoder_state() for layer in stack.layers_]
        sizes = [stack.history_[0].n_in, *stack.config.layers]
        activations, losses = stack.config.activations, [h.loss for h in stack.history_]
    elif isinstance(stack, dict) and {"state_dict", "decoders", "metadata"} <= stack.keys():
        meta = stack["metadata"]
        state, decoders, sizes = stack["state_dict"], stack["decoders"], list(meta["sizes"])
        activations = meta.get("activations") or [meta["activation"]] * (len(sizes) - 1)
        losses = [layer["loss"] for layer in meta["layers"]]
    else:
        raise PretrainError("unroll needs a fitted GreedyPretrainer or a stack checkpoint (from pretrain.stack)")
    n = len(sizes) - 1
    try:
        weights = [state[f"{2 * k}.weight"] for k in range(n)]
        biases = [state[f"{2 * k}.bias"] for k in range(n)]
    except KeyError as err:
        raise PretrainError(f"the stack has no encoder weight {err}") from None
    if len(decoders) != n or any("bias" not in d for d in decoders):
        raise PretrainError("the stack has no decoder (visible) bias for every layer; cannot unroll it")
    return _Stack(sizes, weights, biases, decoders, list(activations), losses)


def _output_activation(loss: str, k: int) -> str:
    try:
        return _OUTPUT_ACTIVATION[loss]
    except KeyError:
        raise PretrainError(f"layer {k + 1} was pretrained with an unknown reconstruction {loss!r}") from None


@torch.no_grad()
def unroll(stack: GreedyPretrainer | dict) -> DeepAutoencoder:
    """The deep autoencoder of a pretrained stack (a new, trainable copy on the CPU).

    Encoder layer k is the stack's layer k (weight ``W_k``, bias ``b_k``, its activation).
    Decoder layer ``n-1-k`` maps back to layer k's input: weight ``W_kᵀ`` (or the layer's untied
    decoder weight), bias the layer's decoder (visible) bias, and the output unit the layer was
    pretrained to reconstruct with (sigmoid for cross-entropy / Bernoulli, linear for MSE / Gaussian).
    Before any fine-tuning it reconstructs as ``GreedyPretrainer.reconstruct`` does (to float rounding).
    """
    s = _read_stack(stack)
    n = len(s.sizes) - 1
    decoder_acts = [_output_activation(s.losses[k], k) for k in reversed(range(n))]
    model = DeepAutoencoder(s.sizes, s.activations, decoder_acts)
    for k in range(n):
        model.encoder[2 * k].weight.copy_(s.weights[k])
        model.encoder[2 * k].bias.copy_(s.biases[k])
        dec = model.decoder[2 * (n - 1 - k)]
        dec.weight.copy_(s.decoders[k].get("weight", s.weights[k].t()))
        # a Gaussian-visible RBM keeps its raw-unit bias apart from the standardised one
        dec.bias.copy_(s.decoders[k].get("raw_bias", s.decoders[k]["bias"]))
    return model


@torch.no_grad()
def random_autoencoder(
    sizes: list[int],
    activations: list[str],
    decoder_activations: list[str],
    generator: torch.Generator | None = None,
) -> DeepAutoencoder:
    """The same shape from a random start: Glorot-uniform weights, zero biases."""
    model = DeepAutoencoder(sizes, activations, decoder_activations)
    for module in (*model.encoder, *model.decoder):
        if isinstance(module, nn.Linear):
            bound = math.sqrt(6.0 / sum(module.weight.shape))
            module.weight.uniform_(-bound, bound, generator=generator)
            module.bias.zero_()
    return model


def mirrored_activations(activations: list[str], output: str = "sigmoid") -> list[str]:
    """Decoder activations mirroring ``activations`` (top first), ending in ``output``.

    ``["sigmoid"] * 3 + ["linear"]`` -> ``["sigmoid", "sigmoid", "sigmoid", output]``: decoder
    layer j reproduces the code of encoder layer ``n-2-j``, so it shares its activation.
    """
    return [*reversed(activations[:-1]), output]


# ------------------------------------------------------------------------------ fine-tuning
@dataclass
class DeepAutoencoderConfig:
    """Every hyperparameter of end-to-end fine-tuning (saved in the checkpoint).

    ``loss``: ``cross-entropy`` on pixels (inputs in [0, 1], sigmoid output) or ``mse``.
    ``lr`` applies to ``optimizer``; ``momentum`` only to SGD.
    ``precision``: ``fp32``, or ``bf16`` (autocast of each step's forward pass and loss; weights and
    optimizer state stay fp32; evaluation in fp32).
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    loss: str = "cross-entropy"
    seed: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        require(self.epochs > 0, f"fine-tuning epochs must be positive, got {self.epochs}")
        require(self.batch_size > 0, f"batch size must be positive, got {self.batch_size}")
        require(self.lr > 0 and math.isfinite(self.lr), f"learning rate must be positive, got {self.lr}")
        require(
            self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}"
        )
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        require(self.loss in LOSSES, f"unknown loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        require(
            self.precision in PRECISIONS, f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}"
        )


@dataclass
class DeepAutoencoderHistory:
    """Per-epoch training loss, validation loss and squared error per image, and seconds spent."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(self.epoch_seconds)


class DeepAutoencoderTrainer:
    """Train a ``DeepAutoencoder`` end to end to reconstruct its input.

    >>> tuner = DeepAutoencoderTrainer(unroll(pretrainer), DeepAutoencoderConfig(epochs=20)).fit(x_train, x_val)
    >>> squared_error_per_image(x_test, tuner.model.reconstruct(x_test))
    """

    def __init__(self, model: DeepAutoencoder, config: DeepAutoencoderConfig, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.history = DeepAutoencoderHistory()
        self.generator = torch.Generator(self.device).manual_seed(config.seed * 1_000_003 + 7)
        self.optimizer = make_optimizer(
            self.model.parameters(), config.optimizer, config.lr, config.momentum, config.weight_decay
        )

    @property
    def done(self) -> bool:
        return len(self.history.train_loss) >= self.config.epochs

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Scalar loss on a batch ``(B, D)``, summed over features and averaged over the batch."""
        if self.config.loss == "cross-entropy":
            return CrossEntropyWithLogits.apply(self.model.output_logits(x), x)  # vectorized BCE
        return (self.model(x) - x).square().sum(dim=1).mean()

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, chunk: int = 8192) -> tuple[float, float]:
        """``(mean loss, squared error per image)`` on ``x`` ``(N, D)``."""
        self.model.eval()
        loss = err = 0.0
        for part in x.split(chunk):
            loss += float(self.loss(part)) * part.shape[0]
            err += float((self.model(part) - part).square().sum())
        return loss / x.shape[0], err / x.shape[0]

    def fit(
        self,
        x: torch.Tensor,
        x_val: torch.Tensor | None = None,
        *,
        progress: bool = False,
        desc: str = "fine-tune",
        on_epoch: Callable[[DeepAutoencoderTrainer], None] | None = None,
    ) -> DeepAutoencoderTrainer:
        """Train the epochs not yet done. ``x``: ``(N, D)``; ``x_val``: ``(M, D)`` or None."""
        cfg = self.config
        if x.ndim != 2 or x.shape[1] != self.model.sizes[0]:
            raise PretrainError(f"the autoencoder takes (N, {self.model.sizes[0]}) data, got {tuple(x.shape)}")
        if cfg.loss == "cross-entropy":
            if self.model.output_activation != "sigmoid":
                raise PretrainError("cross-entropy needs a sigmoid output layer; use --finetune-loss mse")
            lo, hi = float(x.min()), float(x.max())
            if lo < 0 or hi > 1:
                raise PretrainError(
                    f"inputs lie in [{lo:.3g}, {hi:.3g}], but cross-entropy needs [0, 1]; use --finetune-loss mse"
                )
        x = x.to(self.device)
        x_val = None if x_val is None else x_val.to(self.device)
        n_batches = math.ceil(x.shape[0] / cfg.batch_size)
        start = len(self.history.train_loss)
        bar = tqdm(
            total=cfg.epochs * n_batches,
            initial=start * n_batches,
            disable=not progress,
            desc=desc,
            unit="batch",
            dynamic_ncols=True,
        )
        amp = autocast(cfg.precision, self.device)
        buffer = x.new_empty(min(cfg.batch_size, x.shape[0]), x.shape[1])  # each step's rows, gathered in place
        for epoch in range(start, cfg.epochs):
            t0 = time.perf_counter()
            self.model.train()
            total = torch.zeros((), device=self.device)
            for idx in batches(x.shape[0], cfg.batch_size, self.generator, self.device):
                batch = torch.index_select(x, 0, idx, out=buffer[: idx.shape[0]])
                self.optimizer.zero_grad(set_to_none=True)
                with amp:
                    loss = self.loss(batch)
                loss.backward()
                self.optimizer.step()
                total += loss.detach() * batch.shape[0]
                bar.update(1)
            train_loss = total.item() / x.shape[0]
            val_loss, val_error = (float("nan"),) * 2 if x_val is None else self.evaluate(x_val)
            self.history.epoch_seconds.append(time.perf_counter() - t0)
            if not (math.isfinite(train_loss) and (x_val is None or math.isfinite(val_loss))):
                bar.close()
                raise DivergenceError(
                    f"fine-tuning epoch {epoch + 1}: the loss became {train_loss}; "
                    f"try a smaller learning rate than {cfg.lr:g}"
                )
            self.history.train_loss.append(train_loss)
            self.history.val_loss.append(val_loss)
            self.history.val_error.append(val_error)
            bar.set_postfix(loss=f"{train_loss:.4g}", val_error=f"{val_error:.4g}")
            if on_epoch is not None:
                on_epoch(self)
        bar.close()
        self.model.eval()
        return self

    # ---------------------------------------------------------- resume support
    def state_dict(self) -> dict:
        """Model halves, optimizer and RNG state, history and config: all a resume needs."""
        return {
            "config": asdict(self.config),
            "spec": self.model.spec(),
            "encoder": {k: v.detach().cpu() for k, v in self.model.encoder.state_dict().items()},
            "decoder": {k: v.detach().cpu() for k, v in self.model.decoder.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "history": asdict(self.history),
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str = "cpu") -> DeepAutoencoderTrainer:
        model = DeepAutoencoder.from_state(state["spec"], state["encoder"], state["decoder"])
        self = cls(model, DeepAutoencoderConfig(**state["config"]), device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.history = DeepAutoencoderHistory(**state["history"])
        return self


# ------------------------------------------------------------------------------------- PCA
@dataclass
class PCA:
    """Principal components of training data: ``mean`` ``(D,)``, ``components`` ``(k, D)`` orthonormal rows."""

    mean: torch.Tensor
    components: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, n_components: int) -> PCA:
        """The top ``n_components`` directions of ``x`` ``(N, D)`` by a thin SVD of the centred data."""
        if x.ndim != 2 or not 0 < n_components <= min(x.shape):
            raise PretrainError(f"cannot take {n_components} principal components of data of shape {tuple(x.shape)}")
        mean = x.mean(dim=0)
        _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
        return cls(mean, vh[:n_components].contiguous())

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D) -> (N, k)`` codes."""
        return (x - self.mean) @ self.components.T

    def inverse_transform(self, z: torch.Tensor) -> torch.Tensor:
        """``(N, k) -> (N, D)``."""
        return z @ self.components + self.mean

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D) -> (N, D)``: the projection onto the affine principal subspace."""
        return self.inverse_transform(self.transform(x))


def autoencoder_checkpoint(tuner: DeepAutoencoderTrainer, metadata: dict) -> dict:
    """The exported checkpoint of a fine-tuned autoencoder, readable with ``weights_only=True``.

    ``encoder`` and ``decoder`` are plain ``nn.Sequential`` state dicts (``build_sequential``
    with ``metadata["sizes"]`` / ``["activations"]`` and the reversed sizes /
    ``["decoder_activations"]``); ``state_dict`` is the encoder again, under the key every
    pretrain checkpoint uses. ``metadata``: extra fields (data, test error, ...).
    """
    encoder = {k: v.detach().cpu().clone() for k, v in tuner.model.encoder.state_dict().items()}
    decoder = {k: v.detach().cpu().clone() for k, v in tuner.model.decoder.state_dict().items()}
    return {
        "state_dict": encoder,
        "encoder": encoder,
        "decoder": decoder,
        "metadata": {
            "format": FORMAT,
            **tuner.model.spec(),
            "finetune": asdict(tuner.config),
            "history": asdict(tuner.history),
            "versions": versions(),
            **metadata,
        },
    }
