"""Older checkpoints keep their weights and lose the optimizer state: the newest two stay resumable, the
rest load for sampling, and no kill while pruning leaves a checkpoint neither resumable nor loadable."""

import json
import logging

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_checkpoint_safety import SCALER, Killed, hidden, kill_at, make, pointed, swap, value_of  # noqa: F401
from test_nothing_lost import snapshot
from training_helpers import tiny_trainer

from horseshoe.cli import main
from horseshoe.runs.load import load_run
from horseshoe.training import checkpoint

WEIGHTS = ("model", "ema", "rng")  # what a weights-only checkpoint still holds


def names(paths) -> list[str]:
    return [p.name for p in paths]


def steps(run) -> list:
    return sorted((run / "checkpoints").glob("step-*"))


def weights_only(path, resumable: str) -> str:
    """The error that refuses to resume from `path`; resumable: what it lists."""
    return (f"checkpoint {str(path)!r} holds weights only (no optimizer.safetensors: a run keeps the optimizer "
            f"state in its newest 2 checkpoints), so it can be sampled, evaluated and exported but not resumed; "
            f"{resumable}")


def test_older_checkpoints_keep_their_weights_and_lose_only_the_optimizer_state(tmp_path):
    for step in range(1, 6):
        checkpoint.save(tmp_path, step, make(float(step), step), keep=4)
    found = steps(tmp_path)
    assert names(found) == ["step-00000002", "step-00000003", "step-00000004", "step-00000005"]
    assert [checkpoint.is_resumable(p) for p in found] == [False, False, True, True]
    for path in found[:2]:
        assert sorted(p.name for p in path.iterdir()) == sorted(checkpoint.REQUIRED_FILES)
        assert checkpoint.missing_files(path) == [] and checkpoint.resolve(path) == path  # complete: loadable
        data = checkpoint.load(path, parts=WEIGHTS)
        assert {float(data.tensors[part]["w"][0]) for part in ("model", "ema")} == {data.state["step"]}
        for refused, arguments in ((checkpoint.load, {}), (checkpoint.resolve, {"resume": True})):
            with pytest.raises(ValueError) as raised:
                refused(path, **arguments)
            assert str(raised.value) == weights_only(path, "resumable: step-00000004, step-00000005")
    assert [value_of(p) for p in found[2:]] == [4.0, 5.0]  # every part, the optimizer's JSON state included
    assert pointed(tmp_path) == found[-1] and checkpoint.resolve(tmp_path, resume=True) == found[-1]


def test_the_optimizer_json_state_travels_in_the_optimizer_file(tmp_path):
    data = make(1.0, 1)
    data.state["grad_scaler"] = SCALER
    path = checkpoint.save(tmp_path, 1, data, keep=3)
    state = json.loads((path / "state.json").read_text())
    assert state["version"] == 2 and "optimizer_groups" not in state and "grad_scaler" not in state
    with safe_open(str(path / "optimizer.safetensors"), framework="pt") as opened:
        assert json.loads(opened.metadata()["state"]) == {"optimizer_groups": [{"lr": 1.0}], "grad_scaler": SCALER}
    loaded = checkpoint.load(path).state
    assert loaded["optimizer_groups"] == [{"lr": 1.0}] and loaded["grad_scaler"] == SCALER
    assert "grad_scaler" not in checkpoint.load(path, parts=WEIGHTS).state


def rewrite_optimizer(path, metadata) -> None:
    data = checkpoint.load(path)
    save_file(data.tensors["optimizer"], str(path / "optimizer.safetensors"), metadata=metadata)


@pytest.mark.parametrize("metadata, reason", [
    (None, "optimizer.safetensors metadata lacks 'state'"),
    ({"state": "{"}, "optimizer.safetensors metadata: unreadable JSON (Expecting property name enclosed in "
                     "double quotes: line 1 column 2 (char 1))"),
    ({"state": "[]"}, "optimizer.safetensors metadata must hold an object, not []"),
    ({"state": "{}"}, "optimizer.safetensors metadata lacks field 'optimizer_groups'"),
    ({"state": '{"optimizer_groups": [1]}'},
     "optimizer.safetensors metadata field 'optimizer_groups' must be a list of objects, not [1]"),
    ({"state": json.dumps({"optimizer_groups": [], "grad_scaler": {**SCALER, "scale": 0.0}})},
     "optimizer.safetensors metadata grad_scaler field 'scale' must be a number in (0, inf), not 0.0"),
])
def test_tampered_optimizer_metadata_is_a_one_line_error(tmp_path, metadata, reason):
    path = checkpoint.save(tmp_path, 1, make(1.0, 1), keep=3)
    rewrite_optimizer(path, metadata)
    with pytest.raises(ValueError) as raised:
        checkpoint.load(path)
    assert str(raised.value) == f"checkpoint {str(path)!r} is corrupt or incomplete: {reason}"
    assert checkpoint.load(path, parts=WEIGHTS).state["step"] == 1  # the weights still load


def test_a_version_1_checkpoint_with_the_optimizer_state_in_state_json_still_loads(tmp_path):
    path = checkpoint.save(tmp_path, 1, make(1.0, 1), keep=3)
    rewrite_optimizer(path, None)
    state = json.loads((path / "state.json").read_text())
    state.update(version=1, optimizer_groups=[{"lr": 1.0}], grad_scaler=SCALER)
    (path / "state.json").write_text(json.dumps(state))
    assert value_of(path) == 1.0 and checkpoint.load(path).state["grad_scaler"] == SCALER


def test_a_broken_latest_falls_back_to_the_newest_resumable_checkpoint(tmp_path, caplog):
    for step in range(1, 5):
        checkpoint.save(tmp_path, step, make(float(step), step), keep=4)
    root = tmp_path / "checkpoints"
    (root / "step-00000004" / "optimizer.safetensors").unlink()  # by hand: the newest is weights only
    (root / "latest").write_text("step-00000099\n")
    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        assert checkpoint.resolve(tmp_path, resume=True) == root / "step-00000003"
        (root / "step-00000003" / "optimizer.safetensors").unlink()
        assert checkpoint.latest(tmp_path) == root / "step-00000004"  # none resumable: one to sample from
        with pytest.raises(ValueError) as raised:
            checkpoint.resolve(tmp_path, resume=True)
    assert str(raised.value) == weights_only(root / "step-00000004", "none of its neighbours is resumable either")
    complaint = f"{str(root / 'latest')!r} names step-00000099, which does not exist; "
    assert [r.getMessage() for r in caplog.records] == [
        complaint + "using the newest resumable checkpoint, step-00000003",
        *2 * [complaint + "using the newest complete checkpoint, step-00000004 (weights only: none is resumable)"]]


@pytest.mark.usefixtures("swap")  # with renameat2's atomic exchange, and again without
def test_a_kill_at_every_step_of_a_pruning_save_leaves_each_checkpoint_resumable_or_loadable(tmp_path, monkeypatch):
    outcomes = set()
    for call in range(1, 100):
        run = tmp_path / f"kill-{call}"
        for step in (1, 2, 3):  # step 1 already weights only; saving 4 deletes it and drops step 2's optimizer
            checkpoint.save(run, step, make(float(step), step), keep=3)
        with monkeypatch.context() as patch:
            kill_at(patch, call)
            try:
                checkpoint.save(run, 4, make(4.0, 4), keep=3)
            except Killed:
                pass
            else:
                break
        resumable = [p for p in steps(run) if checkpoint.is_resumable(p)]
        for path in steps(run):  # every step-* folder is whole: resumable, or weights only and loadable
            if path in resumable:
                assert value_of(path) == float(path.name[-1])
            else:
                assert checkpoint.load(path, parts=WEIGHTS).state["step"] == int(path.name[-1])
        assert pointed(run) in resumable or pointed(run).name.endswith("-twin")
        assert len(resumable) >= 2 and resumable[-2:] == steps(run)[-2:]  # the newest two, always
        outcomes.add((pointed(run).name, tuple(p.name[-1] for p in resumable)))
        checkpoint.clean_stale(run)  # the start-up after the kill
        checkpoint.save(run, 5, make(5.0, 5), keep=3)
        assert [checkpoint.is_resumable(p) for p in steps(run)] == [False, True, True] and hidden(run) == []
    assert [checkpoint.is_resumable(p) for p in steps(run)] == [False, True, True]  # the save not killed
    assert names(steps(run)) == ["step-00000002", "step-00000003", "step-00000004"] and hidden(run) == []
    # The kills spanned the save: before the pointer, after it with step 1 deleted but step 2 not yet dropped.
    assert {("step-00000003", ("2", "3")), ("step-00000004", ("2", "3", "4"))} <= outcomes, outcomes


def test_a_run_resumes_bit_exactly_from_either_of_its_newest_two_and_samples_from_older_ones(tmp_path):
    run = tmp_path / "run"
    straight = tiny_trainer(run, "train.steps=4", "train.checkpoint_every=1")
    straight.fit()
    straight.close()
    found = steps(run)
    assert names(found) == ["step-00000002", "step-00000003", "step-00000004"]
    assert [checkpoint.is_resumable(p) for p in found] == [False, True, True]
    old = load_run(found[0], device="cpu")  # weights only: samples all the same
    assert old.step == 2 and old.generate(old.sampler(steps=1), count=1).isfinite().all()
    final = checkpoint.load(found[-1], parts=("model", "ema")).tensors
    # Step 3 resumes to step 4's weights bit for bit, asked for by name or, with step 4 damaged (`latest`
    # names an incomplete folder), as the fallback.
    (found[-1] / "config.json").unlink()
    for source in (found[1], run):
        resumed = tiny_trainer(tmp_path / f"from-{source.name}", "train.steps=4")
        assert resumed.resume(source) == found[1]
        resumed.fit()
        resumed.close()
        for part, model in (("model", resumed.state.model), ("ema", resumed.state.ema.model)):
            assert all(torch.equal(value, final[part][name]) for name, value in model.state_dict().items())


def test_resuming_from_a_weights_only_checkpoint_is_refused_in_one_line_writing_nothing(tmp_path, capsys):
    for step in (1, 2, 3):
        checkpoint.save(tmp_path, step, make(float(step), step), keep=3)
    before, oldest = snapshot(tmp_path), steps(tmp_path)[0]
    assert main(["train", "--out", str(tmp_path), "--no-progress", "--resume", str(oldest), "--steps", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "horseshoe: error: " + weights_only(oldest, "resumable: step-00000002, step-00000003")
    assert snapshot(tmp_path) == before
