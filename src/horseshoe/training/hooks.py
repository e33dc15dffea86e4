"""The hooks every run directory gets: the log (metrics.jsonl and a progress bar), checkpoints, and the
snapshots of a post-hoc EMA."""

from __future__ import annotations

from pathlib import Path

from horseshoe.training.posthoc_ema import drop_snapshots_after, save_snapshot
from horseshoe.training.runlog import RunLog
from horseshoe.training.trainer import Hook, StepResult, Trainer, TrainResult


class LogHook(Hook):
    """RUN/config.json, and RUN/metrics.jsonl: start (with the images per class of a run with classes, and a
    line saying whether non-leaking augmentation is on and why), a record every train.log_every steps, end.

    A record's loss and images/s are over the steps since the previous record (the training steps
    alone: evaluations and checkpoints are not counted); the progress bar shows the same numbers.
    Main process only.
    """

    def __init__(self, run_dir: str | Path, progress: bool = True) -> None:
        self.run_dir, self.progress = Path(run_dir), progress
        self.log: RunLog | None = None
        self.bar = None
        self._losses: list[float] = []
        self._seconds = 0.0

    def on_start(self, trainer: Trainer) -> None:
        from tqdm import tqdm

        main = trainer.world.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(trainer.config.to_json())
            self.log = RunLog(self.run_dir, tensorboard=trainer.config.train.tensorboard)
            record = {"event": "start" if trainer.first_step == 0 else "resume", "step": trainer.step,
                      "device": str(trainer.device), "precision": trainer.precision,
                      "processes": trainer.world.world_size, **trainer.device_settings,
                      "augment": trainer.state.augment_line}
            if trainer.state.classes_line:
                record["balance"] = trainer.state.classes_line
            if trainer.conditional:  # images per class (null for the endless horseshoe stream)
                record["classes"] = trainer.state.class_counts
            self.log.write(record)
        self.bar = tqdm(total=trainer.total_steps(), initial=trainer.step, disable=not (main and self.progress),
                        unit="step", dynamic_ncols=True)

    def on_step(self, trainer: Trainer, result: StepResult) -> None:
        tc = trainer.config.train
        self._losses.append(result.loss)
        self._seconds += result.seconds
        total = trainer.total_steps()
        if self.bar.total != total:  # a time budget's second plan
            self.bar.total = total
            self.bar.refresh()
        self.bar.update(1)
        if result.step % tc.log_every and result.step != total:
            return
        rate = len(self._losses) * tc.batch_size / max(self._seconds, 1e-9)
        record = {"step": result.step, "loss": sum(self._losses) / len(self._losses), "lr": result.lr,
                  "images_per_sec": rate, "grad_norm": result.grad_norm,
                  "epoch": trainer.state.loader.epochs_done()}
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{rate:.0f}")
        if self.log:
            self.log.write(record)
        self._losses, self._seconds = [], 0.0

    def on_end(self, trainer: Trainer, result: TrainResult) -> None:
        if self.log:
            self.log.write({"event": "end", "reason": result.stop_reason, "step": result.step,
                            "nonfinite_skipped": result.nonfinite_skipped, "scaler_skipped": result.scaler_skipped,
                            "seconds": result.seconds})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.log:
            self.log.close()
            self.log = None


class CheckpointHook(Hook):
    """A checkpoint in RUN/checkpoints every train.checkpoint_every steps and when training stops.

    Every process must have it (saving waits for all of them); only the main one writes.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.saved_at: int | None = None

    def on_step(self, trainer: Trainer, result: StepResult) -> None:
        every = trainer.config.train.checkpoint_every
        if every and result.step % every == 0:
            trainer.save(self.run_dir)
            self.saved_at = result.step

    def on_end(self, trainer: Trainer, result: TrainResult) -> None:
        # Saved again at a step just saved: the last checkpoint says how training ended (a run stopped by a
        # signal is not finished; `horseshoe distill` reads it).
        trainer.state.stopped = result.stop_reason.value
        trainer.save(self.run_dir)
        self.saved_at = result.step


class PostHocEMAHook(Hook):
    """For a run with train.posthoc_ema: its power-function EMAs saved into RUN/posthoc_ema
    train.posthoc_snapshots times, evenly over the planned steps, and at the end. Snapshots past the
    step training starts from (an earlier run's, or those after the checkpoint a resume continues) are
    deleted first. Main process only.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.saved_at: int | None = None

    def on_start(self, trainer: Trainer) -> None:
        if trainer.world.is_main:
            drop_snapshots_after(self.run_dir, trainer.step)

    def on_step(self, trainer: Trainer, result: StepResult) -> None:
        if not trainer.state.posthoc:
            return
        count, total = trainer.config.train.posthoc_snapshots, trainer.total_steps()
        if result.step * count // total > (result.step - 1) * count // total:
            self._save(trainer, result.step)

    def on_end(self, trainer: Trainer, result: TrainResult) -> None:
        if trainer.state.posthoc and self.saved_at != result.step and result.step > 0:
            self._save(trainer, result.step)

    def _save(self, trainer: Trainer, step: int) -> None:
        if trainer.world.is_main:
            save_snapshot(self.run_dir, step, trainer.state.posthoc)
        self.saved_at = step
