"""Restricted Boltzmann machines as layer objectives, trained by contrastive divergence.

One class, :class:`RBMLayer`, covers the three unit pairings Hinton & Salakhutdinov (2006) used.
With ``W`` the ``(H, D)`` weight of the exported ``nn.Linear``, ``c`` its bias (hidden biases)
and ``b`` the visible biases, the energies and free energies ``F(v) = -log Σ_h exp(-E(v, h))`` are

- Bernoulli visible, Bernoulli hidden (``activation="sigmoid"``):
  ``E = -bᵀv - cᵀh - hᵀWv``, ``F(v) = -bᵀv - Σ_j softplus((Wv + c)_j)``;
- Gaussian visible (unit variance, on inputs standardised to zero mean and unit variance per
  feature), Bernoulli hidden: ``E = ½‖v - b‖² - cᵀh - hᵀWv``, ``F(v) = ½‖v - b‖² - Σ_j softplus((Wv + c)_j)``;
- Bernoulli visible, linear hidden (``activation="linear"``, H&S's ``rbmhidlinear.m`` for the code
  layer): the hidden units are Gaussian with unit variance and mean ``Wv + c``,
  ``E = -bᵀv - cᵀh + ½‖h‖² - hᵀWv``, ``F(v) = -bᵀv - ½‖Wv + c‖²`` (the constant ``H/2·log 2π`` is
  left out of ``F`` and of ``log Z`` alike).

Training follows Hinton's ``rbm.m``: the positive statistics use the hidden probabilities (means)
given the data; the hidden states that drive the reconstruction are sampled (``sample_hidden``);
the reconstructed visible units are probabilities unless ``sample_visible``; the negative
statistics use ``p(h | v_neg)``. The CD-k "gradient" of the mean free-energy difference
``F(v_data) - F(v_neg)`` is written into ``.grad`` and the optimizer takes the step, so
``torch.optim.SGD(momentum=m, weight_decay=wc)`` is exactly Hinton's
``inc = m·inc + lr·(<vh>_data - <vh>_neg - wc·W)`` (weight cost on ``W`` only, as in his code).
PCD keeps one persistent chain per layer (a buffer saved with the layer, so resume continues it);
a persistent chain always samples its visible units, since a mean-field chain is not a Markov
chain of the model.

The Gaussian-visible layer stores the standardisation (buffers ``input_mean``, ``input_std``,
computed from the layer's training inputs) with its weights and folds it into the exported
``nn.Linear``: the exported layer computes ``W·((x - mean)/std) + c`` from the raw input ``x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PretrainError, require
from ..training import optimizer_step
from .base import LayerObjective, Objective

VISIBLE = ("auto", "bernoulli", "gaussian")
HIDDEN = {"sigmoid": "bernoulli", "linear": "gaussian"}
EXACT_MAX_UNITS = 20  # exact log-likelihood enumerates 2^n states of the smaller binary side

# Hinton & Salakhutdinov (2006), "Reducing the dimensionality of data with neural networks",
# released Matlab code (www.cs.toronto.edu/~hinton/MatlabForSciencePaper.html):
# rbm.m:          epsilonw = epsilonvb = epsilonhb = 0.1; weightcost = 0.0002;
#                 initialmomentum = 0.5; finalmomentum = 0.9 ("if epoch>5, momentum=finalmomentum");
#                 vishid = 0.1*randn(numdims, numhid); biases start at 0; CD-1 with sampled hidden
#                 states and probabilities for the reconstruction; weight cost on the weights only.
# rbmhidlinear.m: the same, with epsilonw = epsilonvb = epsilonhb = 0.001 for the linear code layer.
# makebatches.m:  mini-batches of 100.
HINTON2006 = {
    "objective": "rbm",
    "optimizer": "sgd",
    "lr": 0.1,
    "linear_lr": 0.001,
    "weight_decay": 0.0002,
    "momentum": 0.5,
    "final_momentum": 0.9,
    "momentum_epochs": 5,
    "batch_size": 100,
    "init_std": 0.1,
    "cd_k": 1,
    "persistent": False,
    "sample_hidden": True,
    "sample_visible": False,
}
PRESETS = {"hinton2006": HINTON2006}


@dataclass
class RBMConfig:
    """The RBM's own options (the learning rate, SGD momentum, batch and weight cost are the trainer's).

    - ``cd_k``: Gibbs steps per update; ``persistent``: PCD chains (one per batch row);
    - ``sample_hidden``/``sample_visible``: sample those states in the Gibbs chain (Hinton: yes/no);
    - ``visible``: the first layer's visible units, ``bernoulli``, ``gaussian`` or ``auto``
      (Bernoulli for inputs in [0, 1]); upper layers always pick by their input range;
    - ``init_std``: initial weights are N(0, init_std²);
    - ``final_momentum``: the SGD momentum after ``momentum_epochs`` epochs (None: keep the trainer's).
    """

    cd_k: int = 1
    persistent: bool = False
    sample_hidden: bool = True
    sample_visible: bool = False
    visible: str = "auto"
    init_std: float = 0.01
    final_momentum: float | None = None
    momentum_epochs: int = 5

    def __post_init__(self) -> None:
        require(self.cd_k >= 1, f"--cd-k must be at least 1, got {self.cd_k}")
        require(self.visible in VISIBLE, f"unknown visible units {self.visible!r}; choose from {', '.join(VISIBLE)}")
        require(self.init_std > 0, f"initial weight std must be positive, got {self.init_std}")
        require(
            self.final_momentum is None or 0 <= self.final_momentum < 1,
            f"final momentum must be in [0, 1), got {self.final_momentum}",
        )
        require(self.momentum_epochs >= 0, f"momentum epochs must be >= 0, got {self.momentum_epochs}")


def visible_units(requested: str, x: torch.Tensor, k: int) -> str:
    """The visible unit type of layer ``k`` (0-based) for inputs ``x``: ``bernoulli`` or ``gaussian``.

    ``auto`` picks Bernoulli units for inputs in [0, 1], else Gaussian ones. Bernoulli units on
    inputs outside [0, 1] raise ``PretrainError``.
    """
    lo, hi = float(x.min()), float(x.max())
    in_unit = lo >= 0.0 and hi <= 1.0
    if requested == "auto":
        return "bernoulli" if in_unit else "gaussian"
    if requested == "bernoulli" and not in_unit:
        raise PretrainError(
            f"layer {k + 1}: inputs lie in [{lo:.3g}, {hi:.3g}], but Bernoulli visible units need [0, 1]; "
            "rescale the data or use --visible gaussian"
        )
    if requested not in VISIBLE:
        raise PretrainError(f"unknown visible units {requested!r}; choose from {', '.join(VISIBLE)}")
    return requested


class RBMLayer(LayerObjective):
    """A restricted Boltzmann machine ``D -> H`` trained by CD-k or persistent CD.

    Args:
        n_in, n_out: visible and hidden sizes ``D`` and ``H``.
        activation: ``sigmoid`` (Bernoulli hidden units) or ``linear`` (unit-variance Gaussian hidden units).
        visible: ``bernoulli`` (inputs in [0, 1]) or ``gaussian`` (any real inputs; standardised).
        cd_k: Gibbs steps per update (CD-k), k >= 1.
        persistent: PCD: the negative chain continues from the previous update instead of the data.
        n_chains: number of persistent chains (the batch size is a good choice).
        sample_hidden: sample the hidden states that drive each reconstruction (Hinton: yes).
        sample_visible: sample the reconstructed visible states (Hinton: no, probabilities).
        init_std: initial weights are ``init_std · N(0, 1)``; biases start at zero.
        momentum, final_momentum, momentum_epochs: SGD momentum ``momentum`` for the first
            ``momentum_epochs`` epochs, then ``final_momentum`` (None: constant).
        generator: RNG for the initial weights, the persistent chains and all Gibbs sampling.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation: str = "sigmoid",
        visible: str = "bernoulli",
        cd_k: int = 1,
        persistent: bool = False,
        n_chains: int = 100,
        sample_hidden: bool = True,
        sample_visible: bool = False,
        init_std: float = 0.01,
        momentum: float = 0.5,
        final_momentum: float | None = 0.9,
        momentum_epochs: int = 5,
        generator: torch.Generator | None = None,
    ):
        if activation not in HIDDEN:
            raise PretrainError(f"an RBM's hidden units are sigmoid (Bernoulli) or linear, not {activation!r}")
        if visible not in ("bernoulli", "gaussian"):
            raise PretrainError(f"visible units must be bernoulli or gaussian, got {visible!r}")
        if visible == "gaussian" and activation == "linear":
            raise PretrainError(
                "an RBM with Gaussian visible and linear hidden units has no normalisable distribution; "
                "use Bernoulli visible units (inputs in [0, 1]) for a linear code layer"
            )
        if cd_k < 1:
            raise PretrainError(f"CD needs at least one Gibbs step, got cd_k={cd_k}")
        super().__init__(n_in, n_out, activation)
        self.visible, self.hidden = visible, HIDDEN[activation]
        self.cd_k, self.persistent = cd_k, persistent
        self.sample_hidden, self.sample_visible = sample_hidden, sample_visible
        self.momentum, self.final_momentum, self.momentum_epochs = momentum, final_momentum, momentum_epochs
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.visible_bias = nn.Parameter(torch.zeros(n_in))
        self.register_buffer("input_mean", torch.zeros(n_in))
        self.register_buffer("input_std", torch.ones(n_in))
        self.register_buffer("chain", torch.zeros(n_chains if persistent else 0, n_out))
        with torch.no_grad():
            self.encoder.weight.normal_(0.0, init_std, generator=self.generator)
            self.encoder.bias.zero_()
            if persistent:
                self.chain.copy_(self._sample(self.hidden, torch.full_like(self.chain, 0.5)))
        self.pll_examples = 100  # examples per split for the (costly) pseudo-log-likelihood diagnostic

    # ------------------------------------------------------------ the model
    @property
    def gaussian_visible(self) -> bool:
        return self.visible == "gaussian"

    def prepare(self, x: torch.Tensor) -> None:
        """Store the per-feature standardisation of the training inputs ``x`` (Gaussian visible only)."""
        if self.gaussian_visible:
            std = x.std(dim=0)
            self.input_mean.copy_(x.mean(dim=0))
            # constant features (e.g. MNIST's border) would divide by zero
            self.input_std.copy_(std.clamp_min(1e-3 * float(std.max().clamp_min(1e-12))))

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs ``(N, D)`` -> the visible units' space (standardised for Gaussian units)."""
        return (x - self.input_mean) / self.input_std if self.gaussian_visible else x

    def hidden_mean(self, v: torch.Tensor) -> torch.Tensor:
        """``E[h | v]``, ``(N, D) -> (N, H)``, for ``v`` in model space."""
        a = torch.addmm(self.encoder.bias, v, self.encoder.weight.t())
        return a.sigmoid_() if self.hidden == "bernoulli" else a

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """``E[v | h]``, ``(N, H) -> (N, D)``, in model space."""
        a = torch.addmm(self.visible_bias, h, self.encoder.weight)
        return a.sigmoid_() if self.visible == "bernoulli" else a

    def _sample(self, kind: str, mean: torch.Tensor) -> torch.Tensor:
        if kind == "bernoulli":
            return torch.rand(mean.shape, generator=self.generator, device=mean.device).lt_(mean).to(mean.dtype)
        return mean + torch.randn(mean.shape, generator=self.generator, device=mean.device)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v)``, ``(N, D) -> (N,)`` in nats, for ``v`` in model space (differentiable)."""
        a = F.linear(v, self.encoder.weight, self.encoder.bias)
        if self.gaussian_visible:
            vis = 0.5 * (v - self.visible_bias).square().sum(1)
        else:
            vis = -(v @ self.visible_bias)
        hid = -F.softplus(a).sum(1) if self.hidden == "bernoulli" else -0.5 * a.square().sum(1)
        return vis + hid

    # ------------------------------------------------------ LayerObjective
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D) -> (N, H)``: hidden probabilities (linear hidden: means) of raw inputs ``x``."""
        return self.hidden_mean(self.to_model(x))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """``(N, H) -> (N, D)``: ``E[v | h]`` in raw input units."""
        v = self.visible_mean(h)
        return v * self.input_std + self.input_mean if self.gaussian_visible else v

    def reconstruction_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Squared error of the mean-field up-down pass ``x -> E[h|x] -> E[v|h]``, summed over
        features (raw units), averaged over the batch. Only a proxy for how good the RBM is."""
        return (self.decode(self.encode(x)) - x).square().sum(1).mean()

    def export_linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` of the exported ``nn.Linear`` on raw inputs (standardisation folded in)."""
        w, c = self.encoder.weight.detach(), self.encoder.bias.detach()
        if not self.gaussian_visible:
            return w.clone(), c.clone()
        return w / self.input_std, c - w @ (self.input_mean / self.input_std)

    def decoder_state(self) -> dict[str, torch.Tensor]:
        """``bias``: visible biases (model space). Gaussian visible units add ``input_mean``,
        ``input_std`` and the raw-space linear decoder ``weight`` ``(D, H)`` and ``raw_bias``:
        ``E[x | h] = weight @ h + raw_bias``."""
        state = {"bias": self.visible_bias.detach().clone()}
        if self.gaussian_visible:
            std = self.input_std
            state.update(
                input_mean=self.input_mean.clone(),
                input_std=std.clone(),
                weight=self.encoder.weight.detach().t() * std[:, None],
                raw_bias=self.visible_bias.detach() * std + self.input_mean,
            )
        return state

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Weight cost on ``W`` only; none on the biases (as in Hinton's code)."""
        return [
            {"params": [self.encoder.weight], "weight_decay": weight_decay},
            {"params": [self.encoder.bias, self.visible_bias], "weight_decay": 0.0},
        ]

    def on_epoch_start(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        """Momentum schedule: ``momentum`` for epochs 0..momentum_epochs-1, then ``final_momentum``."""
        if self.final_momentum is None:
            return
        m = self.final_momentum if epoch >= self.momentum_epochs else self.momentum
        for group in optimizer.param_groups:
            if "momentum" in group:
                group["momentum"] = m

    def train_step(
        self, x: torch.Tensor, optimizer: torch.optim.Optimizer, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One CD-k/PCD update on raw batch ``x`` ``(B, D)``; returns its reconstruction error."""
        _, err = self.contrastive_divergence(x)
        optimizer_step(optimizer)
        return err

    # ------------------------------------------------------------ training
    @torch.no_grad()
    def contrastive_divergence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the CD-k (or PCD) estimate of ``∇[mean F(v_data) - mean F(v_neg)]`` into ``.grad``.

        Returns ``(v_neg, err)``: the negative visible states ``(M, D)`` (model space) and the
        squared reconstruction error of the first Gibbs step from the data (raw units, per example).
        """
        w, c, b = self.encoder.weight, self.encoder.bias, self.visible_bias
        v0 = self.to_model(x)
        ph0 = self.hidden_mean(v0)
        if self.persistent:
            h = self.chain
            recon = self.visible_mean(ph0)  # the chain does not start at the data: a mean-field proxy
        else:
            h = self._sample(self.hidden, ph0) if self.sample_hidden else ph0
            recon = None
        sample_v = self.sample_visible or self.persistent
        for step in range(self.cd_k):
            v_mean = self.visible_mean(h)
            if recon is None:
                recon = v_mean
            v = self._sample(self.visible, v_mean) if sample_v else v_mean
            ph = self.hidden_mean(v)
            if step + 1 < self.cd_k or self.persistent:
                h = self._sample(self.hidden, ph) if (self.sample_hidden or self.persistent) else ph
        if self.persistent:
            self.chain.copy_(h)
        n0, n1 = v0.shape[0], v.shape[0]
        for p in (w, c, b):
            if p.grad is None:
                p.grad = torch.empty_like(p)
        # optimizers minimise: grad = <.>_neg - <.>_data, i.e. ∇ of F(v_data) - F(v_neg);
        # two products accumulating into .grad, the scaling folded in (no concatenated copies)
        if torch.is_autocast_enabled(w.device.type):  # bf16 products, kept in the fp32 gradient
            w.grad.copy_(torch.mm(ph.t(), v) / n1 - torch.mm(ph0.t(), v0) / n0)
        else:
            torch.addmm(w.grad, ph.t(), v, beta=0, alpha=1.0 / n1, out=w.grad)
            w.grad.addmm_(ph0.t(), v0, alpha=-1.0 / n0)
        if n0 == n1:  # one reduction of the difference instead of two (CD-k; a PCD chain may be longer)
            torch.mean(ph - ph0, 0, out=c.grad)
            torch.mean(v - v0, 0, out=b.grad)
        else:
            torch.sub(ph.mean(0), ph0.mean(0), out=c.grad)
            torch.sub(v.mean(0), v0.mean(0), out=b.grad)
        if self.gaussian_visible:
            return v, ((recon - v0) * self.input_std).square_().sum() / n0
        return v, F.mse_loss(recon, v0, reduction="sum") / n0

    @torch.no_grad()
    def gibbs(self, v: torch.Tensor, steps: int) -> torch.Tensor:
        """Run ``steps`` full Gibbs sweeps ``v -> h -> v`` from ``v`` (model space); returns sampled ``v``."""
        for _ in range(steps):
            h = self._sample(self.hidden, self.hidden_mean(v))
            v = self._sample(self.visible, self.visible_mean(h))
        return v

    # --------------------------------------------------------- diagnostics
    @torch.no_grad()
    def log_partition(self) -> torch.Tensor:
        """Exact ``log Z`` (nats) by enumerating the smaller binary side (at most 20 units)."""
        d, hdim = self.encoder.weight.shape[1], self.encoder.weight.shape[0]
        w, c, b = self.encoder.weight.double(), self.encoder.bias.double(), self.visible_bias.double()
        if self.visible == "bernoulli" and (self.hidden == "gaussian" or d <= hdim):
            if d > EXACT_MAX_UNITS:
                raise ValueError(f"exact log Z needs <= {EXACT_MAX_UNITS} visible units, got {d}")
            return torch.logsumexp(torch.cat([-self._free_energy_double(v) for v in _binary_states(d)]), 0)
        if hdim > EXACT_MAX_UNITS:
            raise ValueError(f"exact log Z needs <= {EXACT_MAX_UNITS} hidden units, got {hdim}")
        parts = []
        for h in _binary_states(hdim):
            wh = h @ w  # (S, D)
            if self.gaussian_visible:
                parts.append(h @ c + wh @ b + 0.5 * wh.square().sum(1))
            else:
                parts.append(h @ c + F.softplus(wh + b).sum(1))
        log_z = torch.logsumexp(torch.cat(parts), 0)
        return log_z + 0.5 * d * math.log(2 * math.pi) if self.gaussian_visible else log_z

    def _free_energy_double(self, v: torch.Tensor) -> torch.Tensor:
        w, c, b = self.encoder.weight.double(), self.encoder.bias.double(), self.visible_bias.double()
        a = F.linear(v.double(), w, c)
        vis = 0.5 * (v - b).square().sum(1) if self.gaussian_visible else -(v.double() @ b)
        hid = -F.softplus(a).sum(1) if self.hidden == "bernoulli" else -0.5 * a.square().sum(1)
        return vis + hid

    @property
    def exact_available(self) -> bool:
        d, hdim = self.encoder.weight.shape[1], self.encoder.weight.shape[0]
        if self.visible == "bernoulli" and self.hidden == "gaussian":
            return d <= EXACT_MAX_UNITS
        if self.gaussian_visible:
            return hdim <= EXACT_MAX_UNITS
        return min(d, hdim) <= EXACT_MAX_UNITS

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, log_z: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log p(x)`` per example ``(N,)`` in nats (a density in raw units for Gaussian units)."""
        log_z = self.log_partition() if log_z is None else log_z
        ll = -self._free_energy_double(self.to_model(x)) - log_z
        if self.gaussian_visible:
            ll = ll - self.input_std.double().log().sum()
        return ll

    @torch.no_grad()
    def pseudo_log_likelihood(self, x: torch.Tensor, chunk: int = 8) -> torch.Tensor:
        """Mean over units of ``log p(v_i | v_-i)`` per example ``(N,)``, Bernoulli visible units only.

        Exact for binary ``x``; for grey levels in [0, 1] it is the expected value under
        independent Bernoulli(x_i) pixels, i.e. minus the cross-entropy of ``p(v_i = 1 | v_-i)``.
        """
        if self.gaussian_visible:
            raise ValueError("pseudo-log-likelihood is only defined here for Bernoulli visible units")
        w, c, b = self.encoder.weight, self.encoder.bias, self.visible_bias
        wt = w.t()  # (D, H)
        out = []
        for v in x.split(chunk):
            a = F.linear(v, w, c)  # (n, H)
            if self.hidden == "gaussian":  # F(v) = -bᵀv - ½‖a‖²: closed form
                logit = b + a @ w + wt.square().sum(1) * (0.5 - v)
            else:
                a0 = a[:, None, :] - v[:, :, None] * wt  # (n, D, H): pre-activations with v_i = 0
                logit = b + (F.softplus(a0 + wt) - F.softplus(a0)).sum(2)
            out.append(-F.binary_cross_entropy_with_logits(logit, v, reduction="none").mean(1))
        return torch.cat(out)

    @torch.no_grad()
    def epoch_diagnostics(self, x_train: torch.Tensor, x_val: torch.Tensor | None) -> dict[str, float]:
        """Per-epoch health figures on a training sample and the validation inputs (raw units).

        ``free_energy_train/val``: mean ``F`` (nats); ``free_energy_gap`` = val − train (≈ the mean
        log-likelihood the model gives training data over validation data: it grows when the RBM
        overfits). ``pll_per_unit_train/val``: pseudo-log-likelihood per visible unit (Bernoulli
        visible only). ``log_likelihood_train/val``: exact mean ``log p`` (tiny RBMs only).
        """
        out: dict[str, float] = {}
        splits = {"train": x_train} if x_val is None else {"train": x_train, "val": x_val}
        for name, x in splits.items():
            out[f"free_energy_{name}"] = float(self.free_energy(self.to_model(x)).mean())
        out["free_energy_gap"] = out["free_energy_val"] - out["free_energy_train"] if x_val is not None else math.nan
        if not self.gaussian_visible:
            for name, x in splits.items():
                out[f"pll_per_unit_{name}"] = float(self.pseudo_log_likelihood(x[: self.pll_examples]).mean())
        if self.exact_available:
            log_z = self.log_partition()
            out["log_z"] = float(log_z)
            for name, x in splits.items():
                out[f"log_likelihood_{name}"] = float(self.log_likelihood(x, log_z).mean())
        return out


def _binary_states(n: int, chunk: int = 1 << 16):
    """All ``2**n`` binary vectors as float64 ``(S, n)`` chunks."""
    bits = torch.arange(n)
    for start in range(0, 1 << n, chunk):
        idx = torch.arange(start, min(start + chunk, 1 << n))
        yield ((idx[:, None] >> bits) & 1).double()


def _units(options: RBMConfig, x_range: torch.Tensor, k: int) -> str:
    return visible_units(options.visible if k == 0 else "auto", x_range, k)


def _build(n_in, n_out, activation, options: RBMConfig, units, generator, common) -> RBMLayer:
    return RBMLayer(
        n_in,
        n_out,
        activation,
        visible=units,
        cd_k=options.cd_k,
        persistent=options.persistent,
        n_chains=common.batch_size,
        sample_hidden=options.sample_hidden,
        sample_visible=options.sample_visible,
        init_std=options.init_std,
        momentum=common.momentum,
        final_momentum=options.final_momentum,
        momentum_epochs=options.momentum_epochs,
        generator=generator,
    )


RBM = Objective(RBMConfig, _units, _build)
