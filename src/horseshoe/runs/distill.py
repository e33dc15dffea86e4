"""`horseshoe distill`: tune a finished run into a few-step student, a run of its own that samples in 1 to 4 steps.

The student starts from the teacher's EMA weights and trains as any run does (the same trainer, hooks,
checkpoints, resume and page), with the consistency loss of its distill section in place of the diffusion
loss (horseshoe.diffusion.consistency). Its sample section names the consistency sampler, so `sample`,
`edit`, `inpaint` and the rest use few steps by default. Its page shows the teacher's samples beside its
own, with the seconds each took.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from horseshoe import config as config_module
from horseshoe.config import Config
from horseshoe.data.transforms import to_uint8
from horseshoe.distill_config import ADVERSARIAL, METHOD, STUDENT_BATCH, STUDENT_STEPS, DistillConfig
from horseshoe.runs import page
from horseshoe.runs.load import LoadedRun, load_run, run_dir_of
from horseshoe.runs.train import RunResult, train
from horseshoe.sampling.config import CONSISTENCY_STEPS, MAX_CONSISTENCY_STEPS
from horseshoe.training import checkpoint
from horseshoe.training.results import StopReason
from horseshoe.viz.grid import display_scale, make_grid, save_png

# The student's optimisation: the demo's learning rate (measured better than 2e-4 in 300 steps), a short warm-up,
# and an EMA of a few thousand images (its run is a few hundred steps).
LR, WARMUP, EMA_HALF_LIFE = 1e-3, 10, 2_000.0
STUDENT_RHO = 7.0


@dataclass(frozen=True)
class Teacher:
    """The finished run a student is distilled from: its latest checkpoint, step, config and training seconds."""

    checkpoint: Path
    step: int
    config: Config
    seconds: float | None  # how long it trained, from its log (None where the log is gone)


def finished_teacher(run: str | Path) -> Teacher:
    """The run to distill, or a one-line error: not found, not finished (stopped by a signal, or still short of
    its budget), or a student already."""
    found = checkpoint.resolve(run)
    data, config = _read(found)
    if config.distill.student:
        raise ValueError(f"run {str(run)!r} is already distilled (from {config.distill.teacher}): distill its "
                         f"teacher again instead, with --minutes for a longer tuning")
    stopped, step = data.state.get("stopped"), int(data.state["step"])
    budget = data.state.get("planned_steps") or config.train.steps
    if stopped is None and _page_after(found):  # a run saved before checkpoints said how training ended
        stopped = StopReason.BUDGET
    if stopped == StopReason.SIGNAL or (stopped is None and budget is not None and step < budget):
        raise ValueError(f"run {str(run)!r} is not finished (step {step} of {budget}, "
                         f"{'stopped by a signal' if stopped else 'no end of training recorded'}): "
                         f"resume it with `horseshoe train --out {run} --resume` first")
    return Teacher(found, step, config, _training_seconds(found))


def _read(found: Path) -> tuple[checkpoint.Checkpoint, Config]:
    """A checkpoint's state (no tensors) and its config, or a one-line error if the config is invalid."""
    data = checkpoint.load(found, parts=())
    try:
        return data, config_module.from_dict(data.config)
    except ValueError as error:
        raise ValueError(f"checkpoint {str(found)!r} has an invalid config: {error}") from None


def _page_after(found: Path) -> bool:
    """Whether the run's page was written after its latest checkpoint: training then ended without a signal."""
    page_file = run_dir_of(found) / "index.html"
    return page_file.is_file() and page_file.stat().st_mtime >= max(f.stat().st_mtime for f in found.iterdir())


def _training_seconds(found: Path) -> float | None:
    """Wall seconds from the first to the last line of the run's log (metrics.jsonl)."""
    log = run_dir_of(found) / "metrics.jsonl"
    if not log.is_file():
        return None
    times = [json.loads(line)["time"] for line in log.read_text().splitlines() if '"time"' in line]
    return times[-1] - times[0] if len(times) > 1 else None


def student_config(teacher: Teacher, method: str = METHOD, steps: int | None = None,
                   minutes: float | None = None, overrides: tuple[str, ...] = ()) -> Config:
    """The student's config: the teacher's network, data and process, a short tuning, the consistency sampler."""
    tc = teacher.config.train
    budget = _budget(steps or STUDENT_STEPS, minutes)  # _budget drops the steps where minutes are given
    # Batches of 64 split over the teacher's grad_accum, so a micro-batch is never larger than the teacher's; the
    # teacher's own batch where that is 64 or fewer, or where its grad_accum does not divide 64.
    batch = STUDENT_BATCH if tc.batch_size > STUDENT_BATCH and STUDENT_BATCH % tc.grad_accum == 0 else tc.batch_size
    train = dataclasses.replace(tc, **budget, batch_size=batch, lr=LR, warmup_steps=WARMUP, lr_schedule="cosine",
                                ema_half_life_images=EMA_HALF_LIFE, max_minutes=None, posthoc_ema=(),
                                sample_every=0, eval_every=0, checkpoint_every=100)
    # rho = 7 puts the second of 2 steps at sigma ~ 1 rather than ~ 3 (measured better, docs/measurements/few-step.md).
    # A trajectory student learns the teacher's guided paths: its own guidance is 1, the conditional model alone,
    # one network call a step.
    guidance = 1.0 if method == "trajectory" and teacher.config.model.num_classes else teacher.config.sample.guidance
    sample = dataclasses.replace(teacher.config.sample, sampler="consistency", steps=CONSISTENCY_STEPS, rho=STUDENT_RHO,
                                 guidance=guidance)
    # A critic needs many images: of a folder small enough to need augmentation (under 100) it risks learning each
    # by heart and pushing the student towards copies (GANs' failure on little data, Karras et al. 2020; not
    # measured here). So such a teacher's student has none unless --set distill.adversarial asks.
    adversarial = ADVERSARIAL if method == "trajectory" and not teacher.config.data.augment_p else 0.0
    distill = DistillConfig(method=method, teacher=str(teacher.checkpoint), teacher_step=teacher.step,
                            adversarial=adversarial)
    config = dataclasses.replace(teacher.config, train=train, sample=sample, distill=distill)
    return config_module.apply_overrides(config, list(overrides))


def _budget(steps: int | None, minutes: float | None) -> dict:
    """train.steps or train.minutes, whichever is given (the other cleared, and epochs with them)."""
    return {"steps": None if minutes is not None else steps, "epochs": None, "minutes": minutes}


def resumed_config(run: str | Path, resume: str | Path, method: str | None = None, steps: int | None = None,
                   minutes: float | None = None, overrides: tuple[str, ...] = ()) -> tuple[Teacher, Config]:
    """The config a student resumes with: its own, from the checkpoint, so that a resume repeats the tuning it
    continues whatever today's defaults or the first start's --set values were; only a budget (steps or
    minutes) and overrides given now go on top. Its teacher is the checkpoint it was distilled from, which must
    belong to `run`."""
    found = checkpoint.resolve(resume, resume=True)
    _, config = _read(found)
    dc = config.distill
    if not dc.student:
        raise ValueError(f"checkpoint {str(found)!r} is not a student's (it was trained, not distilled): resume it "
                         f"with `horseshoe train --resume`")
    given = run_dir_of(checkpoint.resolve(run)).resolve()
    if run_dir_of(Path(dc.teacher)).resolve() != given:
        raise ValueError(f"the student in {str(found)!r} was distilled from {dc.teacher}, not from run {str(run)!r}: "
                         f"resume it with that run, or start over with --overwrite")
    if method is not None and method != dc.method:
        raise ValueError(f"--method {method} differs from the student's own ({dc.method}): resume it with "
                         f"--method {dc.method}, or start over with --overwrite")
    if steps is not None or minutes is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, **_budget(steps, minutes)))
    return finished_teacher(dc.teacher), config_module.apply_overrides(config, list(overrides))


def distill(run: str | Path, out: str | Path, method: str | None = None, steps: int | None = None,
            minutes: float | None = None, resume: str | Path | None = None, overwrite: bool = False,
            progress: bool = True, overrides: tuple[str, ...] = ()) -> RunResult:
    """Distil finished run `run` into a student in `out` (method None: METHOD; neither steps nor minutes:
    STUDENT_STEPS); resume: continue a student from its run directory (its latest checkpoint) or a checkpoint of
    it, with its own config (resumed_config)."""
    if resume is None:
        teacher = finished_teacher(run)
        config = student_config(teacher, method or METHOD, steps, minutes, overrides)
    else:
        teacher, config = resumed_config(run, resume, method, steps, minutes, overrides)
    if Path(out).resolve() == run_dir_of(teacher.checkpoint).resolve():
        raise ValueError(f"--out {str(out)!r} is the teacher's own run directory: choose another")
    result = train(config, out, resume=resume, progress=progress, overwrite=overwrite)
    if result.training.steps_trained and result.training.stop_reason != StopReason.SIGNAL:
        compare_section(Path(out), teacher)
    return result


@dataclass(frozen=True)
class Timed:
    """Samples and the seconds they took (the best of `repeats` draws of the same samples)."""

    images: torch.Tensor
    seconds: float


def timed_samples(run: LoadedRun, config, count: int, repeats: int = 3, labels=None) -> Timed:
    """`count` samples at seed 0, timed: the fastest of `repeats` identical draws (the first also warms up)."""
    best, images = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        images = run.generate(config, count, seed=0, labels=labels)
        best = min(best, time.perf_counter() - started)
    return Timed(images, best)


def compare_section(out: Path, teacher: Teacher, count: int = 64) -> Path:
    """The student's page gains the teacher's samples beside its own at 1, 2 and 4 steps, each with its seconds."""
    student, elder = load_run(out), load_run(teacher.checkpoint)
    labels = None
    if student.classes:
        per = max(1, count // len(student.classes))
        labels = torch.arange(len(student.classes)).repeat_interleave(per)
        count = len(labels)
    columns = None if labels is None else count // len(student.classes)
    scale = display_scale(student.config.data.height)
    cells = []
    own = elder.sampler()
    shown = [(f"teacher, {own.steps} steps", elder, own)] + [
        (f"student, {n} step{'s' * (n > 1)}", student, student.sampler(steps=n))
        for n in sorted({1, CONSISTENCY_STEPS, MAX_CONSISTENCY_STEPS})]
    for i, (who, run, config) in enumerate(shown):
        found = timed_samples(run, config, count, labels=labels)
        src = f"distill/{i}.png"
        save_png(make_grid(to_uint8(found.images), columns, scale=scale), out / src)
        cells.append(page.figure(src, f"{who} ({config.sampler}): {count} samples in {found.seconds:.2f} s"))
    body = page.note(f"Distilled from {teacher.checkpoint} (step {teacher.step}) by "
                     f"{student.config.distill.method}; times on {student.device}, the best of 3.")
    body += '<div style="display: flex; flex-wrap: wrap; gap: 1em">' + "\n".join(cells) + "</div>"  # side by side
    return page.add_section(out, "distill", "Teacher and student", body, order=5)
