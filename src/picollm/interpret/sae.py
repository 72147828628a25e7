"""Sparse autoencoders (SAEs): dictionary learning on a model's activations.

After Bricken et al. 2023, "Towards Monosemanticity: Decomposing Language Models With Dictionary
Learning" (https://transformer-circuits.pub/2023/monosemantic-features): a one-layer ReLU
autoencoder with more features than input dimensions, trained to reconstruct activations under
an L1 penalty on its feature activations, so that each activation is explained by a few
features. The decoder rows, kept at unit norm, are the learned dictionary of directions.

Shapes: N rows of activations, each ``d_in`` wide; F features.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from safetensors import safe_open
from torch import Tensor, nn

from picollm.models.base import check_float, check_int

ADAM_BETAS = (0.9, 0.999)
L1_WARMUP_FRACTION = 0.05
"""Share of the training steps over which the L1 coefficient rises linearly from 0."""
SAE_FORMAT = "picollm.sparse_autoencoder"
"""The ``format`` entry of a saved SAE's safetensors metadata."""


class SparseAutoencoder(nn.Module):
    """``f = relu((x - b_dec) W_enc + b_enc)``, ``x_hat = f W_dec + b_dec`` (Bricken et al. 2023).

    ``b_dec`` is subtracted before encoding, as in the paper, so it serves as the data's centre.
    The decoder rows start as random unit directions and the encoder as their transpose;
    ``generator`` draws them (None: torch's global generator, as ``nn.Linear`` does).
    """

    def __init__(
        self, d_in: int, n_features: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        check_int("d_in", d_in, 1)
        check_int("n_features", n_features, 1)
        directions = torch.randn(n_features, d_in, generator=generator)  # (F, d_in)
        directions /= directions.norm(dim=1, keepdim=True)
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.W_enc = nn.Parameter(directions.T.clone(memory_format=torch.contiguous_format))
        self.b_enc = nn.Parameter(torch.zeros(n_features))
        self.W_dec = nn.Parameter(directions)

    @property
    def d_in(self) -> int:
        """Width of the activations the SAE reads and reconstructs."""
        return self.W_dec.shape[1]

    @property
    def n_features(self) -> int:
        """Number of features F: the size of the dictionary."""
        return self.W_dec.shape[0]

    def encode(self, x: Tensor) -> Tensor:  # (N, d_in) -> (N, F)
        """The feature activations of each row of ``x``: non-negative, mostly zero once trained."""
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def decode(self, features: Tensor) -> Tensor:  # (N, F) -> (N, d_in)
        """The reconstruction: a sum of decoder rows weighted by the features, plus ``b_dec``."""
        return features @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # (N, d_in) -> (N, d_in), (N, F)
        """``(reconstruction, features)`` of the rows of ``x``."""
        features = self.encode(x)
        return self.decode(features), features

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale each decoder row to unit L2 norm, in place."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True)

    @torch.no_grad()
    def remove_parallel_decoder_grad_(self) -> None:
        """Drop the part of each row of ``W_dec.grad`` parallel to that decoder row.

        A step along a row's own direction only changes its norm, which `normalize_decoder_`
        undoes; Bricken et al. 2023 remove it so that Adam sees only the gradient that turns the
        row. Does nothing before the first backward pass (no gradient yet).
        """
        if self.W_dec.grad is None:
            return
        directions = self.W_dec / self.W_dec.norm(dim=1, keepdim=True)  # (F, d_in)
        parallel = (self.W_dec.grad * directions).sum(dim=1, keepdim=True)  # (F, 1)
        self.W_dec.grad -= parallel * directions


def sae_loss(sae: SparseAutoencoder, x: Tensor, l1_coefficient: float) -> dict[str, Tensor]:
    """The objective of Bricken et al. 2023 on a batch ``x`` (N, d_in): ``loss``, ``mse``, ``l1``.

    ``mse``: squared L2 reconstruction error of a row, summed over ``d_in``, averaged over rows.
    ``l1``: sum of a row's feature activations, averaged over rows; with unit-norm decoder rows
    this is the paper's penalty ``sum_i f_i ||W_dec_i||``. ``loss = mse + l1_coefficient * l1``.
    """
    return _loss_and_features(sae, x, l1_coefficient)[0]


def _loss_and_features(
    sae: SparseAutoencoder, x: Tensor, l1_coefficient: float
) -> tuple[dict[str, Tensor], Tensor]:
    """`sae_loss` and the feature activations (N, F) it was computed from."""
    check_float("l1_coefficient", l1_coefficient, 0.0)
    reconstruction, features = sae(x)  # (N, d_in), (N, F)
    mse = (reconstruction - x).pow(2).sum(dim=-1).mean()
    l1 = features.sum(dim=-1).mean()  # features are >= 0, so their sum is their L1 norm
    return {"loss": mse + l1_coefficient * l1, "mse": mse, "l1": l1}, features


@dataclass(frozen=True)
class SAETrainConfig:
    """Hyperparameters of `train_sae` (see each field's comment for its meaning)."""

    n_features: int  # dictionary size F
    l1_coefficient: float  # weight of the L1 penalty once warmed up (see `l1_coefficient_at`)
    steps: int  # Adam steps
    batch_size: int = 1024  # activation rows per step
    learning_rate: float = 1e-3  # constant Adam learning rate
    seed: int = 0  # seeds the initial dictionary and the batch order
    dead_window: int = 100_000  # rows (tokens); a feature silent on the last this-many is dead

    def __post_init__(self) -> None:
        check_int("n_features", self.n_features, 1)
        check_float("l1_coefficient", self.l1_coefficient, 0.0)
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_int("seed", self.seed, 0)
        check_int("dead_window", self.dead_window, 1)


def l1_coefficient_at(step: int, config: SAETrainConfig) -> float:
    """The L1 coefficient at 0-based ``step``: from 0 up linearly over the first 5% of steps.

    A full penalty from the first step can drive features to zero activation before the
    reconstruction has found a use for them; a ReLU feature that never fires gets no gradient
    and stays dead. Anthropic's later training recipe (Circuits Updates, April 2024,
    transformer-circuits.pub/2024/april-update) warms the coefficient up in the same way.
    """
    warmup_steps = int(config.steps * L1_WARMUP_FRACTION)
    if step >= warmup_steps:
        return config.l1_coefficient
    return config.l1_coefficient * step / warmup_steps


def train_sae(
    activations: Tensor, config: SAETrainConfig
) -> tuple[SparseAutoencoder, list[dict[str, float]]]:
    """Fit a float32 SAE to the rows of ``activations`` (N, d_in); return it and its history.

    As in Bricken et al. 2023: ``b_dec`` starts at the mean row; each Adam step drops the decoder
    gradient parallel to the decoder rows and then rescales the rows to unit norm. The seeded
    generator draws the initial dictionary and the batches: consecutive slices of a fresh random
    permutation of the rows each epoch. The SAE lives on the activations' device;
    ``activations`` is only read.

    The history has one record per step: ``step`` (steps done, from 1), ``l1_coefficient`` (as
    warmed up), the batch's ``loss``, ``mse``, ``l1`` and ``l0`` (mean number of features active
    on a row), all before that step's update, and ``dead_fraction``: the share of features that
    fired on none of the last ``dead_window`` training rows (0 until that many rows were seen;
    counted in whole batches).
    """
    _check_activations(activations)
    generator = torch.Generator().manual_seed(config.seed)
    sae = SparseAutoencoder(activations.shape[1], config.n_features, generator)
    sae.to(activations.device)
    with torch.no_grad():
        sae.b_dec.copy_(activations.mean(dim=0, dtype=torch.float32))
    optimizer = torch.optim.Adam(sae.parameters(), lr=config.learning_rate, betas=ADAM_BETAS)
    batches = _batch_indices(len(activations), config.batch_size, generator)
    rows_since_fired = torch.zeros(config.n_features, dtype=torch.long, device=activations.device)
    history = []
    for step in range(config.steps):
        x = activations[next(batches).to(activations.device)].to(torch.float32)  # (B, d_in)
        l1_coefficient = l1_coefficient_at(step, config)
        parts, features = _loss_and_features(sae, x, l1_coefficient)
        _update(sae, optimizer, parts["loss"])
        fired = features > 0  # (B, F)
        rows_since_fired = torch.where(fired.any(dim=0), 0, rows_since_fired + len(x))  # (F,)
        dead = rows_since_fired >= config.dead_window  # (F,)
        history.append(_step_record(step + 1, l1_coefficient, parts, fired, dead))
    return sae, history


def _update(sae: SparseAutoencoder, optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
    """One constrained Adam step: backward, unit-norm-preserving gradient, step, renormalise."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    sae.remove_parallel_decoder_grad_()
    optimizer.step()
    sae.normalize_decoder_()


def _step_record(
    step: int, l1_coefficient: float, parts: dict[str, Tensor], fired: Tensor, dead: Tensor
) -> dict[str, float]:
    """One history record of `train_sae` from the step's losses, ``fired`` (B, F), ``dead`` (F,)."""
    names = ("loss", "mse", "l1", "l0", "dead_fraction")
    l0 = fired.sum(dim=1).float().mean()
    values = torch.stack([parts["loss"], parts["mse"], parts["l1"], l0, dead.float().mean()])
    return {
        "step": step,
        "l1_coefficient": l1_coefficient,
        **dict(zip(names, values.tolist(), strict=True)),
    }


def _batch_indices(n_rows: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless batches of row indices (batch_size,): slices of a new permutation per epoch.

    A batch that crosses the end of an epoch takes the rest of one permutation and the start of
    the next, so every row is drawn once per epoch even when ``batch_size`` does not divide N.
    """
    pending = torch.empty(0, dtype=torch.long)
    while True:
        while len(pending) < batch_size:
            pending = torch.cat([pending, torch.randperm(n_rows, generator=generator)])
        yield pending[:batch_size]
        pending = pending[batch_size:]


@dataclass(frozen=True, eq=False)  # eq=False: a tensor field has no single truth value
class SAEMetrics:
    """How well an SAE explains a set of activations (see `evaluate_sae`)."""

    mse: float  # squared reconstruction error of a row, summed over d_in, averaged over rows
    l0: float  # mean number of features active on a row
    explained_variance: float  # 1 - residual sum of squares / sum of squares about the mean
    dead_fraction: float  # share of features that fire on no row
    feature_density: Tensor  # (F,) share of rows on which each feature fires (float64, CPU)


def evaluate_sae(sae: SparseAutoencoder, activations: Tensor, batch_size: int = 4096) -> SAEMetrics:
    """Reconstruction and sparsity of ``sae`` on ``activations`` (N, d_in), in batches.

    Each batch is cast to the SAE's dtype and device; sums are accumulated in float64 on the
    CPU. ``explained_variance`` is nan for constant activations (nothing to explain).
    """
    _check_activations(activations, sae.d_in)
    check_int("batch_size", batch_size, 1)
    mean = _column_mean(sae, activations, batch_size)  # (d_in,)
    squared_error = squared_deviation = 0.0
    fire_counts = torch.zeros(sae.n_features, dtype=torch.float64)  # (F,)
    with torch.no_grad():
        for x in _batches_for(sae, activations, batch_size):  # (B, d_in)
            reconstruction, features = sae(x)  # (B, d_in), (B, F)
            squared_error += (reconstruction - x).pow(2).sum().item()
            squared_deviation += (x - mean).pow(2).sum().item()
            fire_counts += (features > 0).sum(dim=0).cpu()
    n_rows = len(activations)
    density = fire_counts / n_rows  # (F,)
    explained = 1 - squared_error / squared_deviation if squared_deviation else float("nan")
    return SAEMetrics(
        mse=squared_error / n_rows,
        l0=density.sum().item(),
        explained_variance=explained,
        dead_fraction=(fire_counts == 0).double().mean().item(),
        feature_density=density,
    )


def _column_mean(sae: SparseAutoencoder, activations: Tensor, batch_size: int) -> Tensor:
    """The mean row of ``activations`` (d_in,), in the SAE's dtype and on its device."""
    total = torch.zeros(activations.shape[1], dtype=torch.float64)  # (d_in,)
    for x in _batches_for(sae, activations, batch_size):  # (B, d_in)
        total += x.sum(dim=0).cpu()
    return (total / len(activations)).to(sae.W_dec)


def _batches_for(sae: SparseAutoencoder, activations: Tensor, batch_size: int) -> Iterator[Tensor]:
    """Consecutive batches of rows (B, d_in) of ``activations``, cast to the SAE's dtype/device."""
    for start in range(0, len(activations), batch_size):
        yield activations[start : start + batch_size].to(sae.W_dec)


def top_activations(
    sae: SparseAutoencoder, activations: Tensor, feature: int, k: int, batch_size: int = 4096
) -> tuple[Tensor, Tensor]:
    """The ``k`` largest activations of ``feature`` over the rows of ``activations`` (N, d_in).

    Returns ``(values, row_indices)``, both (k,), largest first. Only that feature's column
    (N,) is computed, batch by batch, never the full (N, F) feature matrix.
    """
    _check_activations(activations, sae.d_in)
    check_int("feature", feature, 0, sae.n_features - 1)
    check_int("k", k, 1, len(activations))
    check_int("batch_size", batch_size, 1)
    with torch.no_grad():
        column = torch.cat(
            [_feature_column(sae, x, feature) for x in _batches_for(sae, activations, batch_size)]
        )  # (N,)
    values, indices = torch.topk(column, k)
    return values, indices


def _feature_column(sae: SparseAutoencoder, x: Tensor, feature: int) -> Tensor:
    """Activation of one feature on each row of ``x`` (B, d_in) -> (B,): one column of encode."""
    return torch.relu((x - sae.b_dec) @ sae.W_enc[:, feature] + sae.b_enc[feature])


def _check_activations(activations: Tensor, d_in: int | None = None) -> None:
    """Raise unless ``activations`` is a floating-point (N, d_in) matrix with N >= 1 rows."""
    width_ok = activations.ndim == 2 and (d_in is None or activations.shape[1] == d_in)
    if not width_ok or len(activations) == 0 or not activations.is_floating_point():
        width = "d_in" if d_in is None else str(d_in)
        raise ValueError(
            f"activations must be a floating-point (N, {width}) matrix with N >= 1, "
            f"got shape {tuple(activations.shape)} and dtype {activations.dtype}"
        )


def save_sae(sae: SparseAutoencoder, path: Path | str) -> None:
    """Write ``sae`` to ``path`` as safetensors, atomically, with its sizes in the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: value.detach().cpu().contiguous() for name, value in sae.state_dict().items()}
    metadata = {"format": SAE_FORMAT, "d_in": str(sae.d_in), "n_features": str(sae.n_features)}
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        safetensors.torch.save_file(tensors, str(temporary), metadata=metadata)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load_sae(path: Path | str) -> SparseAutoencoder:
    """The SAE saved at ``path`` by `save_sae`, on the CPU, in the dtype it was saved in.

    Reads safetensors only (no pickle). Raises ValueError if the file is not a saved SAE.
    """
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata() or {}
    if metadata.get("format") != SAE_FORMAT:
        raise ValueError(f"{path}: not a saved SAE (metadata format {metadata.get('format')!r})")
    tensors = safetensors.torch.load_file(str(path))
    # A private generator: building the SAE leaves the global RNG alone; the weights are replaced.
    sae = SparseAutoencoder(int(metadata["d_in"]), int(metadata["n_features"]), torch.Generator())
    sae.to(tensors["W_dec"].dtype).load_state_dict(tensors)
    return sae
