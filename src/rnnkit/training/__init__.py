"""training: the model-agnostic engine every task uses.

:class:`Trainer` with :class:`TrainConfig` (optimizer, warmup and decay, clipping, mixed
precision, evaluation, early stopping, time budget), truncated BPTT batches
(:class:`ContiguousBatches`), shuffled sample batches (:class:`ShuffledBatches`), crash-safe checkpoints (:func:`save_checkpoint`,
:func:`load_checkpoint`), dataclass configs with file and command-line overrides.
"""

from .checkpoint import (Checkpoint, CheckpointError, atomic_write, folder_for_writing,
                         load_checkpoint, save_checkpoint)
from .clipping import clip_gradients
from .config import ConfigError, config_from_dict, config_to_dict, resolve_config
from .metrics import MetricsLog, plot_curves
from .sampling import ShuffledBatches
from .schedule import LearningRateSchedule
from .seeding import capture_rng_state, restore_rng_state, seed_everything
from .run_lock import RunFolderBusyError, check_run_folder_free, hold_run_folder
from .threads import cpu_threads
from .tbptt import ContiguousBatches, Window, detach_state
from .trainer import (NonFiniteLossError, StepOutput, TrainConfig, Trainer, TrainResult,
                      evaluating)

__all__ = [
    "Checkpoint", "CheckpointError", "atomic_write", "folder_for_writing", "load_checkpoint",
    "save_checkpoint",
    "clip_gradients", "ConfigError", "config_from_dict", "config_to_dict", "resolve_config",
    "MetricsLog", "plot_curves", "ShuffledBatches", "LearningRateSchedule", "capture_rng_state",
    "restore_rng_state", "seed_everything", "cpu_threads", "ContiguousBatches", "Window", "detach_state",
    "NonFiniteLossError", "StepOutput", "TrainConfig", "Trainer", "TrainResult", "evaluating",
    "RunFolderBusyError", "check_run_folder_free", "hold_run_folder",
]
