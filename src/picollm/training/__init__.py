"""Training: ``train(model, stream, eval_sets, TrainConfig(...), checkpoint_dir)`` and its parts."""

from picollm.training.checkpoint import CheckpointError, read_checkpoint
from picollm.training.config import TrainConfig, batches_per_epoch
from picollm.training.history import EvalRecord, StepRecord, TrainingHistory
from picollm.training.trainer import TrainingDivergedError, TrainResult, train
from picollm.training.weights import load_model_weights, load_trained_model, save_model_weights

__all__ = [
    "CheckpointError",
    "EvalRecord",
    "StepRecord",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "TrainingHistory",
    "batches_per_epoch",
    "load_model_weights",
    "load_trained_model",
    "read_checkpoint",
    "save_model_weights",
    "train",
]
