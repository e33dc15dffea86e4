"""One CLI vocabulary: a flag means the same thing in every command, and the examples use it.

The table below is the vocabulary (README "Command line" says it to users). A flag that two commands
share must be in it; each use must say the flag's meaning in its help and take its type.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from horseshoe.cli.app import build_parser
from horseshoe.cli.common import noise_seed, positive_float, positive_int

README = Path(__file__).resolve().parents[1] / "README.md"
MANUALS = (README, README.parent / "docs" / "training.md")  # whose shell examples must parse

# flag -> (a phrase its help must contain, its argparse type; None: any)
FLAGS = {
    "--out": ("to write: ", None),  # "folder to write: ..." or "file to write: ..." (see FOLDER_OUT)
    "--count": ("how many", positive_int),
    "--steps": ("steps", positive_int),  # "optimizer steps" in train, "sampler steps" elsewhere (see below)
    "--seed": ("seed", noise_seed),
    "--device": ("auto, cpu, cuda, cuda:N or mps", None),
    "--weights": ("'ema' (averaged) or 'model' (raw) weights", None),
    "--ema-length": ("post-hoc EMA", float),
    "--data": ("folder of images", None),
    "--config": ("config file", None),
    "--set": ("override", None),
    "--sampler": ("sample", None),
    "--eta": ("DDIM", float),
    "--batch-size": ("images per network call", positive_int),
    "--no-progress": ("no progress bar", None),
    "--class": ("class", None),
    "--guidance": ("guidance scale", None),
    "--spacing": ("timestep spacing", None),
    "--image": ("the image", None),
    "--gif": ("GIF", None),
    "--frames": ("frames, spread over", positive_int),
    "--minutes": ("for this long", positive_float),
    "--resume": ("continue", None),
    "--overwrite": ("start over in an --out that already has checkpoints", None),
}
FOLDER_OUT = {"train", "distill", "sample", "demo", "export", "data export"}  # write several files; the rest write one
NO_OUT = {"evaluate": "writes into the run (eval.json, eval/, index.html)", "config": "prints TOML",
          "serve": "answers in the browser"}
NO_DEVICE = {"export": "copies tensors from file to file"}
RETIRED = {"--rows": "--count", "--samples": "--count"}


def commands(parser: argparse.ArgumentParser | None = None, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf command by name ('train', 'data export', ...), walking nested subcommands."""
    found = {}
    for action in (parser or build_parser())._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = commands(sub, f"{prefix}{name} ")
                found.update(nested or {f"{prefix}{name}": sub})
    return found


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings if s not in ("-h", "--help")}


COMMANDS = commands()


def test_the_walk_finds_every_command():
    assert {"train", "sample", "denoise", "evaluate", "data preview", "data export", "edit", "export"} <= set(COMMANDS)


def test_a_flag_that_commands_share_is_in_the_table():
    uses: dict[str, list[str]] = {}
    for name, parser in COMMANDS.items():
        for flag in options(parser):
            uses.setdefault(flag, []).append(name)
    shared = {flag: names for flag, names in uses.items() if len(names) > 1}
    assert not set(shared) - set(FLAGS), {f: shared[f] for f in set(shared) - set(FLAGS)}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_flag_means_what_the_table_says(name):
    for flag, action in options(COMMANDS[name]).items():
        assert flag not in RETIRED, f"{name} {flag}: say {RETIRED[flag]}"
        if flag not in FLAGS:
            continue
        phrase, kind = FLAGS[flag]
        assert phrase in (action.help or ""), f"{name} {flag}: help {action.help!r} lacks {phrase!r}"
        if kind is not None:
            assert action.type is kind, f"{name} {flag}: type {action.type}, not {kind}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_out_is_where_the_command_writes_a_folder_or_a_file(name):
    out = options(COMMANDS[name]).get("--out")
    if name in NO_OUT:
        assert out is None
        return
    assert out is not None, f"{name} writes without --out"
    kind = "folder" if name in FOLDER_OUT else "file"
    assert out.help.startswith(f"{kind} to write: "), f"{name} --out: {out.help!r} should say it is a {kind}"
    assert out.default is not None or "(required)" in out.help or "(default: RUN-" in out.help  # one made from RUN


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_steps_say_which_steps(name):
    steps = options(COMMANDS[name]).get("--steps")
    if steps is not None:
        wanted = "optimizer steps" if name in ("train", "distill") else "sampler steps, one network evaluation each"
        assert wanted in steps.help, f"{name} --steps: {steps.help!r}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_command_that_loads_a_run_takes_device_and_only_train_trains_on_data(name):
    parser = COMMANDS[name]
    loads_run = any(a.dest == "run" for a in parser._actions)
    if loads_run and name not in NO_DEVICE:
        assert "--device" in options(parser), f"{name} loads a run but has no --device"
    data = options(parser).get("--data")
    if data is not None:
        assert ("train on" in data.help) == (name == "train"), f"{name} --data: {data.help!r}"


def command_lines(text: str) -> list[list[str]]:
    """The `horseshoe ...` commands in shell text (`-m horseshoe` too): the arguments after `horseshoe`."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        for command in re.split(r";|&&|\|\|?", re.sub(r"(^|\s)#.*", "", line)):
            words = shlex.split(command.split(">")[0])
            start = 1 if words[:1] == ["horseshoe"] else next(
                (i + 2 for i in range(len(words) - 1) if words[i:i + 2] == ["-m", "horseshoe"]), None)
            if start is not None:
                found.append(words[start:])
    return found


def examples() -> list[list[str]]:
    lines = []
    for parser in COMMANDS.values():
        lines += command_lines(parser.description.split("example:\n", 1)[1])
    for manual in MANUALS:
        for block in re.findall(r"```bash\n(.*?)```", manual.read_text(), re.S):
            lines += command_lines(block)
    return lines


def test_the_examples_are_found():
    found = examples()
    assert ["export", "runs/demo", "--out", "demo-model/"] in found
    assert ["train", "--out", "runs/big", "--steps", "20000"] in found  # through torchrun -m horseshoe
    assert len(found) > len(COMMANDS)


@pytest.mark.parametrize("argv", examples(), ids=" ".join)
def test_every_example_parses(argv, capsys):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"horseshoe {' '.join(argv)}: {capsys.readouterr().err.strip()}")
    assert getattr(args, "legacy_out", None) is None, "an example uses the folder as a positional argument"


def test_the_retired_folder_positional_still_works_with_a_warning(tmp_path, capsys):
    from horseshoe.cli.app import main

    assert main(["data", "export", "--count", "2", str(tmp_path / "a"), "--set", "data.image_size=16"]) == 0
    assert "deprecated: use --out" in capsys.readouterr().err
    assert len(list((tmp_path / "a").glob("*.png"))) == 2
    assert main(["data", "export", "--count", "2", "--set", "data.image_size=16"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err
