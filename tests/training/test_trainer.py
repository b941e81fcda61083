"""The Trainer on a model-agnostic toy problem: limits, early stopping, best checkpoint, clipping.

The LM task tests cover resume, Ctrl-C and non-finite losses end to end; here the oracles are
scripted validation losses (so the right stopping step and best step are known in advance) and
plain SGD arithmetic (so the effect of clipping on one update can be computed by hand).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys

import pytest
import torch
from torch import nn

from rnnkit.training import StepOutput, TrainConfig, Trainer, load_checkpoint


class Samples:
    """An endless stream of regression batches with the interface the Trainer needs."""

    def __init__(self, batch: int = 8) -> None:
        self.batch, self.index = batch, 0

    @property
    def epochs_done(self) -> float:
        return self.index / 10

    def __next__(self):
        generator = torch.Generator().manual_seed(self.index)
        self.index += 1
        x = torch.randn(self.batch, 3, generator=generator)
        return x, x.sum(dim=1, keepdim=True)

    def state_dict(self) -> dict:
        return {"index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.index = state["index"]


def regression_loss(model, batch, carry) -> StepOutput:
    x, y = batch
    return StepOutput(nn.functional.mse_loss(model(x), y), None, x.size(0))


def make_trainer(tmp_path, validation_losses=None, **settings) -> Trainer:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    scripted = iter(validation_losses) if validation_losses is not None else None

    def evaluate(m):
        if scripted is not None:
            return {"loss": next(scripted)}
        x = torch.randn(64, 3, generator=torch.Generator().manual_seed(999))
        return {"loss": nn.functional.mse_loss(m(x), x.sum(1, keepdim=True)).item()}

    config = TrainConfig(**{"max_steps": 30, "eval_every": 5, "log_every": 5,
                            "warmup_steps": 0, "progress": False, **settings})
    return Trainer(model, config, batches=Samples(), loss_fn=regression_loss,
                   evaluate_fn=evaluate, run_dir=tmp_path / "run")


def test_step_limit_and_the_loss_goes_down(tmp_path):
    trainer = make_trainer(tmp_path, learning_rate=0.05)
    result = trainer.fit()
    assert result.status == "completed" and result.steps == 30
    history = [r for r in result.history if r["split"] == "validation"]
    assert [r["step"] for r in history] == [5, 10, 15, 20, 25, 30]
    assert history[-1]["loss"] < history[0]["loss"] / 2


@pytest.mark.parametrize("policy", ["stop", "skip"])
@pytest.mark.parametrize("bad", [math.inf, math.nan], ids=["inf", "nan"])
def test_a_non_finite_validation_loss_stops_the_run_and_saves_nothing(tmp_path, policy, bad):
    """Diverged weights scored inf at an evaluation were saved as the newest checkpoint (the
    one --resume loads; keep_last pruned the good ones), and metrics.jsonl got a bare
    Infinity. Oracle: the checkpoint of the evaluation before, and strict JSON."""
    from rnnkit.training import NonFiniteLossError

    trainer = make_trainer(tmp_path, validation_losses=[1.0, 0.5, bad], keep_last=1,
                           on_nonfinite=policy)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    message = str(info.value)
    assert "\n" not in message and "validation loss became" in message
    assert "last good checkpoint" in message and "is untouched" in message
    assert load_checkpoint(tmp_path / "run").step == 10
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()

    def refuse(constant):
        raise ValueError(f"bare {constant}")

    records = [json.loads(line, parse_constant=refuse) for line in lines]
    assert [r["loss"] for r in records if r["split"] == "validation"] == [1.0, 0.5, None]


def test_epoch_limit(tmp_path):
    result = make_trainer(tmp_path, max_steps=None, max_epochs=1.5).fit()
    assert result.steps == 15  # Samples counts 10 batches per epoch


def test_early_stopping_after_patience_evaluations_without_improvement(tmp_path):
    losses = [1.0, 0.5, 0.6, 0.7, 0.4, 0.9]  # best at the 2nd eval; 2 worse ones follow
    result = make_trainer(tmp_path, validation_losses=losses, patience=2).fit()
    assert result.status == "early stopping"
    assert result.steps == 20 and result.best_step == 10
    assert result.best_validation == {"loss": 0.5}
    assert load_checkpoint(tmp_path / "run", which="best").step == 10
    assert load_checkpoint(tmp_path / "run", which="last").step == 20


def test_clipping_bounds_the_update_of_plain_sgd(tmp_path):
    """With SGD (lr 1, no momentum, no decay) one step moves the weights by exactly the clipped
    gradient, whose norm is clip_norm when the raw gradient is larger."""
    trainer = make_trainer(tmp_path, optimizer="sgd", learning_rate=1.0, momentum=0.0,
                           weight_decay=0.0, clip_norm=0.01, decay="constant", max_steps=1)
    before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    result = trainer.fit()
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    record = next(r for r in result.history if r["split"] == "train")
    assert record["grad_norm"] > 0.01  # the raw gradient was larger: clipping had to act
    assert (after - before).norm().item() == pytest.approx(0.01, rel=1e-4)


def test_learning_rate_follows_the_warmup_and_cosine_schedule(tmp_path):
    trainer = make_trainer(tmp_path, learning_rate=0.1, warmup_steps=5, log_every=1,
                           min_lr_ratio=0.0, max_steps=20)
    records = [r for r in trainer.fit().history if r["split"] == "train"]
    for record in records:
        step = record["step"] - 1  # the lr used by optimizer step `step` (0-based)
        if step < 5:
            expected = 0.1 * (step + 1) / 5
        else:
            expected = 0.05 * (1 + math.cos(math.pi * step / 20))
        assert record["lr"] == pytest.approx(expected), record


@pytest.mark.parametrize("warmup, warned", [(40, True), (30, True), (29, False), (0, False)])
def test_a_warmup_the_step_limit_cuts_short_is_warned_about(tmp_path, caplog, warmup, warned):
    """`rnnkit train lm --steps 3` kept the LM's 200 warmup steps and trained at 4.5e-05
    against a rate of 3e-3, without a word. Oracle: the rates the run logged, whose largest
    is the share of train.learning_rate the warning names."""
    import logging

    with caplog.at_level(logging.WARNING, logger="rnnkit.training"):
        trainer = make_trainer(tmp_path, learning_rate=0.1, warmup_steps=warmup, log_every=1)
    messages = [r.getMessage() for r in caplog.records if "warmup_steps" in r.getMessage()]
    assert len(messages) == warned
    rates = [r["lr"] for r in trainer.fit().history if r["split"] == "train"]
    if warned:
        share = round(100 * max(rates) / 0.1)
        assert f"train.warmup_steps = {warmup} is not below train.max_steps = 30" in messages[0]
        assert f"only climbs, to {share}% of train.learning_rate" in messages[0]
        assert rates == sorted(rates)  # it only climbs
    else:
        assert max(rates) == pytest.approx(0.1)


def test_an_epoch_limited_schedule_counts_the_epochs_done_before_each_step(tmp_path):
    """The rate's progress was read after the step's batch was drawn, which counts as part of
    an epoch: every step ran one batch ahead, the first below the peak. Oracle: the cosine of
    the epochs done before the step (Samples: 10 batches per epoch), as max_steps does it."""
    trainer = make_trainer(tmp_path, learning_rate=0.1, log_every=1, min_lr_ratio=0.0,
                           max_steps=None, max_epochs=2.0)
    records = [r for r in trainer.fit().history if r["split"] == "train"]
    assert len(records) == 20
    for record in records:
        epochs_before = (record["step"] - 1) / 10
        expected = 0.05 * (1 + math.cos(math.pi * epochs_before / 2.0))
        assert record["lr"] == pytest.approx(expected), record


def test_a_run_needs_a_limit_and_valid_choices():
    with pytest.raises(ValueError, match="set a limit"):
        TrainConfig().check()
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(max_steps=1, optimizer="lbfgs").check()
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        TrainConfig(max_steps=1, precision="fp16").check()
    with pytest.raises(ValueError, match="minutes must be a finite number > 0"):
        TrainConfig(minutes=0).check()
    # inf passed as a limit and never ended the run (nor annealed the learning rate)
    for key in ("minutes", "max_epochs"):
        with pytest.raises(ValueError, match=f"train.{key} must be a finite number > 0"):
            TrainConfig(**{key: math.inf}).check()


@pytest.mark.parametrize("key,value,message", [
    ("learning_rate", float("nan"), "train.learning_rate must be a number > 0 and at most 1e30"),
    ("learning_rate", float("inf"), "train.learning_rate must be a number > 0 and at most 1e30"),
    ("learning_rate", 0.0, "train.learning_rate must be a number > 0 and at most 1e30"),
    # Adam's step size lr / (1 - beta1) overflowed float32 in torch with a traceback
    ("learning_rate", 1e38, "train.learning_rate must be a number > 0 and at most 1e30"),
    ("weight_decay", -0.1, "train.weight_decay must be a finite number >= 0"),
    ("weight_decay", float("nan"), "train.weight_decay must be a finite number >= 0"),
    ("momentum", float("inf"), r"train.momentum must be a number in \[0, 1\)"),
    # SGD's velocity grows without bound from 1 (probe, 2026-12-08)
    ("momentum", 5.0, r"train.momentum must be a number in \[0, 1\); got 5.0"),
    ("momentum", 1.0, r"train.momentum must be a number in \[0, 1\); got 1.0"),
    ("clip_norm", 0.0, "train.clip_norm must be a finite number > 0, or None"),
    ("clip_norm", float("nan"), "train.clip_norm must be a finite number > 0, or None"),
])
def test_non_finite_or_out_of_range_numbers_are_refused(key, value, message):
    TrainConfig(max_steps=1).check()  # the defaults pass
    with pytest.raises(ValueError, match=message):
        TrainConfig(max_steps=1, **{key: value}).check()


@pytest.mark.parametrize("key,value,message", [
    # accepted: the rate rose past its peak (0.04, 0.08, 0.12 for a peak of 0.1)
    ("warmup_steps", 2.5, r"^train.warmup_steps must be a whole number; got 2.5$"),
    # accepted: step < nan is always False, so warmup was off
    ("warmup_steps", float("nan"), r"^train.warmup_steps must be a whole number; got nan$"),
    # passed the check, then failed at the first checkpoint (a slice index)
    ("keep_last", 1.5, r"^train.keep_last must be a whole number; got 1.5$"),
    ("max_steps", "10", r"^train.max_steps must be a whole number \(or None\); got '10'$"),
    ("seed", 1.5, r"^train.seed must be a whole number; got 1.5$"),
    ("eval_every", True, r"^train.eval_every must be a whole number; got True$"),
    ("learning_rate", "0.1", r"^train.learning_rate must be a number; got '0.1'$"),
    ("minutes", "5", r"^train.minutes must be a number \(or None\); got '5'$"),
    # accepted as true or false, and torch.device(None)'s multi-line TypeError (probe,
    # 2026-12-08)
    ("progress", "no", r"^train.progress must be true or false; got 'no'$"),
    ("progress", 0, r"^train.progress must be true or false; got 0$"),
    ("device", None, r"^train.device must be a device name such as 'cpu' or 'cuda'; got None$"),
])
def test_values_of_the_wrong_type_are_refused_naming_the_key(key, value, message):
    """From the Python API (config files and --set are typed already), review 2026-12-06.
    Oracle: the setting's documented type."""
    settings = {"max_steps": 3, key: value}
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings).check()
    import numpy as np

    TrainConfig(max_steps=np.int64(3), warmup_steps=np.int64(1), minutes=np.float32(1.5),
                learning_rate=np.float64(1e-3)).check()  # NumPy's numbers are numbers


@pytest.mark.parametrize("key,value,message", [
    # "(or None)" was offered for settings that have no off value (None is then refused)
    ("eval_every", 0, r"^train.eval_every must be a finite number > 0; got 0$"),
    ("keep_last", 0, r"^train.keep_last must be a finite number > 0; got 0$"),
    ("patience", 0, r"^train.patience must be a finite number > 0 \(or None\); got 0$"),
    # the schedule named these without their section ("decay" is also dynamic.decay in lm)
    ("decay", "linear", r"^train.decay must be one of \('cosine', 'step', 'constant'\)"),
    ("warmup_steps", -1, r"^train.warmup_steps must be >= 0; got -1$"),
    ("min_lr_ratio", float("nan"), r"^train.min_lr_ratio must be in \[0, 1\]; got nan$"),
])
def test_the_error_names_the_setting_in_its_section_and_offers_none_only_where_allowed(
        key, value, message):
    from rnnkit.training.config import ConfigError, resolve_config

    with pytest.raises(ValueError, match=message):
        TrainConfig(max_steps=1, **{key: value}).check()
    if key in ("eval_every", "keep_last"):
        with pytest.raises(ConfigError, match="cannot be null"):  # as the message implies
            resolve_config(TrainConfig, overrides=[f"{key}=null"])


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_the_largest_learning_rate_allowed_is_one_torch_can_step_with(optimizer):
    TrainConfig(max_steps=1, learning_rate=1e30, optimizer=optimizer).check()
    weight = torch.nn.Parameter(torch.ones(3))
    weight.grad = torch.ones(3)
    make = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam,
            "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9)}[optimizer]
    make([weight], lr=1e30).step()  # raised "cannot be converted to type float" from ~1e38 on


def test_auto_precision_is_bf16_exactly_on_a_cpu_with_native_bf16(monkeypatch):
    from rnnkit.training import trainer as trainer_module

    for instructions, expected in (("amx_bf16", "bf16"), ("avx512_bf16", "bf16"), ("", "fp32")):
        monkeypatch.setattr(trainer_module, "cpu_bf16_instructions", lambda: instructions)
        assert TrainConfig(max_steps=1, precision="auto").resolved_precision() == expected
    # Named precisions and other devices are not touched by the CPU check.
    assert TrainConfig(max_steps=1, precision="fp32").resolved_precision() == "fp32"
    assert TrainConfig(max_steps=1, precision="auto",
                       device="cuda").resolved_precision() == "fp32"


def test_skipping_nonfinite_steps_stops_when_every_step_fails(tmp_path):
    """A skipped step does not count towards max_steps, so a run whose every step is non-finite
    ran forever under on_nonfinite="skip"; after MAX_SKIPS_IN_A_ROW it stops with the reason."""
    from rnnkit.training import NonFiniteLossError
    from rnnkit.training.trainer import MAX_SKIPS_IN_A_ROW

    trainer = make_trainer(tmp_path, on_nonfinite="skip")
    trainer.loss_fn = lambda model, batch, carry: StepOutput(
        model(batch[0]).sum() * math.inf, None, 1)
    with pytest.raises(NonFiniteLossError,
                       match=rf"^the training loss was -?inf at {MAX_SKIPS_IN_A_ROW} steps in "
                             rf"a row up to step 1 .*the run stopped, before its first checkpoint"):
        trainer.fit()
    assert trainer.skipped_steps == MAX_SKIPS_IN_A_ROW and trainer.step == 0
    assert trainer.batches.index == MAX_SKIPS_IN_A_ROW


def test_skipped_steps_in_a_row_restart_after_a_good_step(tmp_path):
    """Every other step non-finite: never MAX_SKIPS_IN_A_ROW in a row, so the run completes."""
    trainer = make_trainer(tmp_path, on_nonfinite="skip", max_steps=120)
    good = regression_loss

    def every_other_fails(model, batch, carry):
        output = good(model, batch, carry)
        failing = trainer.batches.index % 2 == 0
        return output._replace(loss=output.loss * math.inf) if failing else output

    trainer.loss_fn = every_other_fails
    result = trainer.fit()
    assert result.status == "completed" and result.steps == 120
    assert result.skipped_steps == trainer.batches.index - 120 == 119


def test_train_settings_below_one_are_refused_naming_the_key():
    for key, value in (("patience", 0), ("keep_last", 0), ("keep_last", -3), ("seed", -1)):
        with pytest.raises(ValueError, match=f"train.{key} must be") as info:
            TrainConfig(max_steps=1, **{key: value}).check()
        assert "\n" not in str(info.value)


def test_the_last_partial_window_of_an_epoch_limited_run_is_logged(tmp_path):
    """Oracle: the per-step losses of the same run logged at every step."""
    every = make_trainer(tmp_path / "a", max_steps=None, max_epochs=2.4, log_every=1).fit()
    losses = {r["step"]: r["loss"] for r in every.history if r["split"] == "train"}
    result = make_trainer(tmp_path / "b", max_steps=None, max_epochs=2.4, log_every=7).fit()
    records = [r for r in result.history if r["split"] == "train"]
    assert [r["step"] for r in records] == [7, 14, 21, 24]
    assert records[-1]["loss"] == pytest.approx(sum(losses[s] for s in (22, 23, 24)) / 3)
    # The last checkpoint (saved at step 24's evaluation) has the emptied window, so a resumed
    # run does not count steps 22-24 again.
    assert load_checkpoint(tmp_path / "b" / "run").train_state["window"]["steps"] == 0


def interrupt_at(trainer: Trainer, step: int) -> Trainer:
    """Make ``trainer`` receive Ctrl-C (its SIGINT handler's call) once, before step ``step + 1``."""
    original, sent = trainer.loss_fn, []

    def interrupting(model, batch, carry):
        if trainer.step == step and not sent:
            sent.append(True)
            trainer._on_interrupt(None, None)
        return original(model, batch, carry)

    trainer.loss_fn = interrupting
    return trainer


def test_fit_after_an_interrupt_continues_the_run(tmp_path):
    trainer = interrupt_at(make_trainer(tmp_path, max_steps=12), 6)
    assert trainer.fit().status == "interrupted" and trainer.step == 7
    result = trainer.fit()
    assert result.status == "completed" and result.steps == 12


def test_resume_applies_this_configs_weight_decay_and_refuses_another_optimizer(tmp_path):
    make_trainer(tmp_path, max_steps=10, weight_decay=0.01).fit()
    same = make_trainer(tmp_path / "copy", max_steps=20, weight_decay=0.01)
    same.resume(tmp_path / "run")
    changed = make_trainer(tmp_path / "copy2", max_steps=20, weight_decay=0.5)
    changed.resume(tmp_path / "run")
    assert [g["weight_decay"] for g in changed.optimizer.param_groups] == [0.5]
    # The moments are the saved ones in both; only the decay differs, and so do the weights.
    for a, b in zip(same.optimizer.state.values(), changed.optimizer.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
    same.fit(), changed.fit()
    assert not torch.equal(same.model.weight, changed.model.weight)
    sgd = make_trainer(tmp_path / "copy3", max_steps=20, optimizer="sgd")
    with pytest.raises(ValueError, match="train.optimizer was 'adamw'.*now 'sgd'") as info:
        sgd.resume(tmp_path / "run")
    assert "\n" not in str(info.value)


def test_a_loss_scaler_resumes_with_its_scale(tmp_path):
    """fp16's GradScaler (on CUDA) is saved with the run; a CPU scaler stands in for it here.
    Oracle: the uninterrupted run."""
    def with_scaler(trainer):
        trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 4, growth_interval=2)
        return trainer

    whole = with_scaler(make_trainer(tmp_path / "whole", max_steps=20))
    whole.fit()
    assert with_scaler(interrupt_at(make_trainer(tmp_path, max_steps=20), 9)).fit().steps == 10
    resumed = with_scaler(make_trainer(tmp_path, max_steps=20))
    resumed.resume()
    assert resumed.scaler.get_scale() == 2.0 ** 9  # 10 steps, doubled every 2 from 2^4
    resumed.fit()
    assert resumed.scaler.get_scale() == whole.scaler.get_scale() == 2.0 ** 14
    assert torch.equal(resumed.model.weight, whole.model.weight)


def test_resume_repairs_an_index_that_names_an_older_best(tmp_path):
    """A crash between a checkpoint's rename and the index update leaves the index naming an
    older best; the resumed run must protect (and report) the real one."""
    import json

    losses = [0.7, 0.6, 0.9, 0.95, 0.99, 0.999, 0.9999]  # evals at 5, 10, ...: best at 10
    make_trainer(tmp_path, validation_losses=losses[:2], max_steps=10).fit()
    index_path = tmp_path / "run" / "checkpoints" / "index.json"
    index = json.loads(index_path.read_text())
    assert index["best"] == "step-00000010"
    index_path.write_text(json.dumps({**index, "best": "step-00000005"}))  # the stale index
    resumed = make_trainer(tmp_path, validation_losses=losses[2:], max_steps=30, keep_last=1)
    resumed.resume()
    result = resumed.fit()
    assert result.best_step == 10
    assert load_checkpoint(tmp_path / "run", which="best").step == 10


def test_rate_excludes_evaluation_time_between_log_records(tmp_path, monkeypatch):
    """A fake clock: every step takes 2 s for 10 items (5 items/s) and every evaluation 7 s.
    With evaluations between log records (eval_every not a multiple of log_every) the record
    after one divided the whole window's items by the time since the evaluation alone."""
    import types

    from rnnkit.training import ShuffledBatches
    from rnnkit.training import trainer as trainer_module

    clock = [0.0]
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    model = nn.Linear(2, 1)

    def loss_fn(model, indices, carry):
        clock[0] += 2.0
        return StepOutput(model(torch.ones(len(indices), 2)).pow(2).mean(), None, 10)

    def evaluate_fn(model):
        clock[0] += 7.0
        return {"loss": 1.0}

    config = TrainConfig(max_steps=12, log_every=4, eval_every=6, progress=False,
                         warmup_steps=0)
    Trainer(model, config, batches=ShuffledBatches(100, 5), loss_fn=loss_fn,
            evaluate_fn=evaluate_fn, run_dir=tmp_path, notify=lambda line: None).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    rates = {r["step"]: r["per_second"] for r in records if r["split"] == "train"}
    assert set(rates) == {4, 8, 12}
    for step, rate in rates.items():
        assert rate == pytest.approx(5.0), (step, rate)


def test_a_run_stopped_early_stays_stopped_when_resumed(tmp_path):
    """Ctrl-C in the evaluation that triggers early stopping, or a plain --resume of a run that
    stopped early, used to train on to the next evaluation. Oracle: the uninterrupted run."""
    losses = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9]  # best at step 10; patience 2 stops at step 20
    uninterrupted = make_trainer(tmp_path / "whole", validation_losses=losses, patience=2)
    whole = uninterrupted.fit()
    assert (whole.status, whole.steps) == ("early stopping", 20)

    split = make_trainer(tmp_path, validation_losses=losses, patience=2)
    evaluate = split.evaluate_fn

    def interrupted_at_step_20(model):
        if split.step == 20:
            split._on_interrupt(None, None)
        return evaluate(model)

    split.evaluate_fn = interrupted_at_step_20
    assert split.fit().status == "interrupted"
    resumed = make_trainer(tmp_path, validation_losses=[0.3], patience=2)  # would improve
    resumed.resume()
    result = resumed.fit()
    assert (result.status, result.steps, result.best_step) == ("early stopping", 20, 10)
    assert torch.equal(resumed.model.weight, uninterrupted.model.weight)


def test_a_kill_before_the_final_resave_does_not_log_the_last_record_twice(tmp_path):
    """A run that ends on an evaluation step with steps not yet logged saves that step, writes
    their training record, and saves again. Killed between the two, the checkpoint lacked the
    record the file had, and the resume wrote it a second time. Oracle: the uninterrupted
    run's metrics.jsonl."""
    def records(run_dir):
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k not in ("elapsed", "per_second")}
                for line in lines]

    losses = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9]  # patience 2 stops at step 20, last logged at 14
    whole = make_trainer(tmp_path / "whole", validation_losses=losses, patience=2, log_every=7)
    assert (whole.fit().status, whole.step) == ("early stopping", 20)

    split = make_trainer(tmp_path, validation_losses=losses, patience=2, log_every=7)
    save, saves_of_step_20 = split.save, []

    def killed_at_the_second_save_of_step_20(**kwargs):
        if split.step == 20:
            saves_of_step_20.append(1)
            if len(saves_of_step_20) == 2:
                raise KeyboardInterrupt  # stands in for a kill -9 before the rename
        return save(**kwargs)

    split.save = killed_at_the_second_save_of_step_20
    with pytest.raises(KeyboardInterrupt):
        split.fit()
    resumed = make_trainer(tmp_path, validation_losses=[], patience=2, log_every=7)
    resumed.resume()
    assert (resumed.fit().status, resumed.step) == ("early stopping", 20)
    assert records(tmp_path / "run") == records(tmp_path / "whole" / "run")


def test_a_checkpoint_saved_by_an_evaluation_counts_its_time(tmp_path, monkeypatch):
    """A fake clock: steps take 1 s, the evaluation 5 s. Interrupted during the evaluation, the
    run's checkpoint must hold the evaluation's time, or a resumed run gets it back as budget."""
    import types

    from rnnkit.training import trainer as trainer_module

    clock = [0.0]
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    trainer = make_trainer(tmp_path, max_steps=10, eval_every=4)
    loss_fn, evaluate = trainer.loss_fn, trainer.evaluate_fn

    def one_second(model, batch, carry):
        clock[0] += 1.0
        return loss_fn(model, batch, carry)

    def five_seconds_then_ctrl_c(model):
        clock[0] += 5.0
        trainer._on_interrupt(None, None)
        return evaluate(model)

    trainer.loss_fn, trainer.evaluate_fn = one_second, five_seconds_then_ctrl_c
    assert trainer.fit().status == "interrupted" and trainer.step == 4
    assert trainer.elapsed == pytest.approx(9.0)
    assert load_checkpoint(tmp_path / "run").train_state["elapsed"] == pytest.approx(9.0)


def test_the_time_a_checkpoint_takes_to_save_is_counted(tmp_path, monkeypatch):
    """A fake clock: steps take 1 s, each evaluation 5 s and each save 2 s. Ten steps with
    evaluations after steps 4 and 8 (and 10, at the end) took 10 + 3 * 7 = 31 s; the saves
    were left out of the run's time. A checkpoint holds the time up to its own save."""
    import types

    from rnnkit.training import trainer as trainer_module

    clock = [0.0]
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    trainer = make_trainer(tmp_path, max_steps=10, eval_every=4)
    loss_fn, evaluate, save = trainer.loss_fn, trainer.evaluate_fn, trainer.save

    def one_second(model, batch, carry):
        clock[0] += 1.0
        return loss_fn(model, batch, carry)

    def five_seconds(model):
        clock[0] += 5.0
        return evaluate(model)

    def two_seconds(**kwargs):
        save(**kwargs)
        clock[0] += 2.0

    trainer.loss_fn, trainer.evaluate_fn, trainer.save = one_second, five_seconds, two_seconds
    result = trainer.fit()
    assert (result.status, result.steps) == ("completed", 10)
    assert trainer.elapsed == pytest.approx(31.0)
    assert load_checkpoint(tmp_path / "run").train_state["elapsed"] == pytest.approx(29.0)


def test_a_loss_scalers_overflow_steps_are_counted_not_averaged(tmp_path):
    """With a loss scaler an overflowing step has an infinite gradient norm and is skipped by
    the scaler; that inf used to make the window's mean norm Infinity, which is not JSON.
    A CPU scaler stands in for CUDA's; step 3's loss is scaled past float32's range."""
    trainer = make_trainer(tmp_path, max_steps=10, log_every=5)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    loss_fn = trainer.loss_fn

    def overflow_at_step_3(model, batch, carry):
        output = loss_fn(model, batch, carry)
        return output._replace(loss=output.loss * 1e37) if trainer.step == 2 else output

    trainer.loss_fn = overflow_at_step_3
    trainer.fit()

    def refuse(constant):
        raise ValueError(f"bare {constant}")

    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line, parse_constant=refuse) for line in lines]
    train = {r["step"]: r for r in records if r["split"] == "train"}
    assert train[5]["overflow_steps"] == 1 and "overflow_steps" not in train[10]
    assert math.isfinite(train[5]["grad_norm"]) and math.isfinite(train[10]["grad_norm"])


def test_the_interrupt_message_names_the_run_to_resume(tmp_path):
    """A Trainer that trains one part of a run (a forecast backtest fold in run/backtest/fold-1)
    told the user to --resume the part's folder, which is not a run."""
    lines = []
    config = TrainConfig(max_steps=10, eval_every=5, log_every=5, warmup_steps=0, progress=False)
    trainer = Trainer(nn.Linear(3, 1), config, batches=Samples(), loss_fn=regression_loss,
                      evaluate_fn=lambda m: {"loss": 1.0}, run_dir=tmp_path / "run" / "part",
                      notify=lines.append, resume_hint=tmp_path / "run")
    assert interrupt_at(trainer, 3).fit().status == "interrupted"
    assert lines[-1].endswith(f"continue with --resume {tmp_path / 'run'}")


def test_a_broken_link_where_a_checkpoint_will_go_is_refused_before_training(tmp_path):
    """A dangling ``step-*`` link failed the run at its first save ("Not a directory"), after
    the training it was to keep. Oracle: the refusal comes before any step (the weights are
    the initial ones) and names the link; with the link gone, the same run trains as one that
    never had it."""
    from rnnkit.training.checkpoint import CheckpointError

    trainer = make_trainer(tmp_path, max_steps=10)
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "step-00000005").symlink_to(tmp_path / "moved-away")
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"step-00000005 is a broken link.*remove the link"):
        trainer.fit()
    assert trainer.step == 0
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, initial[key])
    (folder / "step-00000005").unlink()
    # a link at a step the run has passed is never written to: it is left alone
    (folder / "step-00000000").symlink_to(tmp_path / "moved-away")
    repaired = trainer.fit()
    clean = make_trainer(tmp_path / "clean", max_steps=10).fit()
    assert repaired.steps == clean.steps == 10
    assert repaired.best_validation == clean.best_validation
    # resumed at step 10: a link at step 3 is behind it (left alone); then, resumed at 15,
    # one at step 20 ahead of it
    (folder / "step-00000003").symlink_to(tmp_path / "moved-away")
    resumed = make_trainer(tmp_path, max_steps=15)
    resumed.resume()
    assert resumed.fit().steps == 15
    (folder / "step-00000020").symlink_to(tmp_path / "moved-away")
    resumed = make_trainer(tmp_path, max_steps=20)
    resumed.resume()
    with pytest.raises(CheckpointError, match=r"step-00000020 is a broken link"):
        resumed.fit()


def test_folders_named_like_checkpoints_are_neither_pruned_nor_loaded(tmp_path):
    """A user's step-00000010.bak copy and a step-notes folder were counted as checkpoints:
    pruning kept the notes in place of a real checkpoint, deleted the backup, and a resume
    loaded the backup (review 2026-12-06). Oracle: the folder listing, and the step resumed."""
    import shutil

    make_trainer(tmp_path, max_steps=10, eval_every=2, keep_last=2).fit()
    folder = tmp_path / "run" / "checkpoints"
    shutil.copytree(folder / "step-00000010", folder / "step-00000010.bak")
    (folder / "step-notes").mkdir()
    (folder / "step-notes" / "todo.txt").write_text("keep me")
    trainer = make_trainer(tmp_path, max_steps=16, eval_every=2, keep_last=2)
    assert trainer.resume() == 10
    trainer.fit()
    names = sorted(p.name for p in folder.iterdir() if p.name != "index.json")
    best = json.loads((folder / "index.json").read_text())["best"]
    assert names == sorted({"step-00000010.bak", "step-notes", "step-00000014",
                            "step-00000016", best})
    assert (folder / "step-notes" / "todo.txt").read_text() == "keep me"


def test_resuming_an_older_checkpoint_by_its_folder_is_refused(tmp_path):
    """Trainer.resume(".../step-00000006") of a run with checkpoints 8 and 10 trained on from
    6 beside them; a later resume of the run then loaded step 10 and jumped back to it, its
    metrics cut at 6 (review 2026-12-06). Oracle: the checkpoints, untouched, and the newest
    named by its folder, which is accepted."""
    make_trainer(tmp_path, max_steps=10, eval_every=2, keep_last=3).fit()
    folder = tmp_path / "run" / "checkpoints"
    before = sorted((p, p.stat().st_mtime_ns) for p in folder.rglob("*"))
    trainer = make_trainer(tmp_path, max_steps=12, eval_every=2, keep_last=3)
    with pytest.raises(ValueError) as info:
        trainer.resume(folder / "step-00000006")
    message = str(info.value)
    assert "\n" not in message and "older than this run's newest, step-00000010" in message
    assert sorted((p, p.stat().st_mtime_ns) for p in folder.rglob("*")) == before
    assert trainer.resume(folder / "step-00000010") == 10


def test_an_evaluation_loss_given_as_a_tensor_or_numpy_number_is_logged_as_a_number(tmp_path):
    """{"loss": torch.tensor(1.5)} trained up to the first evaluation and then failed the
    metrics log's JSON, with no checkpoint saved. Oracle: the numbers given."""
    import numpy as np

    values = iter([torch.tensor(1.5), np.float32(1.25), torch.tensor([1.0])])
    trainer = make_trainer(tmp_path, max_steps=6, eval_every=2)
    trainer.evaluate_fn = lambda model: {"loss": next(values), "accuracy": np.float64(0.5)}
    result = trainer.fit()
    validation = [r for r in result.history if r["split"] == "validation"]
    assert [r["loss"] for r in validation] == [1.5, 1.25, 1.0]
    assert all(r["accuracy"] == 0.5 for r in validation)
    assert load_checkpoint(tmp_path / "run").step == 6


def test_a_ctrl_c_during_the_final_validation_interrupts_the_run(tmp_path):
    """A run ending between evaluations (max_steps 28, eval_every 5) validates and saves its
    last step after the loop; a Ctrl-C there only set a flag nobody read, and the task went
    on to its test score with status "completed". Oracle: the uninterrupted run, which the
    resume must equal."""
    whole = make_trainer(tmp_path / "whole", max_steps=28)
    assert whole.fit().status == "completed"
    split = make_trainer(tmp_path, max_steps=28)
    evaluate = split.evaluate_fn

    def interrupted_at_the_last_step(model):
        if split.step == 28:
            split._on_interrupt(signal.SIGINT, None)
        return evaluate(model)

    split.evaluate_fn = interrupted_at_the_last_step
    result = split.fit()
    assert (result.status, result.steps, result.stop_signal) == ("interrupted", 28,
                                                                 signal.SIGINT)
    assert load_checkpoint(tmp_path / "run").step == 28  # the final validation's save
    resumed = make_trainer(tmp_path, max_steps=28)
    resumed.resume()
    assert resumed.fit().status == "completed"
    assert torch.equal(resumed.model.weight, whole.model.weight)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_stops_at_once_with_its_own_exit_status(tmp_path, number):
    """A second SIGTERM raised a plain KeyboardInterrupt, which the CLI reports as Ctrl-C's 130.
    Oracle: 128 + the signal's number."""
    from rnnkit.training.trainer import RunInterrupted

    trainer = make_trainer(tmp_path, max_steps=30)
    loss_fn = trainer.loss_fn

    def signalled_twice(model, batch, carry):
        if trainer.step == 3:
            trainer._on_interrupt(number, None)
            trainer._on_interrupt(number, None)
        return loss_fn(model, batch, carry)

    trainer.loss_fn = signalled_twice
    with pytest.raises(RunInterrupted) as info:
        trainer.fit()
    assert info.value.exit_status == 128 + number


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be sent to oneself there")
def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path):
    """SIGTERM (kill, timeout, Slurm, Kubernetes) ended the process at once, losing the steps
    since the last checkpoint. Oracle: the checkpoint at the step the signal came in, and the
    handlers restored afterwards."""
    before = signal.getsignal(signal.SIGTERM)
    trainer = make_trainer(tmp_path, max_steps=30)
    loss_fn = trainer.loss_fn

    def terminated_at_step_7(model, batch, carry):
        if trainer.step == 6:  # the loss of step 7
            os.kill(os.getpid(), signal.SIGTERM)
        return loss_fn(model, batch, carry)

    trainer.loss_fn = terminated_at_step_7
    result = trainer.fit()
    assert (result.status, result.steps, result.stop_signal) == ("interrupted", 7,
                                                                 signal.SIGTERM)
    assert load_checkpoint(tmp_path / "run").step == 7
    assert signal.getsignal(signal.SIGTERM) is before


class _PlainIterator:
    """Batches without state_dict: a resumed run could not continue their order."""

    def __next__(self):
        x = torch.randn(8, 3)
        return x, x.sum(dim=1, keepdim=True)


@pytest.mark.parametrize("part, wrong, message", [
    ("config", {"max_steps": 3}, "config must be a TrainConfig; got dict (build one with "
                                 "TrainConfig(**settings))"),
    ("batches", _PlainIterator(), "_PlainIterator lacks state_dict, load_state_dict, "
                                  "epochs_done"),
    ("loss_fn", lambda model, batch, carry: (model(batch[0]).sum(), None, 8),
     "loss_fn must return a StepOutput(loss, carry, count); got tuple"),
    ("evaluate_fn", lambda model: 0.5, "evaluate_fn must return a dict with a 'loss' entry, "
                                       "such as {'loss': 1.25}; got float"),
    ("evaluate_fn", lambda model: None, "got NoneType"),
    ("evaluate_fn", lambda model: {"mse": 0.5}, "got a dict of 'mse'"),
    ("evaluate_fn", lambda model: {"loss": 0.5, "per_class": torch.ones(3)},
     "evaluate_fn's entry 'per_class' must be named by a string and be a number, text or a list "
     "of them (a one-value tensor is taken as its number); got a tensor of 3 values"),
], ids=["config-dict", "batches-without-state", "loss-tuple", "evaluate-float",
        "evaluate-none", "evaluate-without-loss", "evaluate-tensor"])
def test_a_misused_trainer_part_is_named_with_the_fix_and_leaves_no_checkpoint(
        tmp_path, part, wrong, message):
    """These failed with AttributeErrors ("'tuple' object has no attribute 'loss'"), the
    batches only at the first checkpoint after training steps, and a tensor metric with a JSON
    error part-way through a line of metrics.jsonl (probe, 2026-12-08). Oracle: the same run
    with the well-formed part trains; the misused one saves no checkpoint."""
    torch.manual_seed(0)
    parts = {"config": TrainConfig(max_steps=4, eval_every=2, log_every=2, warmup_steps=0,
                                   progress=False),
             "batches": Samples(), "loss_fn": regression_loss,
             "evaluate_fn": lambda model: {"loss": 1.0}}

    def trainer(folder, **changed):
        chosen = {**parts, **changed}
        return Trainer(nn.Linear(3, 1), chosen.pop("config"), run_dir=tmp_path / folder,
                       **chosen)

    assert trainer("good").fit().steps == 4
    # (name, value) pairs, which dict() takes, are a dict of metrics as before
    assert trainer("pairs", evaluate_fn=lambda model: [("loss", 1.0)]).fit().steps == 4
    with pytest.raises(TypeError) as info:
        trainer("bad", **{part: wrong}).fit()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "bad" / "checkpoints").exists()
    log = tmp_path / "bad" / "metrics.jsonl"
    assert not log.exists() or all(line.endswith("}") for line in log.read_text().splitlines())
