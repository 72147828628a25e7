"""Pre- vs post-norm, each with and without learning-rate warm-up: test loss over training, and
(if measured) the gradient norm per block at initialisation (Xiong et al. 2020, Fig. 3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from picollm.figures import series as drawn
from picollm.figures.series import Series, as_runs, curve_over_seeds, separations
from picollm.figures.style import plt, save

LOSS = "test loss (nats/token)"
GRAD = "gradient norm of the MLP output matrix"


def draw(
    curves: Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]],
    target: Path | str,
    dpi: int = 120,
    init_norms: Mapping[str, Sequence[Sequence[float]]] | None = None,
) -> list[Series]:
    """``curves[variant]`` (e.g. ``"post, no warm-up"``) is the eval curve (step, test_loss) of
    each seed; series ``<variant>_test`` are their means with 95 % bands. ``init_norms[norm]``
    (``"pre"``/``"post"``) holds per seed the ``mlp_out`` norms of
    ``init_gradients.gradient_norms_at_init``, drawn as series ``grad_init_<norm>`` against the
    block index. The title names the variants whose final losses separate."""
    if not curves:
        raise ValueError("norm_warmup needs the curves of at least one variant")
    panels = 2 if init_norms else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 5.0), squeeze=False)
    loss_ax = axes[0][0]
    losses = []
    for index, (variant, tables) in enumerate(curves.items()):
        curve = curve_over_seeds(
            f"{variant}_test", variant, "optimizer step", LOSS, as_runs(tables), "step", "test_loss"
        )
        drawn.plot(loss_ax, curve, color=f"C{index}", linestyle="-" if "pre" in variant else "--")
        losses.append(curve)
    loss_ax.set_xlabel("optimizer step")
    loss_ax.set_ylabel(LOSS)
    loss_ax.set_title("\n".join(final_verdicts(losses)) or "one seed: no bands", fontsize=8)
    loss_ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=8)
    grads = []
    if init_norms:
        grad_ax = axes[0][1]
        for index, (norm, seeds) in enumerate(init_norms.items()):
            blocks = list(range(len(seeds[0])))
            samples = [[float(seed[b]) for seed in seeds] for b in blocks]
            grad = Series.over_seeds(
                f"grad_init_{norm}", f"{norm}-norm", "block (0 = nearest the input)", GRAD,
                blocks, samples,
            )  # fmt: skip
            drawn.plot(grad_ax, grad, marker="o", color=f"C{index}")
            grads.append(grad)
        grad_ax.set_yscale("log")
        grad_ax.set_xticks(blocks)
        grad_ax.set_xlabel("block (0 = nearest the input)")
        grad_ax.set_ylabel(f"{GRAD} (log)")
        grad_ax.set_title("Gradient norm per block at initialisation", fontsize=9)
        grad_ax.grid(alpha=0.3, which="both")
        grad_ax.legend(fontsize=8)
    fig.suptitle("Pre- vs post-norm, with and without learning-rate warm-up", fontsize=11)
    fig.tight_layout()
    save(fig, target, dpi)
    return losses + grads


def final_verdicts(losses: Sequence[Series]) -> list[str]:
    """The pairs of variants whose final test losses differ beyond their bands, as text."""
    finals = [  # each variant's last point, compared at one common x
        Series(s.id, s.label, s.x_label, s.y_label, ("final",), s.y[-1:], s.low[-1:], s.high[-1:])
        for s in losses
    ]
    pairs = separations(finals)
    if not pairs:
        return []
    parted = [
        " vs ".join(i.removesuffix("_test") for i in pair["ids"])
        for pair in pairs
        if pair["separated_at"]
    ]
    if not parted:
        return ["no two final losses differ beyond their bands"]
    return ["final losses apart beyond their bands:", *parted]
