"""Few-step students of one teacher run, compared in one process: quality at 1, 2 and 4 steps against the teacher's own
sampler, near-copies, tuning time against the teacher's training time, and sampling time as a ratio to the teacher's.

    python benchmarks/distill.py runs/demo --method ect --method cd --steps 300

For each method (or --variant NAME:METHOD:STEPS:SETTINGS, a student of its own settings) it runs `horseshoe distill`
into OUT/<method or NAME> (or reuses a finished student there with --reuse),
then draws --count samples at seed 0 from the teacher (its sample section: 20 steps of SDE-DPM-Solver++) and from
each student, and scores them: SWD x1e3 against --count training images, the share of valid horseshoes (built-in
horseshoes only), the near-copy share, and for a run with classes the share the judge reads as the class asked.
Timing: 64 samples, the best of --repeats draws, teacher and students in the same process. Results go to
benchmarks/results/distill-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import torch

from horseshoe.data import training_images
from horseshoe.data.transforms import to_uint8
from horseshoe.metrics.novelty import novelty
from horseshoe.metrics.shape import horseshoe_rate, opening_accuracy
from horseshoe.metrics.swd import SWDReference
from horseshoe.runs.distill import distill, finished_teacher
from horseshoe.runs.load import LoadedRun, load_run
from horseshoe.training import checkpoint

HERE = Path(__file__).resolve().parent


def score(run: LoadedRun, config, count: int, reference: SWDReference, training: torch.Tensor) -> dict:
    """SWD, valid share, near-copies (and for the four-direction shoes, class accuracy) of `count` samples."""
    d = run.config.data
    labels = None
    if run.classes:
        labels = torch.arange(count) % len(run.classes)
    samples = run.generate(config, count, seed=0, labels=labels)
    images = to_uint8(samples) / 255.0
    row = {"sampler": config.sampler, "steps": config.steps, "swd_x1e3": round(reference.distance(samples).mean, 2),
           "near_copies": round(novelty(samples, training, d.hflip, d.vflip, d.rot90).near_copy_fraction, 4)}
    if d.is_builtin_silhouette:
        row["valid"] = round(horseshoe_rate(images), 4)
    if labels is not None and d.builtin == "horseshoes":
        row["class_accuracy"] = round(opening_accuracy(images, [run.classes[i] for i in labels]), 4)
    return row


def tuning_seconds(run: Path) -> float:
    """Wall seconds of the student's training as its log's end event says (the teacher's paths included)."""
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return round(sum(e["seconds"] for e in events if e.get("event") == "end"), 1)


def seconds_for(run: LoadedRun, config, count: int, repeats: int) -> list[float]:
    labels = None if not run.classes else torch.arange(count) % len(run.classes)
    times = []
    for _ in range(repeats + 1):  # the first warms up
        started = time.perf_counter()
        run.generate(config, count, seed=0, labels=labels)
        times.append(time.perf_counter() - started)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("teacher")
    parser.add_argument("--method", action="append", default=[])
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:METHOD:STEPS:SETTINGS, a student of its own settings (comma-separated --set values; "
                        "STEPS empty: the default), trained and timed in the same process as the others")
    parser.add_argument("--steps", type=int, help="steps of every --method student (default: distill's)")
    parser.add_argument("--set", action="append", default=[], help="a student setting, for every method")
    parser.add_argument("--out", default="runs/distill-bench")
    parser.add_argument("--count", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="score students already in OUT/<method>")
    parser.add_argument("--tag", default="")
    parser.add_argument("--rho", type=float, help="sample every student at this rho (default: its own)")
    args = parser.parse_args()
    methods = args.method or ([] if args.variant else ["ect", "cd"])
    students = [(method, method, args.steps, tuple(args.set)) for method in methods]
    for variant in args.variant:
        name, method, steps, settings = variant.split(":", 3)
        students.append((name, method, int(steps) if steps else None, tuple(x for x in settings.split(",") if x)))
    torch.manual_seed(0)
    teacher = finished_teacher(args.teacher)
    elder = load_run(teacher.checkpoint)
    training = training_images(elder.config.data, args.count, elder.config.train.seed)
    reference = SWDReference(training, seed=0)
    results = {"teacher": str(teacher.checkpoint), "teacher_step": teacher.step,
               "teacher_training_seconds": teacher.seconds, "count": args.count,
               "date": datetime.date.today().isoformat(), "threads": torch.get_num_threads(), "rows": []}
    print(f"teacher {teacher.checkpoint}: trained {teacher.seconds} s", flush=True)
    results["rows"].append({"who": "teacher", **score(elder, elder.sampler(), args.count, reference, training)})
    print(results["rows"][-1], flush=True)
    teacher_times = seconds_for(elder, elder.sampler(), 64, args.repeats)
    for who, method, steps, settings in students:
        out = Path(args.out) / who
        if not (args.reuse and checkpoint.has_checkpoints(out)):
            distill(args.teacher, out, method, steps=steps, overwrite=True, progress=False, overrides=settings)
        student = load_run(out, sample_overrides=() if args.rho is None else (f"sample.rho={args.rho}",))
        for n in (1, 2, 4):
            row = {"who": who, "method": method, "settings": list(settings), "tuning_seconds": tuning_seconds(out),
                   "student_steps": student.step,
                   **score(student, student.sampler(steps=n), args.count, reference, training)}
            if n == 2:
                times = seconds_for(student, student.sampler(steps=2), 64, args.repeats)
                ratios = sorted(s / t for s, t in zip(times, teacher_times, strict=True))
                row.update(seconds_64=round(min(times), 3), teacher_seconds_64=round(min(teacher_times), 3),
                           time_ratio_median=round(ratios[len(ratios) // 2], 4),
                           time_ratio_range=[round(ratios[0], 4), round(ratios[-1], 4)])
            results["rows"].append(row)
            print(row, flush=True)
    name = f"distill{'-' + args.tag if args.tag else ''}-{results['date']}"
    (HERE / "results" / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote benchmarks/results/{name}.json")


if __name__ == "__main__":
    main()
