"""A trained model's folder (``results/models/<m>``, ``results/sweeps/<m>/<key>/<i>``): the
files that make it usable on its own, found and checked in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from picollm.errors import UserError

if TYPE_CHECKING:
    from picollm.models import LanguageModel
    from picollm.text_codec import TextCodec

WEIGHTS_FILE = "weights.safetensors"
RUN_FILE = "run.json"  # the run record: architecture, training settings, metrics, lineage


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @classmethod
    def open(cls, path: Path | str) -> RunFolder:
        """The run folder at ``path``; ``UserError`` (one line, with the fix) if it holds no
        trained model."""
        path = Path(path)
        example = "e.g. results/models/transformer"
        if path.is_file() and path.name in (WEIGHTS_FILE, RUN_FILE):
            raise UserError(f"{path}: give the folder that holds it: {path.parent}")
        if not path.is_dir():
            raise UserError(f"{path}: no such folder; give a trained model's folder ({example})")
        missing = [name for name in (WEIGHTS_FILE, RUN_FILE) if not (path / name).is_file()]
        if missing:
            raise UserError(
                f"{path}: no trained model here (missing {' and '.join(missing)}); give a "
                f"trained model's folder ({example}) or train it (snakemake {path / WEIGHTS_FILE})"
            )
        return cls(path)

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def run(self) -> Path:
        return self.path / RUN_FILE

    def load_model(self) -> LanguageModel:
        """The trained model, in eval mode on the CPU."""
        from picollm.training import load_trained_model

        try:
            return load_trained_model(self.weights, self.run).eval()
        except (OSError, ValueError, KeyError, TypeError) as err:  # CheckpointError is a ValueError
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(
                f"{self.path}: cannot load its trained model ({message}); retrain it "
                f"(snakemake --forcerun {self.weights})"
            ) from None

    def codec(self) -> TextCodec:
        """Text <-> the model's token ids."""
        from picollm.text_codec import codec_for

        return codec_for(self.path)
