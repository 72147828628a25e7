"""Every model's test loss on one corpus, against the loss a perfect model would reach."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from picollm.figures import series as drawn
from picollm.figures.series import Series, as_runs, curve_over_seeds
from picollm.figures.style import plt, save

LOSS = "cross-entropy (nats/token)"


def draw(
    curves: Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]],
    entropy_floor: float | None,
    target: Path | str,
    dpi: int = 120,
    data: str = "",
) -> list[Series]:
    """Test loss (solid) and train loss (dotted) per model against tokens seen; returns the
    series ``<model>_test`` and ``<model>_train`` (a list of tables per model: one per seed).

    ``entropy_floor`` is the test set's true entropy in nats per token when every source in it
    is synthetic with a known generating process (``split.json``); it is drawn as a line, since
    no model can go below it on average. Without it the figure says so. ``data`` names what
    the models read (corpus and vocabulary), for the title.
    """
    if not curves:
        raise ValueError("loss_curves needs the curve of at least one model")
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    drawn_series = []
    for index, (name, tables) in enumerate(curves.items()):
        for split, linestyle in (("test", "-"), ("train", ":")):
            curve = curve_over_seeds(
                f"{name}_{split}",
                f"{name} ({split})",
                "training tokens seen",
                LOSS,
                as_runs(tables),
                "tokens_seen",
                f"{split}_loss",
            )
            drawn.plot(ax, curve, color=f"C{index}", linestyle=linestyle)
            drawn_series.append(curve)
    if entropy_floor is not None:
        ax.axhline(
            entropy_floor,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"entropy floor {entropy_floor:.3f}",
        )
        note = "dashed: the true entropy of the test documents' generating process"
    else:
        note = "no entropy floor: the test set has sources whose true entropy is unknown"
    ax.set_yscale("log")
    ax.set_xlabel("training tokens seen")
    ax.set_ylabel("cross-entropy (nats/token, log scale)")
    ax.set_title(f"Loss curves on {data or 'one corpus'}\n({note})", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    save(fig, target, dpi)
    return drawn_series
