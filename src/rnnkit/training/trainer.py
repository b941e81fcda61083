"""The training loop every task uses: model-agnostic, resumable, budgeted in steps or minutes.

A task hands the :class:`Trainer` its model, an endless stream of batches (with
``state_dict``/``load_state_dict`` and ``epochs_done``), a ``loss_fn(model, batch, carry)`` that
returns :class:`StepOutput` (the loss, the state to carry into the next batch, and how many
tokens or samples the batch held) and an ``evaluate_fn(model)`` that returns validation metrics
with a ``"loss"`` entry (lower is better). The trainer owns the rest: optimizer, warmup and
decay, clipping, mixed precision, evaluation at an interval, early stopping, checkpoints,
resume, Ctrl-C, non-finite losses, progress, metrics and the curves PNG.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import torch
from torch import nn

from ..backends.lowered import cpu_bf16_instructions
from ..notices import warn_once
from .checkpoint import (CHECKPOINTS, check_checkpoint_folder, checkpoint_folders,
                         checkpoint_step, load_checkpoint, mark_best, save_checkpoint,
                         set_aside_newer_checkpoints)
from .clipping import clip_gradients
from .metrics import MetricsLog, plot_curves
from .progress import Progress
from .schedule import LearningRateSchedule
from .seeding import MAX_SEED, capture_rng_state, restore_rng_state, seed_everything
from .tbptt import detach_state

log = logging.getLogger("rnnkit.training")

#: With train.on_nonfinite="skip", this many non-finite steps in a row stop the run.
MAX_SKIPS_IN_A_ROW = 100
#: the picture of the training and validation curves, in the run's folder
CURVES_FILE = "curves.png"


def _plain_number(value):
    """A one-value tensor or a NumPy number as the Python number it holds (evaluate_fn's
    ``{"loss": loss}`` of a tensor failed the metrics log's JSON after the first evaluation,
    with no checkpoint saved); anything else as it is."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _loggable(value) -> bool:
    """Whether the metrics log can write ``value`` (as JSON: numbers, text, lists of them)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _kind_of(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of {value.numel()} values"
    return type(value).__name__


def _check_parts(config, batches, loss_fn, evaluate_fn) -> None:
    """The Trainer's arguments, before anything is built or written: a dict for the config, or
    batches without state_dict (needed at the first checkpoint, after training steps), failed
    with AttributeErrors naming neither the argument nor the fix."""
    if not callable(getattr(config, "check", None)) or not hasattr(config, "max_steps"):
        # by what it has, not its class: a TrainConfig from before a module reload is one
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__} (build one "
                        f"with TrainConfig(**settings))")
    needed = ("__next__", "state_dict", "load_state_dict", "epochs_done")
    missing = [name for name in needed if not hasattr(batches, name)]
    if missing:
        raise TypeError(f"batches must be an iterator with state_dict(), load_state_dict() and "
                        f"epochs_done, so that a resumed run continues its data order (see "
                        f"rnnkit.training.tbptt); {type(batches).__name__} lacks "
                        f"{', '.join(missing)}")
    for name, function in (("loss_fn", loss_fn), ("evaluate_fn", evaluate_fn)):
        if not callable(function):
            raise TypeError(f"{name} must be callable; got {type(function).__name__}")


@dataclass
class TrainConfig:
    """How to train; any task's config holds one of these as its ``train`` section."""

    optimizer: str = "adamw"  #: "adamw", "adam" or "sgd" (torch.optim)
    learning_rate: float = 2e-3  #: peak learning rate, reached after the warmup
    weight_decay: float = 0.01
    momentum: float = 0.9  #: SGD only
    warmup_steps: int = 100
    decay: str = "cosine"  #: "cosine", "step" or "constant" (see rnnkit.training.schedule)
    min_lr_ratio: float = 0.05  #: final learning rate of the cosine decay, relative to the peak
    clip_norm: float | None = 1.0  #: global gradient-norm threshold; None turns clipping off
    max_steps: int | None = None
    max_epochs: float | None = None
    minutes: float | None = None  #: wall-time budget for training, evaluations included
    eval_every: int = 500  #: optimizer steps between validation passes (and checkpoints)
    patience: int | None = None  #: stop after this many evaluations without improvement
    keep_last: int = 3  #: checkpoints kept besides the best one
    on_nonfinite: str = "stop"  #: a NaN/Inf loss or gradient: "stop" the run or "skip" the step
    #: "fp32", "bf16" (CPU or GPU autocast), "fp16" (CUDA only) or "auto": bf16 on a CPU with
    #: AMX-BF16 or AVX512-BF16 (native bfloat16 products; see rnnkit.backends.lowered for
    #: what then runs in bfloat16), fp32 elsewhere
    precision: str = "fp32"
    device: str = "cpu"
    seed: int = 0
    log_every: int = 50  #: optimizer steps per training-metrics record
    progress: bool = True  #: show a progress bar on stderr

    def check(self) -> None:
        # Types first (config files and --set are typed already; the Python API is not):
        # warmup_steps=2.5 overshot the peak rate, NaN turned warmup off, keep_last=1.5
        # failed at the first checkpoint, and a string failed deep in training.
        for name in ("max_steps", "warmup_steps", "eval_every", "log_every", "patience",
                     "keep_last", "seed"):
            value = getattr(self, name)
            optional = name in ("max_steps", "patience")
            if not (value is None and optional) and (
                    isinstance(value, bool) or not isinstance(value, numbers.Integral)):
                raise ValueError(f"train.{name} must be a whole number"
                                 f"{' (or None)' if optional else ''}; got {value!r}")
        for name in ("learning_rate", "weight_decay", "momentum", "min_lr_ratio", "clip_norm",
                     "max_epochs", "minutes"):
            value = getattr(self, name)
            optional = name in ("clip_norm", "max_epochs", "minutes")
            if not (value is None and optional) and (
                    isinstance(value, bool) or not isinstance(value, numbers.Real)):
                raise ValueError(f"train.{name} must be a number"
                                 f"{' (or None)' if optional else ''}; got {value!r}")
        if self.max_steps is None and self.max_epochs is None and self.minutes is None:
            raise ValueError("set a limit for training: train.max_steps, train.max_epochs or "
                             "train.minutes")
        for name, optional in (("max_steps", True), ("max_epochs", True), ("minutes", True),
                               ("eval_every", False), ("log_every", False), ("patience", True),
                               ("keep_last", False)):
            value = getattr(self, name)
            # inf would pass as a limit that never ends the run (and never anneals the rate)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"train.{name} must be a finite number > 0"
                                 f"{' (or None)' if optional else ''}; got {value}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"train.seed must be an integer in 0..2**64-1 (torch's range); got "
                             f"{self.seed}")
        # NaN fails every comparison, so each test is written to be False for it; inf passes
        # the signs but no optimizer or threshold means anything with it.
        # A rate past ~1e37 overflows Adam's float32 step size (lr / (1 - beta1)) with a
        # traceback; nothing near that is a learning rate, so 1e30 is the bound.
        bounded = {"learning_rate": (self.learning_rate, "a number > 0 and at most 1e30",
                                     lambda v: 0 < v <= 1e30),
                   "weight_decay": (self.weight_decay, "a finite number >= 0", lambda v: v >= 0),
                   # at 1 or more SGD's velocity grows without bound
                   "momentum": (self.momentum, "a number in [0, 1)", lambda v: 0 <= v < 1),
                   "clip_norm": (self.clip_norm, "a finite number > 0, or None to turn "
                                                 "clipping off", lambda v: v > 0)}
        for name, (value, wanted, valid) in bounded.items():
            if value is not None and not (math.isfinite(value) and valid(value)):
                raise ValueError(f"train.{name} must be {wanted}; got {value}")
        if self.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps must be >= 0; got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"train.min_lr_ratio must be in [0, 1]; got {self.min_lr_ratio}")
        choices = {"optimizer": ("adamw", "adam", "sgd"), "on_nonfinite": ("stop", "skip"),
                   "precision": ("fp32", "bf16", "fp16", "auto"),
                   "decay": ("cosine", "step", "constant")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"train.{name} must be one of {allowed}; got "
                                 f"{getattr(self, name)!r}")
        if not isinstance(self.progress, bool):  # "no" and 0 were taken as true and false
            raise ValueError(f"train.progress must be true or false; got {self.progress!r}")
        if not isinstance(self.device, str):  # torch.device(None) raised a multi-line error
            raise ValueError(f"train.device must be a device name such as 'cpu' or 'cuda'; got "
                             f"{self.device!r}")
        try:
            device = torch.device(self.device)
        except (RuntimeError, ValueError):
            raise ValueError(f"train.device must be a torch device such as 'cpu' or 'cuda'; got "
                             f"{self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"train.device is {self.device!r} but torch has no CUDA device "
                             f"here; use cpu")
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"train.device must be a CPU or CUDA device; got {self.device!r}")
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise ValueError("train.precision=fp16 needs a CUDA device; use bf16 on the CPU")

    def resolved_precision(self) -> str:
        """``precision`` with "auto" decided for this device: "bf16" on a CPU that multiplies
        bfloat16 natively (AMX-BF16 or AVX512-BF16), else "fp32"."""
        if self.precision != "auto":
            return self.precision
        on_cpu = torch.device(self.device).type == "cpu"
        return "bf16" if on_cpu and cpu_bf16_instructions() else "fp32"


class StepOutput(NamedTuple):
    loss: torch.Tensor  #: scalar, mean over the batch's tokens or samples
    carry: Any  #: state handed to the next batch (None when nothing is carried)
    count: int  #: tokens or samples in the batch, for the rate


#: signals that stop a run as Ctrl-C does: the step ends, a checkpoint is saved, fit returns
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """Raised by a task whose run a stop signal ended after its checkpoint was saved;
    ``exit_status`` is the shell's for that signal (130 for Ctrl-C, 143 for SIGTERM),
    ``checkpoint`` the folder saved (to resume from), where known, and ``result`` the
    trainer's :class:`TrainResult` up to the stop, where known."""

    def __init__(self, stop_signal: int | None, checkpoint: str | None = None,
                 result: "TrainResult | None" = None):
        super().__init__()
        self.stop_signal = int(stop_signal or signal.SIGINT)
        self.exit_status = 128 + self.stop_signal
        self.checkpoint = checkpoint
        self.result = result


@contextlib.contextmanager
def evaluating(model: torch.nn.Module):
    """no_grad and eval mode (dropout off), with the model's training flag restored after: for
    validation, scoring and generating, whose results must not depend on dropout's draws."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN or infinite and the run was stopped."""


@dataclass
class TrainResult:
    status: str  #: "completed", "time budget", "early stopping" or "interrupted"
    steps: int
    epochs: float
    seconds: float
    best_step: int | None
    best_validation: dict | None
    last_validation: dict | None
    skipped_steps: int
    run_dir: str
    history: list = field(default_factory=list, repr=False)
    curves: str | None = None  #: the curves PNG, None when none was written (no matplotlib)
    #: the signal that stopped an interrupted run (SIGINT: Ctrl-C; SIGTERM: kill, a scheduler)
    stop_signal: int | None = None

    def progress(self) -> dict:
        """The run's progress as the tasks' results and ``--json`` documents report it."""
        return {"steps": self.steps, "epochs": round(self.epochs, 3),
                "train_seconds": round(self.seconds, 1), "best_step": self.best_step,
                "validation": self.best_validation}


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=config.learning_rate, weight_decay=config.weight_decay)


class Trainer:
    def __init__(self, model: nn.Module, config: TrainConfig, *, batches, loss_fn: Callable,
                 evaluate_fn: Callable[[nn.Module], dict], run_dir: str | Path,
                 meta: dict | None = None, state_types: dict[str, type] | None = None,
                 notify: Callable[[str], None] | None = None,
                 resume_hint: str | Path | None = None) -> None:
        _check_parts(config, batches, loss_fn, evaluate_fn)
        config.check()
        self.config = config
        self.model = model.to(config.device)
        self.batches = batches
        self.loss_fn = loss_fn
        self.evaluate_fn = evaluate_fn
        self.run_dir = Path(run_dir)
        # what the interrupt message tells the user to --resume: the run, where this Trainer
        # trains one part of it (a backtest fold)
        self.resume_hint = Path(resume_hint) if resume_hint is not None else self.run_dir
        self.meta = meta or {}
        self.state_types = state_types or {}
        self.notify = notify or log.info
        self.optimizer = build_optimizer(model, config)
        self.schedule = LearningRateSchedule(
            config.learning_rate, config.warmup_steps, config.decay, config.min_lr_ratio)
        if config.max_steps is not None and config.warmup_steps >= config.max_steps > 0:
            # a short run with a task's default warmup (the LM's is 200 steps): legitimate for
            # a quick try, but the rate it trains at is not the one the user set
            top = self.schedule(config.max_steps - 1, 1.0) / config.learning_rate
            warn_once(log, ("warmup", config.warmup_steps, config.max_steps),
                      "train.warmup_steps = %d is not below train.max_steps = %d: the learning "
                      "rate only climbs, to %.0f%% of train.learning_rate on the last step; "
                      "lower it (--set train.warmup_steps=0) for a short run",
                      config.warmup_steps, config.max_steps, 100 * top)
        self.precision = config.resolved_precision()
        self.scaler = (torch.amp.GradScaler("cuda") if self.precision == "fp16" else None)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        # Progress of the run; everything here goes into every checkpoint.
        self.step = 0
        self.elapsed = 0.0
        self.carry = None
        self.best_loss = math.inf
        self.best_step: int | None = None
        self.best_validation: dict | None = None
        self.last_validation: dict | None = None
        self.last_eval_step: int | None = None
        self.evals_since_best = 0
        self.skipped_steps = 0
        self.skipped_in_a_row = 0
        # Sums over the steps since the last training-metrics record; saved, so that the first
        # record after a resume averages the same steps as in an uninterrupted run.
        # steps: optimizer steps in the log window; norm_steps: those with a finite gradient
        # norm (a loss scaler's overflow steps have an infinite one and are skipped by it)
        self.window = {"loss": 0.0, "grad_norm": 0.0, "steps": 0, "norm_steps": 0}
        self._interrupted = False
        self.stop_signal: int | None = None  # what interrupted the last fit()
        seed_everything(config.seed)

    # --- checkpoints ------------------------------------------------------------------------

    def _train_state(self) -> dict:
        return {
            "step": self.step, "elapsed": self.elapsed, "carry": self.carry,
            "best_loss": self.best_loss, "best_step": self.best_step,
            "best_validation": self.best_validation, "last_validation": self.last_validation,
            "last_eval_step": self.last_eval_step, "evals_since_best": self.evals_since_best,
            "skipped_steps": self.skipped_steps, "skipped_in_a_row": self.skipped_in_a_row,
            "window": dict(self.window),
            "optimizer": self.optimizer.state_dict(), "batches": self.batches.state_dict(),
            "rng": capture_rng_state(), "train_config": asdict(self.config),
            # fp16's loss scale: restarting it at 2^16 would replay the overflow-skipped steps
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
        }

    def save(self, *, best: bool = False) -> Path:
        return save_checkpoint(self.run_dir, self.step, model_state=self.model.state_dict(),
                               train_state=self._train_state(), meta=self.meta, best=best,
                               keep_last=self.config.keep_last)

    def resume(self, path: str | Path | None = None) -> int:
        """Continue from the last intact checkpoint in ``path`` (default: this run's folder), or
        from one step folder, which may not be older than this run's newest checkpoint."""
        checkpoint = load_checkpoint(path or self.run_dir, which="last",
                                     namedtuples=self.state_types)
        named_folder = path is not None and Path(path).resolve() == checkpoint.path.resolve()
        if named_folder:
            self._refuse_a_rewind(checkpoint.path)  # one checkpoint, named by its folder
        checkpoint.load_model(self.model)
        state = checkpoint.train_state
        self._load_optimizer_state(state, checkpoint.path)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.batches.load_state_dict(state["batches"])
        restore_rng_state(state["rng"])
        self.carry = state["carry"]
        if self.carry is not None:
            self.carry = torch.utils._pytree.tree_map(
                lambda t: t.to(self.config.device) if isinstance(t, torch.Tensor) else t,
                self.carry)
        for name in ("step", "elapsed", "best_loss", "best_step", "best_validation",
                     "last_validation", "last_eval_step", "evals_since_best",
                     "skipped_steps"):
            setattr(self, name, state[name])
        # absent from checkpoints written before 2026-12-04
        self.skipped_in_a_row = state.get("skipped_in_a_row", 0)
        self.window = dict(state.get("window", self.window))
        self.window.setdefault("norm_steps", self.window["steps"])  # before 2026-12-05
        self.metrics.truncate_after(self.step, train_record_pending=self.window["steps"] > 0)
        if not named_folder and checkpoint.path.parent.parent.resolve() == self.run_dir.resolve():
            # Newer checkpoints of this run were skipped as unreadable (damaged, or written by
            # a newer rnnkit): keep them from this run's saves of the same steps, which would
            # replace them, and from pruning. Done last, once nothing above refused the resume.
            for skipped, aside in set_aside_newer_checkpoints(self.run_dir, checkpoint.step):
                log.warning("moved the checkpoint %s, which could not be loaded, aside to %s; "
                            "this run saves its own %s", skipped, aside.name, skipped.name)
        if self.best_step is not None:
            # A crash between a checkpoint's rename and the index update (or a damaged index)
            # leaves the index naming an older best, which pruning would then keep instead.
            mark_best(checkpoint.path.parent.parent, self.best_step)
        return self.step

    def _refuse_a_rewind(self, chosen: Path) -> None:
        """A checkpoint named by its step folder, older than the newest one in this run's
        folder: training on from it would save a second history beside the first, and a
        later resume of the run would load the first's newer checkpoint and jump back to it
        (its metrics cut at the older step). The run's folder itself (its newest intact
        checkpoint, older ones only where newer are damaged) is always fine."""
        folder = self.run_dir / CHECKPOINTS
        if chosen.parent.resolve() != folder.resolve():
            return
        newer = [p.name for p in checkpoint_folders(folder)
                 if checkpoint_step(p) > checkpoint_step(chosen)]
        if newer:
            raise ValueError(f"checkpoint {chosen.name} is older than this run's newest, "
                             f"{newer[-1]}: training on from it would leave two histories in "
                             f"{self.run_dir}; resume from the run folder itself, or start a "
                             f"new run")

    def _load_optimizer_state(self, state: dict, path: Path) -> None:
        """The saved moments and step counts, with this config's settings (the guide: flags
        given with --resume override the stored config); another optimizer is refused."""
        saved = (state.get("train_config") or {}).get("optimizer", self.config.optimizer)
        if saved != self.config.optimizer:
            raise ValueError(f"train.optimizer was {saved!r} in the run of {path}, now "
                             f"{self.config.optimizer!r}; its saved state fits only {saved!r}: "
                             f"drop that change, or start a new run with --out")
        self.optimizer.load_state_dict(state["optimizer"])
        # load_state_dict also restores every hyperparameter of the saved param groups.
        settings = {"weight_decay": self.config.weight_decay}
        if self.config.optimizer == "sgd":
            settings["momentum"] = self.config.momentum
        for group in self.optimizer.param_groups:
            group.update(settings)

    # --- the loop ---------------------------------------------------------------------------

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(torch.device(self.config.device).type, dtype=dtype)

    def _progress_fraction(self) -> float:
        fractions = [0.0]
        if self.config.max_steps:
            fractions.append(self.step / self.config.max_steps)
        if self.config.max_epochs:
            fractions.append(self.batches.epochs_done / self.config.max_epochs)
        if self.config.minutes:
            fractions.append(self.elapsed / (60.0 * self.config.minutes))
        return min(max(fractions), 1.0)

    def _reached_limit_name(self) -> str:
        """The setting whose limit :meth:`_limit_reached` found reached, as a user sets it."""
        config = self.config
        if config.max_steps is not None and self.step >= config.max_steps:
            return f"its step limit (--steps, train.max_steps = {config.max_steps})"
        if config.max_epochs is not None and self.batches.epochs_done >= config.max_epochs:
            return f"its epoch limit (train.max_epochs = {config.max_epochs})"
        if config.minutes is not None and self.elapsed >= 60.0 * config.minutes:
            return f"its time budget (--minutes {config.minutes:g})"
        return f"early stopping (train.patience = {config.patience})"

    def _limit_reached(self) -> str | None:
        config = self.config
        if config.max_steps is not None and self.step >= config.max_steps:
            return "completed"
        if config.max_epochs is not None and self.batches.epochs_done >= config.max_epochs:
            return "completed"
        if config.minutes is not None and self.elapsed >= 60.0 * config.minutes:
            return "time budget"
        # a run that stopped early (or was interrupted in the evaluation that stops it) stays
        # stopped when resumed, as it would have without the interruption
        if config.patience is not None and self.evals_since_best >= config.patience:
            return "early stopping"
        return None

    def _nonfinite(self, what: str, value: float) -> bool:
        """Handle a NaN/Inf loss or gradient; True when the step is to be skipped."""
        lr = self.optimizer.param_groups[0]["lr"]
        if self.config.on_nonfinite == "skip":
            self.skipped_steps += 1
            self.skipped_in_a_row += 1
            # A skipped step does not count towards train.max_steps, so a run whose every step
            # fails would skip forever.
            if self.skipped_in_a_row >= MAX_SKIPS_IN_A_ROW:
                raise NonFiniteLossError(
                    f"the {what} was {value} at {MAX_SKIPS_IN_A_ROW} steps in a row up to step "
                    f"{self.step + 1} (learning rate {lr:.3g}); the run stopped, "
                    f"{self._checkpoints_left()}; lower train.learning_rate or train.clip_norm")
            self.optimizer.zero_grad(set_to_none=True)
            self.carry = None  # the carried state may be what went wrong
            log.warning("step %d: %s is %s; step skipped (%d so far)", self.step + 1, what,
                        value, self.skipped_steps)
            return True
        raise NonFiniteLossError(
            f"the {what} became {value} at step {self.step + 1} (learning rate {lr:.3g}); the "
            f"run stopped, {self._checkpoints_left()}; lower train.learning_rate or "
            f"train.clip_norm, or set train.on_nonfinite=skip"
        )

    def _checkpoints_left(self) -> str:
        folder = self.run_dir / "checkpoints"
        if folder.is_dir() and any(folder.glob("step-*")):
            return f"its last good checkpoint in {folder} is untouched"
        return "before its first checkpoint"

    def _train_step(self, batch, progress: float) -> tuple[float, float, int] | None:
        """One optimizer step on ``batch``, at the rate of ``progress``: the fraction of the
        run done before this step (taken before the batch was drawn, which counts as part of
        an epoch)."""
        model, optimizer = self.model, self.optimizer
        lr = self.schedule(self.step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with self._autocast():
            output = self.loss_fn(model, batch, self.carry)
        if not all(hasattr(output, field) for field in StepOutput._fields):
            # by its fields, not its class: a StepOutput from before a module reload is one
            raise TypeError(f"loss_fn must return a StepOutput(loss, carry, count); got "
                            f"{type(output).__name__}")
        loss = float(output.loss.detach())
        if not math.isfinite(loss):
            if self._nonfinite("training loss", loss):
                return None
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(output.loss).backward()
            self.scaler.unscale_(optimizer)
        else:
            output.loss.backward()
        norm = clip_gradients(model.parameters(), self.config.clip_norm)
        if not math.isfinite(norm) and self.scaler is None:
            if self._nonfinite("gradient norm", norm):
                return None
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        self.carry = detach_state(output.carry)
        self.step += 1
        self.skipped_in_a_row = 0
        return loss, norm, output.count

    def _evaluate(self) -> dict:
        start = time.perf_counter()
        with evaluating(self.model):
            returned = self.evaluate_fn(self.model)
        if not isinstance(returned, Mapping):
            try:  # (name, value) pairs, which dict() takes, as it took them before
                returned = dict(returned)
            except (TypeError, ValueError):
                pass
        if not isinstance(returned, Mapping) or "loss" not in returned:
            got = (type(returned).__name__ if not isinstance(returned, Mapping)
                   else f"a dict of {', '.join(map(repr, returned)) or 'nothing'}")
            raise TypeError(f"evaluate_fn must return a dict with a 'loss' entry, such as "
                            f"{{'loss': 1.25}}; got {got}")
        metrics = {name: _plain_number(value) for name, value in returned.items()}
        if not isinstance(metrics["loss"], (int, float)) or isinstance(metrics["loss"], bool):
            raise TypeError(f"evaluate_fn's 'loss' must be a number; got "
                            f"{type(metrics['loss']).__name__}")
        for name, value in metrics.items():
            # checked before the metrics log is written: json failed on a tensor of several
            # values after the line had begun
            if not isinstance(name, str) or not _loggable(value):
                raise TypeError(f"evaluate_fn's entry {name!r} must be named by a string and "
                                f"be a number, text or a list of them (a one-value tensor is "
                                f"taken as its number); got {_kind_of(value)}")
        self.metrics.write({"split": "validation", "step": self.step,
                            "epoch": round(self.batches.epochs_done, 4),
                            "elapsed": round(self.elapsed, 2), **metrics})
        if not math.isfinite(metrics["loss"]):
            # The weights themselves diverged: no skipping helps, and saving them would make
            # them the checkpoint a resume loads (and prune good ones). Either policy stops.
            raise NonFiniteLossError(
                f"the validation loss became {metrics['loss']} at step {self.step} (the weights "
                f"diverged); the run stopped, {self._checkpoints_left()}; lower "
                f"train.learning_rate or train.clip_norm")
        self.last_validation, self.last_eval_step = metrics, self.step
        improved = metrics["loss"] < self.best_loss
        if improved:
            self.best_loss, self.best_step, self.best_validation = metrics["loss"], self.step, metrics
            self.evals_since_best = 0
        else:
            self.evals_since_best += 1
        # count the evaluation's time before saving, so a run resumed from this checkpoint
        # does not get it back as budget
        saving = time.perf_counter()
        self.elapsed += saving - start
        self.save(best=improved)
        # the save's own time cannot be in the checkpoint it writes, but it is this run's time
        self.elapsed += time.perf_counter() - saving
        return metrics

    def _log_window(self, progress: Progress, rate: float) -> None:
        """Write the training record of the steps since the last one and start a new window."""
        window = self.window
        record = {"split": "train", "step": self.step,
                  "epoch": round(self.batches.epochs_done, 4),
                  "loss": window["loss"] / window["steps"],
                  "grad_norm": (window["grad_norm"] / window["norm_steps"]
                                if window["norm_steps"] else None),
                  "lr": self.optimizer.param_groups[0]["lr"],
                  "per_second": round(rate, 1), "elapsed": round(self.elapsed, 2)}
        if window["norm_steps"] < window["steps"]:
            record["overflow_steps"] = window["steps"] - window["norm_steps"]
        self.metrics.write(record)
        progress.update(fraction=self._progress_fraction(), step=self.step,
                        loss=f"{record['loss']:.3f}", rate=f"{rate:,.0f}/s")
        window.update(loss=0.0, grad_norm=0.0, steps=0, norm_steps=0)

    def _on_interrupt(self, signum, frame) -> None:
        if self._interrupted:  # a second Ctrl-C (or SIGTERM): the user wants out now
            raise RunInterrupted(signum)
        self._interrupted = True
        self.stop_signal = signum

    def fit(self) -> TrainResult:
        """Train until a limit is reached, Ctrl-C, or early stopping; returns the summary."""
        config = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        check_checkpoint_folder(self.run_dir, after_step=self.step)
        in_main_thread = threading.current_thread() is threading.main_thread()
        # SIGTERM as Ctrl-C: kill, timeout, Slurm, Kubernetes and systemd stop jobs with it
        previous_handlers = {number: signal.signal(number, self._on_interrupt)
                             for number in STOP_SIGNALS} if in_main_thread else {}
        progress = Progress(start_fraction=self._progress_fraction(), enabled=config.progress)
        self.model.train()
        self._interrupted = False  # a second fit() after a Ctrl-C continues the run
        self.stop_signal = None
        status = None
        window = self.window
        window_count = 0  # characters or samples since window_start, for the rate
        window_start = clock = time.perf_counter()
        if self._limit_reached() and self.step > 0:
            # a resumed run already at its limit is scored again but trains nothing: say so,
            # or "completed after N steps" reads as if --steps had been taken
            self.notify(f"nothing to train: the run is at step {self.step}, where "
                        f"{self._reached_limit_name()} is already reached; raise it to train on")
        try:
            while True:
                status = self._limit_reached()
                if status or self._interrupted:
                    break
                # progress before the draw: with max_epochs, drawing the window counts it as
                # done, and the step's rate would be one window ahead (as with max_steps, the
                # first step runs at the peak rate, or warmup's first)
                done = self._progress_fraction()
                outcome = self._train_step(next(self.batches), done)
                now = time.perf_counter()
                self.elapsed += now - clock
                clock = now
                if outcome is None:
                    continue
                loss, norm, count = outcome
                window["loss"] += loss
                if math.isfinite(norm):  # else a loss scaler's overflow step: not averaged
                    window["grad_norm"] += norm
                    window["norm_steps"] += 1
                window["steps"] += 1
                window_count += count
                if self.step % config.log_every == 0 or self.step == config.max_steps:
                    self._log_window(progress, window_count / max(now - window_start, 1e-9))
                    window_count, window_start = 0, now
                if self.step % config.eval_every == 0:
                    metrics = self._evaluate()
                    progress.write(f"step {self.step}: validation " + ", ".join(
                        f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
                    clock = time.perf_counter()  # _evaluate added its time to elapsed
                    # the evaluation's time is not training time: shift the window's start by
                    # it, keeping the window's count (resetting the start alone overstated the
                    # rate when eval_every is not a multiple of log_every)
                    window_start += clock - now
                    if config.patience is not None and self.evals_since_best >= config.patience:
                        status = "early stopping"
                        break
            if window["steps"] and not self._interrupted:
                # The steps since the last record, when an epoch or time limit or early
                # stopping ended the run (an interrupted run keeps them for its resume).
                now = time.perf_counter()
                self._log_window(progress, window_count / max(now - window_start, 1e-9))
                if self.last_eval_step == self.step:  # saved with the window: save it emptied
                    self.save(best=self.best_step == self.step)
            if not self._interrupted and self.last_eval_step != self.step:
                self._evaluate()  # the last step's validation, and its checkpoint
            # Read after the final validation and saves, not before: a Ctrl-C during them
            # (a whole validation pass when a time limit ends the run between evaluations)
            # only set the flag, and the run went on to its test score.
            if self._interrupted:
                status = "interrupted"
                if self.last_eval_step != self.step:  # else this very step is saved already
                    self.save()
        finally:
            progress.close()
            for number, handler in previous_handlers.items():
                signal.signal(number, handler)
        if self._interrupted:  # also one that came while the progress bar closed
            status = "interrupted"
            how = "" if self.stop_signal in (None, signal.SIGINT) else \
                f" by {signal.Signals(self.stop_signal).name}"
            self.notify(f"interrupted{how} at step {self.step}; checkpoint saved, continue "
                        f"with --resume {self.resume_hint}")
        history = self.metrics.read()
        try:
            curves = plot_curves(history, self.run_dir / CURVES_FILE,
                                 title=str(self.meta.get("title", "")))
        except OSError as error:
            # The picture is a view of metrics.jsonl: a run whose checkpoints are saved is not
            # failed for it (the task would then skip its test score and sample).
            log.warning("could not write %s (%s); the run's checkpoints and metrics are saved "
                        "(free that path for the picture next time)",
                        self.run_dir / CURVES_FILE, error.strerror or error)
            curves = None
        return TrainResult(
            status=status, steps=self.step, epochs=self.batches.epochs_done,
            seconds=self.elapsed, best_step=self.best_step, best_validation=self.best_validation,
            last_validation=self.last_validation, skipped_steps=self.skipped_steps,
            run_dir=str(self.run_dir), history=history,
            curves=None if curves is None else str(curves),
            stop_signal=self.stop_signal if status == "interrupted" else None,
        )
