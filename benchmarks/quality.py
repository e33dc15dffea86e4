"""`make bench-quality`: how long until the samples are good, horseshoe against diffusers and lucidrains
each trained by its own documented recipe (benchmarks/quality_recipes.py), on the same images.

The systems train one after another, each in its own process (nothing carried over: CUDA flags,
compile caches, memory), with the same threads, allocator setting and device. Every --interval
seconds of training (the training clock stops while a system is evaluated) each draws --samples
images from its EMA weights with its own sampler, scored against real images by SWD
(horseshoe.metrics.swd) and by
  --data horseshoes: the share of valid horseshoes (horseshoe.metrics.shape), on the demo's built-in
                     32x32 silhouettes;
  --data digits:     scikit-learn's 1,797 digits upscaled to 32x32 (benchmarks/digits.py): the share a
                     classifier fitted on the real digits recognises with confidence >= 0.9, and how
                     evenly they cover the ten digits.
Each system stops at --minutes of training, or sooner when its recipe's schedule ends (the demo's 650
steps). diffusers' default pipeline (DDPM, 1000 network calls an image) is drawn only once, at the end,
with --final-samples images; along the way it is sampled with DDIM-50.

    python benchmarks/quality.py [--data horseshoes|digits] [--minutes 30] [--interval 30] [--samples 256]
                                 [--systems horseshoe,diffusers,lucidrains] [--device auto] [--threads N]
                                 [--at 2.5 5 12.5] [--peer-samples 32] [--tag NAME] [--recipe NAME KEY=VALUE ... ]

--at evaluates at the same few training times for every system instead of every --interval: on a CPU a
peer's evaluation costs minutes (lucidrains samples with 250 network calls an image), so a long run
with 30-second evaluations would take hours; a few chosen times still settle a ratio such as "90% at
2.5 minutes, and no peer at 12.5" (5x sooner). --peer-samples scores the peers on fewer samples than
horseshoe, whose share near a threshold needs many, when a peer's share is far from it.

Writes benchmarks/results/quality-<data>-<device>-<date>[-<tag>].json, .md (the tables) and .png (the curves), and
the last samples of each system into quality-<data>-<device>-<date>-samples/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality_report import markdown, plot  # noqa: E402

SYSTEMS = ("horseshoe", "diffusers", "lucidrains")
DATA = ("horseshoes", "digits")


def base_config(data: str, digits_dir: Path | None, overrides: list[str]):
    """The demo config (horseshoe's recipe and the shared data section), for the digits on their folder:
    unlabelled (unconditional), and never mirrored (a mirrored 2 is no digit)."""
    from horseshoe.runs.demo import demo_config

    shared = [o for o in overrides if o.split("=", 1)[0].strip().startswith("data.") or
              o.split("=", 1)[0].strip() == "train.seed"]
    if shared:
        raise ValueError(f"--set {shared[0]}: the data and its order are shared by all systems (choose with --data)")
    digits = [f"data.path={str(digits_dir)!r}", "data.hflip=false", "data.labels='none'"] if data == "digits" else []
    return demo_config(digits + overrides)


class Scorer:
    """SWD against `count` real training images, plus the shape check (horseshoes) or the digit judge (digits).

    `floor` is the same score for fresh real images: what a perfect model would get at this sample count.
    """

    def __init__(self, config, data: str, count: int, seed: int) -> None:
        from horseshoe.data import build_dataset, builtin_images, training_images
        from horseshoe.data.transforms import to_model_range
        from horseshoe.metrics.swd import SWDReference

        self.config, self.judge = config, None
        d = config.data
        if data == "digits":
            from digits import DigitJudge

            self.judge = DigitJudge().fit()
            dataset = build_dataset(d)  # reference and floor: two disjoint random sets of the real digits
            order = np.random.default_rng(seed).permutation(len(dataset))
            reference, floor = (to_model_range(dataset.get_batch(np.sort(i))) for i in
                                (order[:count], order[count:2 * count]))
        else:
            reference, floor = training_images(d, count, seed), builtin_images(d, 10**9, count)
        self.reference = SWDReference(reference, seed=seed)
        self.floor = self.score(floor)

    def score(self, images: torch.Tensor) -> dict:
        """{'swd': SWD x1e3, 'good': valid/recognised share, (digits) 'covered', 'evenness', 'histogram'}."""
        from horseshoe.runs.evaluate import quality

        found = quality(images, self.reference, self.config)
        out = {"swd": found.swd.mean, "good": found.horseshoe_rate}
        if self.judge is not None:
            judged = self.judge.judge(images)
            out.update(good=judged.recognised, covered=judged.covered, evenness=judged.evenness,
                       histogram=list(judged.histogram))
        return out


def evaluate(system, scorer: Scorer, sampler: str, count: int, args, trained: float,
             images: int) -> tuple[dict, torch.Tensor]:
    """One point of the curve: `count` samples from the system's EMA weights, scored (and the samples)."""
    started, batch = time.perf_counter(), args.sample_batch
    # In batches of --sample-batch (bounded memory), each with its own seed: the same noise at every point.
    # Clipped to [-1, 1], as saved images would be (lucidrains' sampler may step slightly outside).
    samples = torch.cat([system.sample(min(batch, count - i), args.seed + i, sampler)
                         for i in range(0, count, batch)]).clamp(-1, 1)
    sampling = time.perf_counter() - started
    point = {"seconds": trained, "images": images, "step": system.step, "sampler": sampler, "samples": count,
             **scorer.score(samples), "sampling_seconds": sampling, "eval_seconds": time.perf_counter() - started}
    extra = f", {point['covered']} digits, evenness {point['evenness'] + 0.0:.2f}" if "covered" in point else ""
    print(f"  {system.name:>10} {trained / 60:6.2f} min {images:>8} images  {sampler}: good {point['good']:6.1%}"
          f"{extra}, SWD {point['swd']:7.2f}  (eval {point['eval_seconds']:.0f} s)", flush=True)
    return point, samples


def evaluation_times(args) -> list[float]:
    """Seconds of training at which to evaluate (the first step at or past each; always also at the end):
    the --at minutes, or every --interval seconds of the budget."""
    if args.at:
        return sorted(60 * m for m in args.at)
    return [args.interval * k for k in range(1, int(60 * args.minutes / args.interval) + 1)]


END_GRACE = 0.02  # share of the budget: no separate end evaluation this soon after the last one


def timed_run(system, scorer: Scorer, args, sync=lambda: None, clock=time.perf_counter) -> dict:
    """Train until --minutes of training time (or the recipe's end), evaluating at evaluation_times and at the end.

    Only training steps are timed (data, forward, backward, optimizer, EMA): the clock stops for
    evaluations. The first steps' one-off costs count, as they would for a user.
    """
    budget, trained, images, points, last = 60 * args.minutes, 0.0, 0, [], None
    times = evaluation_times(args)
    while not system.done and trained < budget:
        started = clock()
        images += system.train_step()
        sync()
        trained += clock() - started
        due = bool(times) and trained >= times[0]
        # The end is always scored, unless a scheduled evaluation just did (an --at time just short of the
        # budget): a second one would cost minutes for a peer and measure the same weights.
        just_scored = bool(points) and trained - points[-1]["seconds"] < END_GRACE * budget
        end = (system.done or trained >= budget) and not just_scored
        if due or end:
            point, last = evaluate(system, scorer, system.eval_sampler, args.samples, args, trained, images)
            points.append(point)
            times = [t for t in times if t > trained]
    final = []
    if system.final_sampler and args.final_samples:
        point, _ = evaluate(system, scorer, system.final_sampler, args.final_samples, args, trained, images)
        final.append(point)
    return {"points": points, "final": final, "trained_seconds": trained, "images": images, "steps": system.step,
            "images_per_sec": images / max(trained, 1e-9), "stopped": "recipe done" if system.done else "budget",
            "last_samples": last}


def recipe_settings(args) -> dict[str, list[str]]:
    """The horseshoe recipes of --recipe NAME KEY=VALUE...: system 'horseshoe-NAME' and its settings."""
    return {f"horseshoe-{name}": settings for name, *settings in args.recipe or []}


def build(name: str, config, device: torch.device, precision: str | None, overrides: list[str]):
    import quality_recipes as recipes

    if name == "horseshoe":
        return recipes.HorseshoeSystem(recipes.HorseshoeRecipe(tuple(overrides)), config, device, precision)
    if name == "diffusers":
        return recipes.DiffusersSystem(recipes.DiffusersRecipe(), config, device, precision)
    return recipes.LucidrainsSystem(recipes.LucidrainsRecipe(), config, device, precision)


def run_system(args) -> dict:
    """One system, in this process: its record for the report."""
    from horseshoe.data.transforms import to_uint8
    from horseshoe.runtime import keep_memory_mapped, pick_device
    from horseshoe.viz.grid import display_scale, make_grid, save_png

    # Each child keeps freed activation memory in its heap, as horseshoe's CLI does (or make's MALLOC_* do).
    allocator = "mallopt" if keep_memory_mapped() else ",".join(k for k in os.environ if k.startswith("MALLOC_")) \
        or "glibc default"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        digits_dir = None
        if args.data == "digits":
            from digits import export_digits

            digits_dir = export_digits(Path(tmp) / "digits", labelled=False)
        overrides = [*args.set, *recipe_settings(args).get(args.system, [])]
        config = base_config(args.data, digits_dir, overrides)
        scorer = Scorer(config, args.data, args.samples, args.seed)
        system = build(args.system.split("-")[0], config, device, args.precision, overrides)
        system.name = args.system
        print(f"{args.system}: {system.parameters / 1e6:.1f}M parameters, batch {system.batch_size}, "
              f"{system.precision}, samples with {system.eval_sampler}", flush=True)
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        result = timed_run(system, scorer, args, sync)
    samples = result.pop("last_samples")
    if samples is not None and args.grids:
        grid = make_grid(to_uint8(samples[:64]), columns=8, scale=display_scale(samples.shape[-2]))
        save_png(grid, Path(args.grids) / f"{args.system}.png")
    return {"system": args.system, "device": str(device), "precision": system.precision,
            "threads": torch.get_num_threads(), "allocator": allocator, "parameters": system.parameters,
            "batch_size": system.batch_size, "eval_sampler": system.eval_sampler,
            "final_sampler": system.final_sampler, "recipe": system.describe(), **result, "floor": scorer.floor}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("torch", "horseshoe", "diffusers", "denoising-diffusion-pytorch", "ema-pytorch", "scikit-learn"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=DATA, default="horseshoes", help="what to train on (default: horseshoes)")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time each system gets (default 30)")
    parser.add_argument("--interval", type=float, default=30.0,
                        help="seconds of training between evaluations, the same for all (default 30)")
    parser.add_argument("--at", type=float, nargs="+", metavar="MINUTES",
                        help="evaluate at these minutes of training (the same for all) instead of every --interval")
    parser.add_argument("--tag", help="added to the results' file names, so that one day's runs do not overwrite")
    parser.add_argument("--samples", type=int, default=256, help="samples per evaluation (default 256)")
    parser.add_argument("--peer-samples", type=int,
                        help="samples per evaluation for diffusers and lucidrains (default: --samples): their "
                             "samplers cost minutes per evaluation on a CPU, horseshoe's seconds")
    parser.add_argument("--sample-batch", type=int, default=128, help="samples drawn at once (default 128)")
    parser.add_argument("--final-samples", type=int, default=64,
                        help="samples of diffusers' 1000-step DDPM pipeline, drawn once at the end (0: skip; "
                             "default 64: on 2 CPU cores 256 would take hours)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, run in this order")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    parser.add_argument("--threads", type=int, help="torch threads for every system (default: torch's)")
    parser.add_argument("--precision", choices=("fp32", "bf16"),
                        help="the same precision for all (default: each recipe's own)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override horseshoe's demo recipe (not data.* or train.seed, which all share)")
    parser.add_argument("--seed", type=int, default=0, help="sampling and reference seed")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for the JSON, Markdown and plot")
    parser.add_argument("--report", metavar="JSON", help="only redraw the tables and the plot of a results file")
    parser.add_argument("--recipe", action="append", nargs="+", metavar="NAME [KEY=VALUE ...]",
                        help="also train horseshoe with these settings on top of the demo recipe and --set, as "
                             "system 'horseshoe-NAME' after --systems (repeatable): recipes compared in one run")
    parser.add_argument("--system", help=argparse.SUPPRESS)  # a child: one system
    parser.add_argument("--record", help=argparse.SUPPRESS)  # where a child writes its record
    parser.add_argument("--grids", help=argparse.SUPPRESS)  # where a child writes its last samples
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown or not args.systems:
        parser.error(f"--systems: unknown system {unknown[0]!r}; choose from {', '.join(SYSTEMS)}" if unknown
                     else "--systems: name at least one system")
    if args.peer_samples is None:
        args.peer_samples = args.samples
    for name in ("minutes", "interval", "samples", "peer_samples", "sample_batch"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    recipes = recipe_settings(args)
    if any(not name.replace("horseshoe-", "", 1).replace("_", "").isalnum() for name in recipes):
        parser.error(f"--recipe: a name of letters, digits and '_', got {sorted(recipes)}")
    if len(recipes) != len(args.recipe or []):
        parser.error("--recipe: each name once")
    args.systems += list(recipes)
    if args.system is not None and args.system not in args.systems:
        parser.error(f"--system: unknown system {args.system!r}")
    if args.at and min(args.at) <= 0:
        parser.error(f"--at: every time must be positive, got {min(args.at)}")
    if args.tag and not args.tag.replace("-", "").isalnum():
        parser.error(f"--tag: letters, digits and '-' only, got {args.tag!r}")
    if args.final_samples < 0 or (args.threads is not None and args.threads < 1):
        parser.error("--final-samples must be >= 0 and --threads >= 1")
    return args


def write_report(path: Path, meta: dict, records: list[dict]) -> None:
    """PATH.json, and beside it PATH.md (the tables) and PATH.png (the curves)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"meta": meta, "systems": records}, indent=2))
    plot(meta, records, path.with_suffix(".png"))
    table = markdown(meta, records, path.with_suffix(".png").name)
    path.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {path}.json, .md and .png")


def main() -> None:
    args = parse_args()
    if args.system:  # a child
        if not args.system.startswith("horseshoe"):
            args.samples = args.peer_samples  # this process's own copy: one system's evaluations
        Path(args.record).write_text(json.dumps(run_system(args)))
        return
    if args.report:  # the tables and the plot again, from a results file
        found = json.loads(Path(args.report).read_text())
        write_report(Path(args.report).with_suffix(""), found["meta"], found["systems"])
        return
    try:
        for settings in [[], *recipe_settings(args).values()]:  # a bad --set or --recipe fails now, not in an hour
            base_config(args.data, Path("."), [*args.set, *settings])
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    out = Path(args.out)
    stamp = datetime.date.today().isoformat()
    from horseshoe.runtime import pick_device

    name = f"quality-{args.data}-{pick_device(args.device).type}-{stamp}" + (f"-{args.tag}" if args.tag else "")
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for system in args.systems:
            print(f"training {system} for up to {args.minutes:g} min", flush=True)
            record = Path(tmp) / f"{system}.json"
            # TQDM_DISABLE: lucidrains' sampler draws a progress bar of its own; each child prints its points.
            done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--system", system, "--record",
                                   str(record), "--grids", str(out / f"{name}-samples")],
                                  env={**os.environ, "TQDM_DISABLE": "1"})
            if done.returncode != 0:
                records.append({"system": system, "error": f"exit status {done.returncode}"})
                print(f"  {system} failed (exit status {done.returncode}); going on", flush=True)
                continue
            records.append(json.loads(record.read_text()))
    meta = {"date": stamp, "data": args.data, "machine": platform.platform(), "processor": platform.processor(),
            "minutes": args.minutes, "interval_seconds": None if args.at else args.interval, "at_minutes": args.at,
            "samples": args.samples, "peer_samples": args.peer_samples,
            "final_samples": args.final_samples, "seed": args.seed, "precision": args.precision or "each recipe's",
            "horseshoe_set": args.set, "recipes": recipe_settings(args), "versions": versions()}
    write_report(out / name, meta, records)
    print(f"the last samples of each system: {out / name}-samples/")


if __name__ == "__main__":
    main()
