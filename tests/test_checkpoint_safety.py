"""Nothing lost, ever: kills, full disks, broken pointers and tampered files against training/checkpoint.py."""

import errno
import json
import logging
import math
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from horseshoe.training import atomic, checkpoint
from horseshoe.training.checkpoint import Checkpoint

# Every function through which a save changes the disk: a kill can land between any two calls.
SAVE_STEPS = ((checkpoint, "_write_folder"), (checkpoint, "_write_pointer"), (atomic, "write_text"), (atomic, "fsync"),
              (atomic, "rename"), (atomic, "remove"), (atomic, "exchange"), (atomic, "delete"), (atomic, "unlink"))
RNG = {"torch": torch.arange(8, dtype=torch.uint8), "noise": torch.arange(8, dtype=torch.uint8)}
SCALER = torch.amp.GradScaler("cpu", init_scale=1024.0).state_dict()  # what an fp16 run saves (v1: in state.json)


class Killed(BaseException):
    """kill -9 at that instant: no `except OSError` clean-up of the save runs."""


def make(value: float, step: int) -> Checkpoint:
    """A small complete checkpoint whose every part carries `value`, so a mix of two saves shows."""
    tensors = {"model": {"w": torch.full((4,), value)}, "ema": {"w": torch.full((4,), value)},
               "optimizer": {"0.exp_avg": torch.full((4,), value)}, "rng": dict(RNG)}
    state = {"step": step, "images_seen": 8 * step, "nonfinite_skipped": 0, "world_size": 1,
             "loader": {"position": step, "seed": 0, "batch_size": 8}, "optimizer_groups": [{"lr": value}]}
    return Checkpoint(config={"value": value}, state=state, tensors=tensors)


def value_of(path: Path) -> float:
    """The value a checkpoint was saved with; fails unless every part agrees."""
    data = checkpoint.load(path)
    values = {float(data.tensors[part][name][0]) for part, name in [("model", "w"), ("ema", "w"),
                                                                   ("optimizer", "0.exp_avg")]}
    values |= {data.config["value"], data.state["optimizer_groups"][0]["lr"]}
    assert len(values) == 1, f"{path} mixes two saves: {values}"
    return values.pop()


def pointed(run: Path) -> Path:
    """The folder the `latest` file itself names (no fallback), asserted complete."""
    target = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    assert checkpoint.missing_files(target) == [], f"latest names {target.name}, which is incomplete"
    return target


def hidden(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob(".*"))


def kill_at(monkeypatch, call: int) -> None:
    """Make the call-th disk-changing step of the next save die like kill -9."""
    count = [0]
    for module, name in SAVE_STEPS:
        real = getattr(module, name)

        def step(*args, _real=real, **kwargs):
            count[0] += 1
            if count[0] == call:
                raise Killed
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, step)


@pytest.fixture(params=["exchange", "no-exchange"])
def swap(request, monkeypatch, tmp_path):
    """Run a test with renameat2(RENAME_EXCHANGE), and again as on a system without it."""
    if request.param == "no-exchange":
        monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    else:
        (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
        if not atomic.exchange(tmp_path / "a", tmp_path / "b"):
            pytest.skip("this OS or filesystem has no atomic exchange")
        (tmp_path / "a").rmdir(), (tmp_path / "b").rmdir()
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: None)  # durability is not under test; speed is
    return request.param


def test_resaving_the_latest_step_survives_a_kill_at_every_instant(tmp_path, monkeypatch, swap):
    outcomes = []
    for call in range(1, 100):
        run = tmp_path / f"kill-{call}"
        checkpoint.save(run, 10, make(1.0, 10), keep=3)
        with monkeypatch.context() as patch:
            kill_at(patch, call)
            try:
                checkpoint.save(run, 10, make(2.0, 10), keep=3)
            except Killed:
                pass
            else:
                break
        outcomes.append(value_of(pointed(run)))  # old or new, complete, never a mix
        checkpoint.clean_stale(run)  # the start-up after the kill
        assert value_of(checkpoint.latest(run)) == outcomes[-1]
        # Only a kill inside the swap without renameat2 leaves `latest` on the twin; the next save moves it.
        assert hidden(run) == ([pointed(run).name] if pointed(run).name.endswith("-twin") else [])
        checkpoint.save(run, 11, make(3.0, 11), keep=3)
        assert value_of(pointed(run)) == 3.0 and hidden(run) == []
    assert value_of(pointed(run)) == 2.0 and hidden(run) == []  # the run that was not killed
    assert call > 8 and outcomes[0] == 1.0 and outcomes[-1] == 2.0  # the kills spanned the whole swap


@pytest.mark.parametrize("module, step", [(atomic, "exchange"), (checkpoint, "_write_pointer"), (atomic, "rename")])
def test_a_failing_swap_or_pointer_update_keeps_latest_loadable(tmp_path, monkeypatch, module, step):
    error = OSError(errno.EIO, "Input/output error")
    checkpoint.save(tmp_path, 10, make(1.0, 10), keep=3)

    def fails(*args):
        raise error

    monkeypatch.setattr(module, step, fails)
    with pytest.raises(OSError) as raised:
        checkpoint.save(tmp_path, 10, make(2.0, 10), keep=3)
    final = tmp_path / "checkpoints" / "step-00000010"
    assert raised.value.errno == errno.EIO
    assert str(raised.value) == (f"[Errno 5] could not save checkpoint {str(final)!r} (Input/output error); "
                                 f"the previous checkpoint {str(final)!r} is intact")
    assert pointed(tmp_path) == final and value_of(final) in (1.0, 2.0) and hidden(tmp_path) == []


FULL_DISK = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


@pytest.mark.parametrize("module, step, error", [
    (checkpoint, "save_file", FULL_DISK),  # what safetensors 0.8 raises on a full tmpfs
    (checkpoint, "save_file", OSError(errno.ENOSPC, "No space left on device")),
    (atomic, "write_text", OSError(errno.ENOSPC, "No space left on device"))])
def test_disk_full_is_one_line_cleans_up_and_keeps_the_previous(tmp_path, monkeypatch, module, step, error):
    checkpoint.save(tmp_path, 1, make(1.0, 1), keep=3)
    real, calls = getattr(module, step), []

    def fills_up(*args, **options):  # the disk fills after the first file, so the temporary folder has content
        calls.append(args)
        if len(calls) > 1:
            raise error
        return real(*args, **options)

    monkeypatch.setattr(module, step, fills_up)
    root = tmp_path / "checkpoints"
    for _ in range(2):  # a retry must not leave a second temporary folder either
        calls.clear()
        with pytest.raises(OSError) as raised:
            checkpoint.save(tmp_path, 2, make(2.0, 2), keep=3)
        assert raised.value.errno == errno.ENOSPC
        assert str(raised.value) == (f"[Errno 28] disk full while saving checkpoint {str(root / 'step-00000002')!r}; "
                                     f"the previous checkpoint {str(root / 'step-00000001')!r} is intact")
        assert hidden(tmp_path) == [] and sorted(p.name for p in root.iterdir()) == ["latest", "step-00000001"]
    assert value_of(checkpoint.latest(tmp_path)) == 1.0


def test_other_write_errors_keep_errno_and_reason_from_the_real_library(tmp_path, monkeypatch):
    real = checkpoint.save_file
    # The real safetensors writer, failing for real: its error carries the errno only in its text.
    monkeypatch.setattr(checkpoint, "save_file", lambda tensors, path, **_: real(tensors, str(tmp_path / "no" / "x")))
    with pytest.raises(OSError) as raised:
        checkpoint.save(tmp_path, 1, make(1.0, 1), keep=3)
    assert raised.value.errno == errno.ENOENT
    final = tmp_path / "checkpoints" / "step-00000001"
    assert str(raised.value) == (f"[Errno 2] could not save checkpoint {str(final)!r} (No such file or directory); "
                                 f"no earlier checkpoint exists")
    assert hidden(tmp_path) == []


def test_save_refuses_a_checkpoint_that_would_be_incomplete(tmp_path):
    data = make(1.0, 1)
    del data.tensors["rng"]
    with pytest.raises(ValueError, match="checkpoint for step 1 has no 'rng' tensors"):
        checkpoint.save(tmp_path, 1, data, keep=3)
    assert not checkpoint.has_checkpoints(tmp_path)


@pytest.mark.parametrize("pointer, complaint", [
    ("step-00000099", "names step-00000099, which does not exist"),
    ("step-00000020", "names step-00000020, which is incomplete (no config.json)"),
    ("../../etc", "holds '../../etc', which is not a checkpoint name"),
    (None, "is missing"),  # a kill between the first checkpoint's rename and the first pointer
])
def test_broken_latest_falls_back_to_the_newest_complete_checkpoint(tmp_path, caplog, pointer, complaint):
    checkpoint.save(tmp_path, 10, make(1.0, 10), keep=3)
    checkpoint.save(tmp_path, 20, make(2.0, 20), keep=3)
    root = tmp_path / "checkpoints"
    (root / "step-00000020" / "config.json").unlink()  # damaged by hand: newer but incomplete
    (root / "latest").unlink()
    if pointer:
        (root / "latest").write_text(pointer + "\n")
    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        assert checkpoint.latest(tmp_path) == root / "step-00000010"
        assert checkpoint.resolve(tmp_path) == root / "step-00000010"
    assert [r.getMessage() for r in caplog.records] == 2 * [
        f"{str(root / 'latest')!r} {complaint}; using the newest resumable checkpoint, step-00000010"]


def test_no_complete_checkpoint_is_a_one_line_error_naming_the_target(tmp_path, caplog):
    checkpoint.save(tmp_path, 10, make(1.0, 10), keep=3)
    root = tmp_path / "checkpoints"
    (root / "step-00000010" / "model.safetensors").unlink()
    (root / "latest").write_text("step-00000099\n")
    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        assert checkpoint.latest(tmp_path) is None
    assert caplog.records[0].getMessage() == (f"{str(root / 'latest')!r} names step-00000099, which does not exist; "
                                              f"no complete checkpoint exists")
    with pytest.raises(FileNotFoundError) as raised:
        checkpoint.resolve(tmp_path)
    assert str(raised.value) == (f"{str(root / 'latest')!r} names step-00000099, which does not exist, and "
                                 f"{str(root)!r} holds no complete checkpoint")
    assert checkpoint.has_checkpoints(tmp_path)  # so the trainer refuses to start over it without --resume


def test_has_checkpoints_counts_any_step_folder_or_pointer(tmp_path):
    root = tmp_path / "checkpoints"
    assert not checkpoint.has_checkpoints(tmp_path)
    (root / ".tmp-step-00000001-7").mkdir(parents=True)  # leftovers alone are not checkpoints
    (root / "step-backup").mkdir()
    assert not checkpoint.has_checkpoints(tmp_path)
    (root / "step-00000001").mkdir()  # empty, so incomplete, but someone's run
    assert checkpoint.has_checkpoints(tmp_path)
    (root / "step-00000001").rmdir()
    (root / "latest").write_text("step-00000001\n")
    assert checkpoint.has_checkpoints(tmp_path)


def test_a_kill_while_pruning_never_leaves_a_half_deleted_checkpoint(tmp_path, monkeypatch):
    for step in (1, 2):
        checkpoint.save(tmp_path, step, make(float(step), step), keep=2)
    real = atomic.remove

    def dies_halfway(path):  # deletes one file of the doomed folder, then the process is killed
        if path.is_dir() and any(path.iterdir()):
            next(path.iterdir()).unlink()
            raise Killed
        real(path)

    monkeypatch.setattr(atomic, "remove", dies_halfway)
    with pytest.raises(Killed):
        checkpoint.save(tmp_path, 3, make(3.0, 3), keep=2)
    monkeypatch.undo()
    root = tmp_path / "checkpoints"
    steps = sorted(p.name for p in root.glob("step-*"))
    assert steps == ["step-00000002", "step-00000003"] and all(value_of(root / s) for s in steps)
    trash = root / f".trash-step-00000001-{atomic.os.getpid()}"
    assert hidden(tmp_path) == [trash.name]
    assert len(list(trash.iterdir())) == len(checkpoint.REQUIRED_FILES)  # a resumable one holds one more
    assert checkpoint.clean_stale(tmp_path) == [trash] and hidden(tmp_path) == []


def test_clean_stale_removes_leftovers_but_never_what_latest_names(tmp_path):
    checkpoint.save(tmp_path, 1, make(1.0, 1), keep=3)
    root = tmp_path / "checkpoints"
    (root / ".tmp-step-00000002-41").mkdir()
    (root / ".tmp-step-00000002-41" / "model.safetensors").write_bytes(b"half")
    (root / ".tmp-latest-41").write_text("step-00000002\n")
    (root / ".trash-step-00000000-41").mkdir()
    twin = root / ".tmp-step-00000001-42-twin"  # where a kill mid-swap without renameat2 leaves `latest`
    twin.mkdir()
    for file in (root / "step-00000001").iterdir():
        (twin / file.name).write_bytes(file.read_bytes())
    (root / "latest").write_text(twin.name + "\n")
    assert checkpoint.clean_stale(tmp_path) == [root / ".tmp-latest-41", root / ".tmp-step-00000002-41",
                                                root / ".trash-step-00000000-41"]
    assert hidden(tmp_path) == [twin.name] and checkpoint.latest(tmp_path) == twin
    assert checkpoint.clean_stale(tmp_path) == [] and checkpoint.clean_stale(tmp_path / "elsewhere") == []


def tamper(path: Path, name: str, change) -> None:
    data = json.loads((path / name).read_text())
    (path / name).write_text(json.dumps(change(data)))


def edit(**fields):
    return lambda state: {**state, **fields}


def drop(key):
    return lambda state: {k: v for k, v in state.items() if k != key}


@pytest.mark.parametrize("name, change, reason", [
    ("state.json", edit(step=None), "state.json field 'step' must be an integer >= 0, not null"),
    ("state.json", edit(step=True), "state.json field 'step' must be an integer >= 0, not true"),
    ("state.json", edit(step=-1), "state.json field 'step' must be an integer >= 0, not -1"),
    ("state.json", edit(step=2.5), "state.json field 'step' must be an integer >= 0, not 2.5"),
    ("state.json", drop("step"), "state.json lacks field 'step'"),
    ("state.json", edit(images_seen="x"), "state.json field 'images_seen' must be an integer >= 0, not \"x\""),
    ("state.json", edit(nonfinite_skipped=-3), "state.json field 'nonfinite_skipped' must be an integer >= 0, not -3"),
    ("state.json", edit(world_size=0), "state.json field 'world_size' must be an integer >= 1, not 0"),
    ("state.json", edit(scaler_skipped=1.5), "state.json field 'scaler_skipped' must be an integer >= 0, not 1.5"),
    ("state.json", edit(grad_scaler=[1]), "state.json field 'grad_scaler' must be an object, not [1]"),
    ("state.json", edit(grad_scaler={**SCALER, "scale": 0.0}),
     "state.json grad_scaler field 'scale' must be a number in (0, inf), not 0.0"),
    ("state.json", edit(grad_scaler={**SCALER, "scale": math.inf}),
     "state.json grad_scaler field 'scale' must be a number in (0, inf), not Infinity"),
    ("state.json", edit(grad_scaler={**SCALER, "backoff_factor": 2}),
     "state.json grad_scaler field 'backoff_factor' must be a number in (0, 1), not 2"),
    ("state.json", edit(grad_scaler={**SCALER, "growth_factor": "2"}),
     "state.json grad_scaler field 'growth_factor' must be a number in (1, inf), not \"2\""),
    ("state.json", edit(grad_scaler={**SCALER, "_growth_tracker": -1}),
     "state.json grad_scaler field '_growth_tracker' must be an integer >= 0, not -1"),
    ("state.json", edit(grad_scaler={k: v for k, v in SCALER.items() if k != "growth_interval"}),
     "state.json grad_scaler lacks field 'growth_interval'"),
    ("state.json", edit(loader=[1]), "state.json field 'loader' must be an object, not [1]"),
    ("state.json", edit(loader={"position": "3", "seed": 0, "batch_size": 8}),
     "state.json loader field 'position' must be an integer >= 0, not \"3\""),
    ("state.json", edit(loader={"position": 3, "seed": 0.5, "batch_size": 8}),
     "state.json loader field 'seed' must be an integer, not 0.5"),
    ("state.json", edit(loader={"position": 3, "seed": 0}), "state.json loader lacks field 'batch_size'"),
    ("state.json", edit(optimizer_groups={"lr": 1}),
     "state.json field 'optimizer_groups' must be a list of objects, not {\"lr\": 1}"),
    ("state.json", edit(optimizer_groups=[1]),
     "state.json field 'optimizer_groups' must be a list of objects, not [1]"),
    ("state.json", edit(version=3), "state.json field 'version' is 3; this horseshoe reads versions 1 and 2"),
    ("state.json", edit(version=True),
     "state.json field 'version' is true; this horseshoe reads versions 1 and 2"),
    ("state.json", lambda state: [state], "state.json is not a horseshoe checkpoint"),
    ("config.json", lambda config: [config], "config.json must hold an object, not [{\"value\": 1.0}]"),
])
def test_tampered_json_is_a_one_line_error_naming_file_and_field(tmp_path, name, change, reason):
    path = checkpoint.save(tmp_path, 1, make(1.0, 1), keep=3)
    assert value_of(path) == 1.0  # loadable before the change
    tamper(path, name, change)
    with pytest.raises(ValueError) as raised:
        checkpoint.load(path, parts=())
    assert str(raised.value) == f"checkpoint {str(path)!r} is corrupt or incomplete: {reason}"


@pytest.mark.parametrize("rng, reason", [
    ({"torch": RNG["torch"].float(), "noise": RNG["noise"]},
     "rng.safetensors 'torch' is torch.float32 of shape (8,), not a 1-D uint8 state"),
    ({"torch": RNG["torch"], "noise": RNG["noise"].reshape(2, 4)},
     "rng.safetensors 'noise' is torch.uint8 of shape (2, 4), not a 1-D uint8 state"),
    ({"torch": RNG["torch"]}, "rng.safetensors lacks 'noise'"),
    ({**RNG, "mps": RNG["torch"].clone()}, "rng.safetensors holds unexpected 'mps'"),
    ({**RNG, "cuda": RNG["torch"].to(torch.int64)}, "rng.safetensors 'cuda' is torch.int64 of shape (8,), not a 1-D "
                                                    "uint8 state"),
])
def test_rng_states_of_the_wrong_kind_are_refused_when_loaded(tmp_path, rng, reason):
    path = checkpoint.save(tmp_path, 1, make(1.0, 1), keep=3)
    save_file(rng, str(path / "rng.safetensors"))
    with pytest.raises(ValueError) as raised:
        checkpoint.load(path)
    assert str(raised.value) == f"checkpoint {str(path)!r} is corrupt or incomplete: {reason}"
    assert checkpoint.load(path, parts=("model",)).tensors["model"]["w"][0] == 1.0  # rng only checked when read


def test_an_optional_cuda_rng_state_loads(tmp_path):
    path = checkpoint.save(tmp_path, 1, make(1.0, 1), keep=3)
    save_file({**RNG, "cuda": torch.ones(16, dtype=torch.uint8)}, str(path / "rng.safetensors"))
    assert checkpoint.load(path).tensors["rng"]["cuda"].tolist() == [1] * 16
