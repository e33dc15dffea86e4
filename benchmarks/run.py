"""`make bench`: horseshoe against diffusers and lucidrains on the same network, in one run.

Each figure is measured in its own process (clean memory high-water marks, nothing carried between
models) and appended to benchmarks/results/<machine>-<date>.json; the Markdown table with the ratios
goes beside it. --quick skips torch.compile and the 64x64 network.

    python benchmarks/run.py [--quick] [--device cuda] [--only horseshoe,diffusers]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import markdown  # noqa: E402

PEERS = ("horseshoe", "diffusers", "lucidrains")


def plan(args) -> list[list[str]]:
    """The measurements, as command lines for measure.py."""
    models = [m for m in PEERS if m in args.only]
    runs = [["peak"], ["data", "--size", "32", "--batch", "128"]]
    for model in models:
        for precision in ("bf16", "fp32"):
            runs.append(["train", "--model", model, "--size", "32", "--precision", precision])
            if not args.quick and model != "lucidrains":
                runs.append(["train", "--model", model, "--size", "32", "--precision", precision, "--mode", "compile"])
        runs.append(["sample", "--model", model, "--size", "32"])
        # Not lucidrains: its linear attention fails under the counting mode (a float/bf16 mix), and the
        # convolution floor is only set against diffusers.
        if model != "lucidrains":
            for size in ("32",) if args.quick else ("32", "64"):
                runs.append(["tensors", "--model", model, "--size", size])
            runs.append(["convs", "--model", model, "--size", "32"])
        if not args.quick:
            for precision in ("bf16", "fp32"):
                runs.append(["train", "--model", model, "--size", "64", "--precision", precision, "--repeats", "5"])
    # The package's own default network (the demo's), 1 channel, at the batch the demo trains with.
    for size in (32,) if args.quick else (32, 64):
        for precision in ("bf16", "fp32"):
            runs.append(["train", "--model", "demo", "--size", str(size), "--channels", "1", "--batch", "128",
                         "--precision", precision])
            if not args.quick:
                runs.append(["train", "--model", "demo", "--size", str(size), "--channels", "1", "--batch", "128",
                             "--precision", precision, "--mode", "compile"])
    return [r + ["--device", args.device] for r in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="no torch.compile, no 64x64 network")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default=",".join(PEERS), help="comma-separated models to compare")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    args.only = args.only.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    name = f"{args.device}-{platform.machine()}-{stamp}" + ("-quick" if args.quick else "")
    results = []
    for command in plan(args):
        print("measuring", " ".join(command), flush=True)
        done = subprocess.run([sys.executable, str(HERE / "measure.py"), *command], capture_output=True, text=True)
        if done.returncode != 0:
            error = (done.stderr.strip().splitlines() or ["failed"])[-1]
            print(f"  skipped: {error}", flush=True)
            results.append({"task": command[0], "command": command, "error": error})
            continue
        record = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(record)
        print("  ", {k: round(v, 1) if isinstance(v, float) else v for k, v in record.items()}, flush=True)
    meta = {"machine": platform.platform(), "processor": platform.processor(), "python": platform.python_version(),
            "date": stamp, "quick": args.quick}
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    table = markdown(meta, results)
    (out / f"{name}.md").write_text(table)
    print(table)
    print(f"wrote {out / (name + '.json')} and {out / (name + '.md')}")


if __name__ == "__main__":
    main()
