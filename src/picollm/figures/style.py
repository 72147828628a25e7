"""Shared figure plumbing: a headless backend and reproducible PNG output."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402

from picollm.files import atomic_path  # noqa: E402


def save(fig: plt.Figure, target: Path | str, dpi: int) -> None:
    """Save ``fig`` as a PNG atomically, without metadata that changes between runs."""
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
