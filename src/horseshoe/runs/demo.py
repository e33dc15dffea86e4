"""The demo: train on the built-in horseshoes the way `horseshoe train` does (`train` in runs.train, which writes
the run's page), then draw every picture of the run into one folder and add them to the page.

    RUN/samples/grid.png, RUN/samples/000.png ... 063.png   new horseshoes
    RUN/noising.png      the forward process on training images
    RUN/denoising.png    x_t and the predicted x0 along sampling
    RUN/sampling.gif     a grid of samples forming (predicted x0 beside)
    RUN/loss.png         the training loss
    RUN/copies.png       the samples closest to a training image, beside it (runs.memorisation)
    RUN/samples.png, RUN/index.html, ...   what every trained run has (runs.train), with the above added
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from horseshoe.config import Config, apply_overrides, load_toml
from horseshoe.data import first_images
from horseshoe.data.dataset import Dataset
from horseshoe.data.transforms import to_uint8
from horseshoe.metrics.shape import horseshoe_rate
from horseshoe.runs import memorisation, page
from horseshoe.runs.load import load_run
from horseshoe.runs.train import train
from horseshoe.training import checkpoint
from horseshoe.viz.gif import save_gif
from horseshoe.viz.grid import display_scale, save_png, save_samples
from horseshoe.viz.pictures import default_noise_timesteps, denoising_picture, noising_picture, sampling_frames

PICTURES = ("samples/grid.png", "noising.png", "denoising.png", "sampling.gif", "loss.png")  # also in --gallery


def demo_config(overrides: list[str] | None = None) -> Config:
    """The packaged demo config (configs/demo.toml), with --set overrides on top."""
    with resources.as_file(resources.files("horseshoe") / "configs" / "demo.toml") as path:
        config = load_toml(path)
    return apply_overrides(config, overrides or [])


@dataclass(frozen=True)
class DemoReport:
    """What a demo call did and measured; `rows()` is the table on its page."""

    steps: int
    steps_trained: int
    training_seconds: float
    images_per_sec: float
    final_loss: float
    stop_reason: str
    device: str
    precision: str
    parameters: int
    sampler: str
    sampling_seconds: float
    horseshoe_rate: float | None
    near_copies: float | None  # share of the 64 samples (None: one training image, every sample a copy)
    seconds: float

    def rows(self) -> dict[str, object]:
        rows = {"training steps": self.steps, "steps trained by this call": self.steps_trained,
                "training seconds (this call)": round(self.training_seconds, 1),
                "training images/s": round(self.images_per_sec, 1), "final loss": self.final_loss,
                "stopped because": self.stop_reason, "device": self.device, "precision": self.precision,
                "parameters": page.millions(self.parameters), "sampler": self.sampler,
                "sampling seconds (64 images)": round(self.sampling_seconds, 2)}
        if self.horseshoe_rate is not None:
            rows["horseshoe rate (geometric check)"] = f"{self.horseshoe_rate:.0%}"
        if self.near_copies is not None:
            rows["near-copies of training images"] = f"{self.near_copies:.0%}"
        rows["demo seconds (this call)"] = round(self.seconds, 1)
        return rows


@dataclass(frozen=True)
class DemoResult:
    out: Path
    report: DemoReport
    pictures: list[Path]
    copies: memorisation.CopyCheck


@dataclass(frozen=True)
class Drawn:
    """What drawing the pictures measured."""

    sampler: str
    sampling_seconds: float
    horseshoe_rate: float | None
    samples: torch.Tensor  # the samples, in [-1, 1]


def draw_pictures(out: Path, config: Config, count: int = 64, seed: int = 0, progress: bool = False) -> Drawn:
    """Samples, noising, denoising, GIF and loss curve from the run in `out`."""
    run = load_run(out)
    sample_config = run.sampler()
    started = time.perf_counter()
    drawn = run.generate(sample_config, count, seed=seed, progress="samples" if progress else None)
    sampling_seconds = time.perf_counter() - started
    samples = to_uint8(drawn)
    save_samples(samples, out / "samples")
    rate = horseshoe_rate(samples / 255.0) if config.data.is_builtin_silhouette else None
    scale = display_scale(config.data.height)
    data = first_images(config.data, 4)
    schedule = run.denoiser.schedule
    save_png(noising_picture(data, schedule, default_noise_timesteps(schedule.num_steps), scale=scale),
             out / "noising.png")
    records = list(run.records(sample_config, 4, seed))
    save_png(denoising_picture(records, columns=8, samples=4, scale=scale), out / "denoising.png")
    gif_config = run.sampler("ddim", 100)
    frames = sampling_frames(run.records(gif_config, 9, seed), 40, 100, with_x0=True, scale=scale)
    save_gif(frames, out / "sampling.gif", fps=12, hold_seconds=2.5)
    return Drawn(f"{sample_config.sampler}, {sample_config.steps} steps", sampling_seconds, rate, drawn)


def add_demo_sections(out: Path, demo: DemoReport) -> Path:
    """The demo's own sections on the run's page (which `horseshoe train`'s writer made): its 64 samples and
    numbers, and the pictures of how diffusion makes them."""
    samples = page.figure("samples/grid.png", f"64 new horseshoes from the EMA weights ({demo.sampler})")
    page.add_section(out, "demo", "The demo", samples + page.table(demo.rows()), order=5)
    how = (page.figure("sampling.gif", "sampling 9 images with DDIM (100 steps): x_t left, predicted x0 right")
           + page.figure("noising.png", "forward process: training images at increasing t (same noise per row)")
           + page.figure("denoising.png", f"backward process ({demo.sampler}): x_t and the predicted x0 at "
                                            f"chosen sampler steps"))
    return page.add_section(out, "process", "How diffusion makes them", how, order=20)


def copies_of(samples: torch.Tensor, config: Config, dataset: Dataset, out: Path) -> memorisation.CopyCheck:
    """Near-copies among the demo's samples against the images training held (`dataset`), on the page in place of
    those of the end-of-training grid (sample.count of them)."""
    training = memorisation.training_reference(dataset, config.data, config.train.seed)
    found = memorisation.check(samples, training, config.data, out / "copies.png", seed=config.train.seed)
    page.add_section(out, "copies", "Near-copies of training images", found.section("copies.png"), order=15)
    return found


def run_demo(out: str | Path, overrides: list[str] | None = None, gallery: str | Path | None = None,
             fresh: bool = False, progress: bool = True) -> DemoResult:
    """Train the demo model into `out` and draw all its pictures; optionally copy them to `gallery`."""
    started = time.perf_counter()
    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    config = demo_config(overrides)
    # The one way to train a run: `horseshoe train`'s, which also writes the page; an earlier demo continues.
    done = train(config, out, resume=checkpoint.latest(out), progress=progress)
    trained = done.training
    drawn = draw_pictures(out, config, progress=progress)
    found = copies_of(drawn.samples, config, done.dataset, out)  # the demo's own 64 samples, which it shows and scores
    demo = DemoReport(steps=trained.step, steps_trained=trained.steps_trained, training_seconds=trained.seconds,
                      images_per_sec=trained.images_per_sec, final_loss=trained.loss, stop_reason=trained.stop_reason,
                      device=done.device, precision=done.precision, parameters=done.parameters,
                      sampler=drawn.sampler, sampling_seconds=drawn.sampling_seconds,
                      horseshoe_rate=drawn.horseshoe_rate,
                      near_copies=found.novelty.near_copy_fraction if found.novelty else None,
                      seconds=time.perf_counter() - started)
    index = add_demo_sections(out, demo)
    pictures = [out / p for p in PICTURES] + ([found.picture] if found.picture else []) + [index]
    if gallery is not None:
        gallery = Path(gallery)
        gallery.mkdir(parents=True, exist_ok=True)
        for picture in PICTURES:
            shutil.copyfile(out / picture, gallery / Path(picture).name.replace("grid", "samples"))
    return DemoResult(out=out, report=demo, pictures=pictures, copies=found)
