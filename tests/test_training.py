import errno
import json
import math

import pytest
import torch
from training_helpers import deterministic_kernels, on_device, tiny_config, tiny_trainer

from horseshoe.runs.load import load_run
from horseshoe.training import checkpoint
from horseshoe.training.budget import TimeBudget
from horseshoe.training.ema import EMA
from horseshoe.training.results import StopReason
from horseshoe.training.trainer import NonFiniteLoss, learning_rate


def train(run_dir, *extra, resume=None):
    trainer = tiny_trainer(run_dir, *extra)
    if resume:
        trainer.resume(resume)
    trainer.fit()
    return trainer


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_resume_is_bit_identical(tmp_path, precision, device):
    # N steps + save + resume + N steps == 2N steps, bit for bit (dropout and augmentation on); in fp16
    # the gradient scaler's state too. N = 2 in fp16, whose convolution backward is ~10x slower on a CPU.
    n, extra = 2 if precision == "fp16" else 3, [f"train.precision={precision!r}", *on_device(device)]
    with deterministic_kernels(device):
        straight = train(tmp_path / "a", f"train.steps={2 * n}", *extra)
        train(tmp_path / "b", f"train.steps={n}", *extra)
        resumed = train(tmp_path / "b", f"train.steps={2 * n}", *extra, resume=tmp_path / "b")
    assert same_weights(straight.state.model, resumed.state.model)
    assert same_weights(straight.state.ema.model, resumed.state.ema.model)
    assert straight.state.loader.position == resumed.state.loader.position
    assert straight.state.scaler.state_dict() == resumed.state.scaler.state_dict()
    assert straight.state.scaler.is_enabled() == (precision == "fp16")


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    # Same data, augmentation and noise either way; only the order of float sums differs, so the
    # weights agree to float32 rounding amplified over a few Adam steps (measured < 1e-6).
    full = train(tmp_path / "a", "train.steps=4", "model.dropout=0.0")
    accum = train(tmp_path / "b", "train.steps=4", "model.dropout=0.0", "train.grad_accum=4")
    for p, q in zip(full.state.model.parameters(), accum.state.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-5)


def test_ema_half_life_is_in_images():
    # A parameter jumps from 0 to 1; after `half_life` images its EMA is 0.5 at any batch size.
    for batch in (16, 64):
        model = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.zeros_(model.weight)
        ema = EMA(model, half_life_images=640, warmup_ratio=0.0)
        torch.nn.init.ones_(model.weight)
        for step in range(640 // batch):
            ema.update(model, batch, (step + 1) * batch)
        assert ema.model.weight.item() == pytest.approx(0.5, rel=1e-9)
    # Warm-up caps the half-life at warmup_ratio * images seen.
    ema = EMA(torch.nn.Linear(1, 1), half_life_images=1e6, warmup_ratio=0.05)
    assert ema.beta(64, 6400) == pytest.approx(0.5 ** (64 / 320))


def test_learning_rate_schedule():
    assert learning_rate(0, 1.0, 10, 100, "constant") == pytest.approx(0.1)
    assert learning_rate(9, 1.0, 10, 100, "constant") == pytest.approx(1.0)
    assert learning_rate(50, 1.0, 10, 100, "constant") == 1.0
    assert learning_rate(10, 1.0, 10, 100, "cosine") == pytest.approx(1.0)
    assert learning_rate(55, 1.0, 10, 100, "cosine") == pytest.approx(0.5)
    assert learning_rate(100, 1.0, 10, 100, "cosine") == pytest.approx(0.0, abs=1e-12)


def test_checkpoint_holds_no_pickle_and_rebuilds_from_config(tmp_path):
    trainer = train(tmp_path, "train.steps=2")
    path = checkpoint.latest(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "ema.safetensors", "model.safetensors",
                                                      "optimizer.safetensors", "rng.safetensors", "state.json"]
    run = load_run(tmp_path, device="cpu")  # the model comes from the saved config alone
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 700])
    torch.testing.assert_close(run.model(x, t), trainer.state.ema.model.eval()(x, t))
    assert run.step == 2


def test_keep_last_k_and_latest_pointer(tmp_path):
    train(tmp_path, "train.steps=5", "train.checkpoint_every=1", "train.keep_checkpoints=2")
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert names == ["step-00000004", "step-00000005"]
    assert checkpoint.latest(tmp_path).name == "step-00000005"


def test_crash_during_save_leaves_last_checkpoint_loadable(tmp_path, monkeypatch):
    trainer = train(tmp_path, "train.steps=2")
    good = checkpoint.latest(tmp_path)
    real_save = checkpoint.save_file
    calls = []

    def dies_midway(tensors, path, **options):  # the process dies after writing some of the files
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_save(tensors, path, **options)

    monkeypatch.setattr(checkpoint, "save_file", dies_midway)
    trainer.state.step += 1
    with pytest.raises(KeyboardInterrupt):
        trainer.save(tmp_path)
    monkeypatch.undo()
    assert checkpoint.latest(tmp_path) == good
    checkpoint.load(good)  # complete and loadable
    trainer.state.step += 1
    trainer.save(tmp_path)  # the next save clears the half-written temporary
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_disk_full_says_so_and_keeps_previous(tmp_path, monkeypatch):
    trainer = train(tmp_path, "train.steps=2")
    good = checkpoint.latest(tmp_path)

    def full(tensors, path, **options):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    trainer.state.step += 1
    with pytest.raises(OSError, match=r"disk full while saving checkpoint .*step-00000003'; the previous "
                                      r"checkpoint '.*step-00000002' is intact"):
        trainer.save(tmp_path)
    assert checkpoint.latest(tmp_path) == good and not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_nonfinite_loss_stops_with_step_and_checkpoint(tmp_path):
    trainer = tiny_trainer(tmp_path, "train.steps=6", "train.checkpoint_every=2")
    model = trainer.network
    trainer.network = lambda x, t: model(x, t) * (math.nan if trainer.step >= 3 else 1.0)
    with pytest.raises(NonFiniteLoss, match=r"loss became nan at step 4 \(--set train.skip_nonfinite=true"):
        trainer.fit()
    assert checkpoint.latest(tmp_path).name == "step-00000002"


def test_nonfinite_loss_error_names_the_last_good_checkpoint(tmp_path, monkeypatch):
    from horseshoe.runs import train as runs_train

    train(tmp_path / "run", "train.steps=2")

    def fails(self):
        raise NonFiniteLoss("loss became nan at step 3")

    monkeypatch.setattr(runs_train.Trainer, "fit", fails)
    with pytest.raises(NonFiniteLoss, match=r"at step 3; the last good checkpoint is '.*step-00000002'"):
        runs_train.train(tiny_config("train.steps=4"), tmp_path / "run", resume=tmp_path / "run", progress=False)


def test_nonfinite_steps_can_be_skipped(tmp_path):
    trainer = tiny_trainer(tmp_path, "train.steps=4", "train.skip_nonfinite=true")
    model, calls = trainer.network, []

    def flaky(x, t):
        calls.append(1)
        return model(x, t) * (math.inf if len(calls) in (2, 3) else 1.0)

    trainer.network = flaky
    result = trainer.fit()
    assert result.step == 4 and result.nonfinite_skipped == 2


def test_batch_larger_than_dataset_repeats_the_data(tmp_path):
    result = tiny_trainer(tmp_path, "train.steps=2", "data.count=3").fit()
    assert result.step == 2


def test_epoch_budget(tmp_path):
    trainer = tiny_trainer(tmp_path, "train.epochs=1.0")
    assert trainer.total_steps() == 3  # 24 images / batch 8
    with pytest.raises(ValueError, match="has no epochs"):
        tiny_trainer(tmp_path, "train.epochs=1.0", "data.count=none").total_steps()


def test_resume_rejects_another_model_and_corrupt_files(tmp_path):
    train(tmp_path, "train.steps=2")
    other = tiny_trainer(tmp_path / "x", "train.steps=4", "model.base_channels=32")
    with pytest.raises(ValueError, match="different config: model.base_channels is 16 there and 32 now"):
        other.resume(tmp_path)
    path = checkpoint.latest(tmp_path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    same = tiny_trainer(tmp_path / "y", "train.steps=4")
    with pytest.raises(ValueError, match=r"checkpoint '.*step-00000002' is corrupt or incomplete: model.safetensors"):
        same.resume(tmp_path)
    (path / "state.json").unlink()
    with pytest.raises(FileNotFoundError, match="holds no checkpoints/latest|is not a checkpoint"):
        checkpoint.resolve(path)


def test_stop_reasons_read_as_the_strings_they_were():
    # Logs, pages, benchmarks and callers compare, look up and serialise the reason as text.
    assert json.dumps({"reason": StopReason.NOTHING}) == '{"reason": "nothing to do"}'
    assert {"budget": 1, "time": 2}[StopReason.TIME] == 2 and f"{StopReason.SIGNAL}" == "signal"
    assert StopReason("budget") is StopReason.BUDGET and StopReason.BUDGET == "budget"


def test_a_time_budget_fills_its_share_of_the_time_left():
    budget = TimeBudget(minutes=1.0, started=10.0)  # 60 s from t = 10 s
    # At t = 20 s, step 4, 0.5 s a step: 85% of the 50 s left is 85 more steps.
    assert budget.first_plan(4, now=20.0, seconds=[9.0, 0.5, 0.4, 0.6]) == 4 + 85  # the first step's 9 s left out
    # The loop's own speed: 30 steps in 12 s since t = 20 s; at t = 32 s, 92% of the 38 s left is 87.4 steps.
    assert budget.replan(34, now=32.0, loop_started=20.0, loop_first_step=4) == 34 + 87
    assert budget.steps_to(7, now=80.0, per_step=0.1, share=0.9) == 7  # out of time: no more steps


class FakeClock:
    """Time that passes only when a batch is drawn: `per_step` seconds a step, `later` after `after` steps."""

    def __init__(self, trainer, per_step: float, later: float | None = None, after: int = 0) -> None:
        self.now, self.steps = 0.0, 0
        draw = trainer.state.loader.next_with_labels

        def next_with_labels():
            self.steps += 1
            self.now += later if later is not None and self.steps > after else per_step
            return draw()

        trainer.clock = lambda: self.now
        trainer.state.loader.next_with_labels = next_with_labels


def test_a_time_budget_plans_its_steps_and_ends_with_the_schedule_at_its_end(tmp_path):
    from horseshoe.training.runlog import read_metrics

    trainer = tiny_trainer(tmp_path, "train.minutes=0.02", "train.warmup_steps=4", "train.checkpoint_every=0")
    FakeClock(trainer, per_step=0.1)
    result = trainer.fit()
    # 4 timed steps of 0.1 s, then 85% of the 0.8 s left: 6 more steps, ending at 1.0 s of the 1.2 s budget.
    assert trainer.state.planned_steps == 10 and result.step == 10 and result.stop_reason == "budget"
    last = read_metrics(tmp_path)[-1]
    assert last["step"] == 10
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert first["event"] == "start"  # the timed steps come first, but this is a fresh run
    assert last["lr"] == pytest.approx(learning_rate(9, 1e-3, 4, 10, "cosine"))  # decayed to its end
    state = checkpoint.load(checkpoint.latest(tmp_path), parts=()).state
    assert state["planned_steps"] == 10  # a resume keeps the plan
    resumed = tiny_trainer(tmp_path / "again", "train.minutes=0.02", "train.warmup_steps=4")
    resumed.resume(tmp_path)
    assert resumed.total_steps() == 10 and resumed.fit().stop_reason == "nothing to do"


def test_a_time_budget_plans_again_at_the_end_of_the_warm_up_from_the_loops_own_speed(tmp_path):
    from horseshoe.training.runlog import read_metrics

    trainer = tiny_trainer(tmp_path, "train.minutes=0.2", "train.warmup_steps=30", "train.checkpoint_every=0",
                           "train.log_every=5")
    FakeClock(trainer, per_step=0.2, later=0.1, after=8)  # the timed steps are slow (a busy or cold start)
    result = trainer.fit()
    # Plan: 8 timed steps of 0.2 s, 85% of the 10.4 s left: 44 more (52). Again at step 30 (end of warm-up):
    # 22 loop steps of 0.1 s, 92% of the 8.2 s left: 75 more, ending at 11.3 s of the 12 s budget, not at 6.0.
    assert trainer.state.planned_steps == 105 and result.step == 105 and result.stop_reason == "budget"
    records = read_metrics(tmp_path)
    assert records[-1]["lr"] == pytest.approx(learning_rate(104, 1e-3, 30, 105, "cosine"))  # decayed to its end
    # Every logged step, the warm-up and the whole decay, follows one schedule of 105 steps: the second plan
    # took effect at the end of the warm-up, before the first decaying step (the first plan's 52 would not fit).
    steps = [r["step"] for r in records if "lr" in r]
    assert steps[-1] == 105 and any(s > 30 for s in steps)
    assert [r["lr"] for r in records if "lr" in r] == pytest.approx(
        [learning_rate(s - 1, 1e-3, 30, 105, "cosine") for s in steps])
    assert learning_rate(34, 1e-3, 30, 52, "cosine") != pytest.approx(learning_rate(34, 1e-3, 30, 105, "cosine"))


def test_a_time_budget_stops_at_its_deadline_when_steps_slow_down(tmp_path):
    trainer = tiny_trainer(tmp_path, "train.minutes=0.02", "train.warmup_steps=4", "train.checkpoint_every=0")
    FakeClock(trainer, per_step=0.1, later=0.3, after=4)
    result = trainer.fit()
    # Planned for 10 steps; at 0.3 s each after the 4th, the 1.2 s deadline passes during step 7.
    assert trainer.state.planned_steps == 10 and result.step == 7 and result.stop_reason == "time"
    assert checkpoint.latest(tmp_path).name == "step-00000007"  # and it ends with a checkpoint
