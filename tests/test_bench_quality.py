"""The time-to-quality benchmark's bookkeeping: the training clock, thresholds, interpolation and ratios."""

import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from quality import parse_args, recipe_settings, timed_run  # noqa: E402
from quality_report import markdown, sooner, time_to, value_at  # noqa: E402


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeSystem:
    """Each training step takes `step_seconds` on the fake clock; each sampling call takes 100 s of it."""

    name, eval_sampler, final_sampler = "fake", "s-1", "s-1000"

    def __init__(self, clock, step_seconds, total_steps):
        self.clock, self.step_seconds, self.total_steps = clock, step_seconds, total_steps
        self.step, self.batch_size = 0, 8
        self.drawn = []

    @property
    def done(self):
        return self.step >= self.total_steps

    def train_step(self):
        self.clock.now += self.step_seconds
        self.step += 1
        return self.batch_size

    def sample(self, count, seed, sampler):
        self.clock.now += 100.0  # evaluation time: must not count as training
        self.drawn.append((self.step, count, sampler))
        return torch.zeros(count, 1, 4, 4)


class FakeScorer:
    def score(self, images):
        return {"swd": 1.0, "good": 0.5}


def args(**kw):
    base = dict(minutes=1.0, interval=10.0, at=None, samples=4, sample_batch=3, seed=0, final_samples=2)
    return Namespace(**{**base, **kw})


def test_evaluations_do_not_count_as_training_and_fall_every_interval():
    clock = FakeClock()
    system = FakeSystem(clock, step_seconds=3.0, total_steps=10**6)
    result = timed_run(system, FakeScorer(), args(), clock=clock)
    # 3 s steps, an evaluation after the first step at or past each 10 s: steps 4, 7, 10, 14, 17, 20 (60 s budget).
    assert [p["step"] for p in result["points"]] == [4, 7, 10, 14, 17, 20]
    assert [p["seconds"] for p in result["points"]] == pytest.approx([12, 21, 30, 42, 51, 60])
    assert result["trained_seconds"] == pytest.approx(60.0)  # the 700 s of sampling are not in it
    assert result["images"] == 20 * 8 and result["stopped"] == "budget"
    assert result["images_per_sec"] == pytest.approx(160 / 60)
    # The final sampler once at the end, with its own count.
    assert system.drawn[-1] == (20, 2, "s-1000") and result["final"][0]["samples"] == 2
    # Each evaluation's 4 samples in batches of at most 3.
    assert system.drawn[:2] == [(4, 3, "s-1"), (4, 1, "s-1")] and result["points"][0]["samples"] == 4


def test_evaluations_at_chosen_minutes_and_at_the_end():
    clock = FakeClock()
    system = FakeSystem(clock, step_seconds=3.0, total_steps=10**6)
    # --at 0.25 0.1 minutes (15 s, 6 s, in any order), a 40 s budget: the first steps past 6 and 15 s, then the end.
    result = timed_run(system, FakeScorer(), args(minutes=40 / 60, at=[0.25, 0.1]), clock=clock)
    assert [p["seconds"] for p in result["points"]] == pytest.approx([6, 15, 42])
    assert result["trained_seconds"] == pytest.approx(42.0)


def test_no_second_evaluation_just_after_an_at_time():
    clock = FakeClock()
    system = FakeSystem(clock, step_seconds=1.0, total_steps=10**6)
    # --at 1.65 minutes (99 s) of a 100 s budget: the end comes 1 s later, within 2% of the budget.
    result = timed_run(system, FakeScorer(), args(minutes=100 / 60, at=[1.65], final_samples=0), clock=clock)
    assert [p["seconds"] for p in result["points"]] == pytest.approx([99])
    assert result["trained_seconds"] == pytest.approx(100.0)


def test_a_recipe_that_ends_is_evaluated_at_its_end():
    clock = FakeClock()
    system = FakeSystem(clock, step_seconds=3.0, total_steps=5)
    result = timed_run(system, FakeScorer(), args(final_samples=0), clock=clock)
    assert [p["step"] for p in result["points"]] == [4, 5]
    assert result["stopped"] == "recipe done" and result["final"] == []


def record(system, points, stopped="budget", trained=None):
    pts = [{"seconds": s, "images": 100 * s, "good": g, "swd": w, "sampler": "x", "samples": 4} for s, g, w in points]
    return {"system": system, "points": pts, "stopped": stopped,
            "trained_seconds": trained if trained is not None else pts[-1]["seconds"], "final": []}


def test_time_to_is_the_first_evaluation_at_or_above_the_share():
    r = record("horseshoe", [(30, 0.5, 9), (60, 0.9, 5), (90, 0.85, 4), (120, 0.96, 3)])
    assert time_to(r, 0.8)["seconds"] == 60 and time_to(r, 0.9)["seconds"] == 60
    assert time_to(r, 0.95)["images"] == 12000 and time_to(r, 0.97) is None


def test_digits_need_all_ten_covered():
    r = record("horseshoe", [(30, 0.95, 9), (60, 0.92, 5)])
    r["points"][0]["covered"], r["points"][1]["covered"] = 9, 10
    assert time_to(r, 0.9)["seconds"] == 60


def test_swd_at_a_time_is_interpolated_held_after_the_recipe_and_missing_past_the_budget():
    r = record("horseshoe", [(60, 0.5, 10.0), (180, 0.9, 4.0)], stopped="recipe done")
    assert value_at(r, 150) == pytest.approx(5.5)  # 10 + (90 / 120) * (4 - 10)
    assert value_at(r, 600) == 4.0 and value_at(r, 30) is None
    cut = record("diffusers", [(60, 0.1, 50.0), (180, 0.2, 40.0)])
    assert value_at(cut, 600) is None and value_at(cut, 180) == 40.0


def test_sooner_is_the_best_peers_time_over_ours_or_a_bound_when_no_peer_got_there():
    ours = record("horseshoe", [(60, 0.95, 3)])
    slow, slower = record("diffusers", [(300, 0.5, 9), (600, 0.92, 5)]), record("lucidrains", [(900, 0.91, 5)])
    records = [ours, slow, slower]
    assert sooner(records, ours, 0.9) == (pytest.approx(10.0), True)
    assert sooner(records, slow, 0.9) == (pytest.approx(1.0), True)
    assert sooner(records, ours, 0.95) == (pytest.approx(15.0), False)  # no peer: longest peer run / ours
    assert sooner(records, slow, 0.95) is None


def test_markdown_names_every_system_and_the_failed_ones():
    ours = record("horseshoe", [(60, 0.95, 3)], stopped="recipe done")
    peer = record("diffusers", [(60, 0.2, 30), (180, 0.4, 20)])
    for r in (ours, peer):
        r.update(precision="fp32", parameters=1e6, batch_size=16, images_per_sec=10.0, steps=5, images=80,
                 eval_sampler="x", device="cpu", threads=2, floor={"swd": 1.0, "good": 0.99})
    meta = {"data": "horseshoes", "date": "2026-12-01", "minutes": 2, "interval_seconds": 60, "samples": 4,
            "precision": "each recipe's", "machine": "test", "final_samples": 0}
    text = markdown(meta, [ours, peer, {"system": "lucidrains", "error": "exit status 1"}], "q.png")
    assert "| horseshoe | 1.00 min (6.0k) | 1.00 min (6.0k) | 1.00 min (6.0k) | > 3.00x (no peer reached it) |" in text
    assert "| lucidrains | failed: exit status 1 |" in text
    # At 2.5 min diffusers' 30 + (90 / 120) * (20 - 30) = 22.5 against horseshoe's final 3; later diffusers has stopped.
    assert "| best peer / horseshoe | 7.50x | – | – | – |" in text
    assert "with 4 samples from its EMA weights" in text
    assert "with 4 samples (the peers: 2) from" in markdown({**meta, "peer_samples": 2}, [ours, peer], "q.png")


def test_peer_samples_default_to_samples_and_must_be_positive(capsys):
    assert parse_args(["--samples", "64"]).peer_samples == 64
    assert parse_args(["--samples", "64", "--peer-samples", "8"]).peer_samples == 8
    with pytest.raises(SystemExit):
        parse_args(["--peer-samples", "0"])
    assert "--peer-samples must be positive, got 0" in capsys.readouterr().err


def test_recipes_become_horseshoe_systems_after_the_listed_ones(capsys):
    args = parse_args(["--systems", "horseshoe,lucidrains", "--recipe", "minsnr", "diffusion.min_snr_gamma=5",
                       "--recipe", "lr2", "train.lr=2e-3"])
    assert args.systems == ["horseshoe", "lucidrains", "horseshoe-minsnr", "horseshoe-lr2"]
    assert recipe_settings(args) == {"horseshoe-minsnr": ["diffusion.min_snr_gamma=5"],
                                     "horseshoe-lr2": ["train.lr=2e-3"]}
    for bad, message in [(["--recipe", "a/b"], "--recipe: a name of letters"),
                         (["--recipe", "x", "--recipe", "x", "train.lr=1"], "--recipe: each name once"),
                         (["--at", "0", "5"], "--at: every time must be positive")]:
        with pytest.raises(SystemExit):
            parse_args(bad)
        assert message in capsys.readouterr().err
