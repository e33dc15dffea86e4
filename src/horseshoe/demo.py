"""The demo: train on the built-in horseshoes, then draw every picture of the run into one folder.

    RUN/samples/grid.png, RUN/samples/000.png ... 063.png   new horseshoes
    RUN/noising.png      the forward process on training images
    RUN/denoising.png    x_t and the predicted x0 along sampling
    RUN/sampling.gif     a grid of samples forming (predicted x0 beside)
    RUN/loss.png         the training loss
    RUN/index.html       all of the above with the config and the numbers
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from horseshoe import report
from horseshoe.config import Config, apply_overrides, load_toml
from horseshoe.data import build_dataset
from horseshoe.data.transforms import to_uint8
from horseshoe.metrics.shape import horseshoe_rate
from horseshoe.runs import load_run
from horseshoe.training import checkpoint
from horseshoe.training.runlog import read_metrics
from horseshoe.training.trainer import Trainer
from horseshoe.viz.gif import save_gif
from horseshoe.viz.grid import display_scale, save_png, save_samples
from horseshoe.viz.pictures import default_noise_timesteps, denoising_picture, noising_picture, sampling_frames
from horseshoe.viz.plots import plot_loss

PICTURES = ("samples/grid.png", "noising.png", "denoising.png", "sampling.gif", "loss.png")


def demo_config(overrides: list[str] | None = None) -> Config:
    """The packaged demo config (configs/demo.toml), with --set overrides on top."""
    with resources.as_file(resources.files("horseshoe") / "configs" / "demo.toml") as path:
        config = load_toml(path)
    return apply_overrides(config, overrides or [])


@dataclass
class DemoResult:
    out: Path
    numbers: dict
    pictures: list[Path]


def train_demo(config: Config, out: Path, progress: bool) -> tuple[dict, Trainer]:
    """Train (or continue a previous demo run in `out` up to the budget)."""
    trainer = Trainer(config, out, progress=progress)
    if checkpoint.latest(out) is not None:
        trainer.resume(out)
    start_step = trainer.step
    result = trainer.fit()
    trainer.close()
    numbers = {"training steps": result.step, "steps trained by this call": result.step - start_step,
               "training seconds (this call)": round(result.seconds, 1),
               "training images/s": round(result.images_per_sec, 1), "final loss": result.loss,
               "stopped because": result.stop_reason, "device": str(trainer.device), "precision": trainer.precision,
               "parameters": sum(p.numel() for p in trainer.model.parameters())}
    return numbers, trainer


def draw_pictures(out: Path, config: Config, count: int = 64, seed: int = 0) -> dict:
    """Samples, noising, denoising, GIF and loss curve from the run in `out`; returns numbers about them."""
    run = load_run(out)
    name, sampler_config = run.sampler()
    started = time.perf_counter()
    samples = to_uint8(run.generate(name, sampler_config, count, seed=seed))
    numbers = {"sampler": f"{name}, {sampler_config.num_steps} steps",
               "sampling seconds (64 images)": round(time.perf_counter() - started, 2)}
    save_samples(samples, out / "samples")
    if config.data.is_builtin_silhouette:
        numbers["horseshoe rate (geometric check)"] = horseshoe_rate(samples / 255.0)
    scale = display_scale(config.data.height)
    data = build_dataset(config.data).get_batch(np.arange(4))
    schedule = run.denoiser.schedule
    save_png(noising_picture(data, schedule, default_noise_timesteps(schedule.num_steps), scale=scale),
             out / "noising.png")
    records = list(run.records(name, sampler_config, 4, seed))
    save_png(denoising_picture(records, columns=8, samples=4, scale=scale), out / "denoising.png")
    gif_name, gif_config = run.sampler("ddim", 100)
    frames = sampling_frames(run.records(gif_name, gif_config, 9, seed), 40, 100, with_x0=True, scale=scale)
    save_gif(frames, out / "sampling.gif", fps=12, hold_seconds=2.5)
    plot_loss(read_metrics(out), out / "loss.png", title="demo training loss")
    return numbers


def write_page(out: Path, config: Config, numbers: dict) -> Path:
    figures = (
        report.figure("samples/grid.png", "64 new horseshoes from the EMA weights")
        + report.figure("sampling.gif", "sampling 9 images with DDIM (100 steps): x_t left, predicted x0 right")
    )
    report.add_section(out, "samples", "Samples", figures, order=10)
    how = (report.figure("noising.png", "forward process: training images at increasing t (same noise per row)")
           + report.figure("denoising.png", "backward process: x_t and the predicted x0 at chosen sampler steps"))
    report.add_section(out, "process", "How diffusion makes them", how, order=20)
    report.add_section(out, "training", "Training",
                       report.figure("loss.png", "training loss per logged step") + report.table(numbers), order=30)
    return report.add_section(out, "config", "Config", report.preformatted(config.to_json()), order=90)


def run_demo(out: str | Path, overrides: list[str] | None = None, gallery: str | Path | None = None,
             fresh: bool = False, progress: bool = True) -> DemoResult:
    """Train the demo model into `out` and draw all its pictures; optionally copy them to `gallery`."""
    started = time.perf_counter()
    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    config = demo_config(overrides)
    numbers, _ = train_demo(config, out, progress)
    numbers.update(draw_pictures(out, config))
    numbers["demo seconds (this call)"] = round(time.perf_counter() - started, 1)
    page = write_page(out, config, numbers)
    pictures = [out / p for p in PICTURES] + [page]
    if gallery is not None:
        gallery = Path(gallery)
        gallery.mkdir(parents=True, exist_ok=True)
        for picture in PICTURES:
            shutil.copyfile(out / picture, gallery / Path(picture).name.replace("grid", "samples"))
    return DemoResult(out=out, numbers=numbers, pictures=pictures)
