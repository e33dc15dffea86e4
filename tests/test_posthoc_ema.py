"""Post-hoc EMA (EDM2): the power-function profile against its closed form, the least-squares reconstruction
against EMAs tracked directly, and the run's snapshots, exact resume and --ema-length."""

import pytest
import torch
from training_helpers import tiny_trainer

from horseshoe.runs.load import load_run
from horseshoe.training.posthoc_ema import (
    PowerEMA,
    gamma_of,
    list_snapshots,
    save_snapshot,
    sigma_rel_of,
    solve_mix,
)


def test_sigma_rel_and_gamma_are_edm2s():
    # EDM2 Sec. 3.1: sigma_rel 0.05 and 0.10 are gamma 16.97 and 6.94.
    assert gamma_of(0.05) == pytest.approx(16.97, abs=0.01)
    assert gamma_of(0.10) == pytest.approx(6.94, abs=0.01)
    for sigma_rel in (0.001, 0.03, 0.2, 0.2886):
        assert sigma_rel_of(gamma_of(sigma_rel)) == pytest.approx(sigma_rel, rel=1e-9)
    with pytest.raises(ValueError, match=r"sigma_rel must be in \(0, 0.2887\], got 0.3"):
        gamma_of(0.3)


def scalar_model(value=0.0):
    model = torch.nn.Linear(1, 1, bias=False).double()
    torch.nn.init.constant_(model.weight, value)
    return model


def test_power_ema_is_the_discrete_power_profile():
    # ema_T = sum_t theta_t (t^(g+1) - (t-1)^(g+1)) / T^(g+1): the product of the betas (1 - 1/s)^(g+1) over
    # s > t telescopes to (t / T)^(g+1).
    thetas = torch.randn(300, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    model = scalar_model()
    ema = PowerEMA(model, 0.1)
    for step, theta in enumerate(thetas.tolist(), start=1):
        torch.nn.init.constant_(model.weight, theta)
        ema.update(model, step)
    g, t = ema.gamma, torch.arange(1, 301, dtype=torch.float64)
    expected = (thetas * (t ** (g + 1) - (t - 1) ** (g + 1))).sum() / 300 ** (g + 1)
    assert ema.model.weight.item() == pytest.approx(expected.item(), rel=1e-10)


def test_a_snapshot_profile_is_its_own_reconstruction():
    snapshots = [(step, gamma_of(r)) for step in (100, 200, 300, 400) for r in (0.05, 0.1)]
    mix = solve_mix(snapshots, 400, gamma_of(0.1))
    assert mix.weights[-1] == pytest.approx(1.0, abs=1e-6) and max(map(abs, mix.weights[:-1])) < 1e-6
    assert mix.error < 1e-6
    # A width between the tracked ones is mixed from them, closely but not exactly.
    between = solve_mix(snapshots, 400, gamma_of(0.07))
    assert 1e-4 < between.error < 0.05
    assert sum(between.weights) == pytest.approx(1.0, abs=0.02)  # a mix of averages is an average


def test_reconstruction_matches_an_ema_tracked_directly():
    # A parameter that drifts and jitters over 800 steps; profiles 0.05 and 0.10 snapshotted every 50 steps
    # reconstruct 0.03, 0.07 and 0.15 at the end within 3% of the parameter's own spread over the run.
    steps = 800
    gen = torch.Generator().manual_seed(1)
    t = torch.arange(1, steps + 1, dtype=torch.float64) / steps
    thetas = torch.sin(6 * t) + 2 * t + 0.3 * torch.randn(steps, dtype=torch.float64, generator=gen)
    model = scalar_model()
    tracked = [PowerEMA(model, r) for r in (0.05, 0.10)]
    direct = {r: PowerEMA(model, r) for r in (0.03, 0.07, 0.15)}
    saved = []
    for step, theta in enumerate(thetas.tolist(), start=1):
        torch.nn.init.constant_(model.weight, theta)
        for ema in (*tracked, *direct.values()):
            ema.update(model, step)
        if step % 50 == 0:
            saved.extend((step, ema.gamma, ema.model.weight.item()) for ema in tracked)
    for sigma_rel, ema in direct.items():
        mix = solve_mix([(s, g) for s, g, _ in saved], steps, gamma_of(sigma_rel))
        rebuilt = sum(w * value for w, (_, _, value) in zip(mix.weights, saved, strict=True))
        assert abs(rebuilt - ema.model.weight.item()) < 0.03 * thetas.std().item(), sigma_rel


def test_runs_keep_snapshots_resume_exactly_and_sample_any_length(tmp_path):
    extra = ["train.posthoc_ema=[0.05,0.1]", "train.posthoc_snapshots=3"]
    straight = tiny_trainer(tmp_path / "a", "train.steps=6", *extra)
    straight.fit()
    # Snapshots every third of the run (steps 2, 4, 6), each holding both profiles.
    found = list_snapshots(tmp_path / "a")
    assert [(s.step, s.sigma_rels) for s in found] == [(2, (0.05, 0.1)), (4, (0.05, 0.1)), (6, (0.05, 0.1))]
    half = tiny_trainer(tmp_path / "b", "train.steps=3", *extra)
    half.fit()
    # A snapshot past the checkpoint (as an interrupted run leaves) is not part of the resumed trajectory.
    stale = tmp_path / "b" / "posthoc_ema" / "step-00000005.safetensors"
    stale.write_bytes(found[-1].path.read_bytes())
    resumed = tiny_trainer(tmp_path / "b", "train.steps=6", *extra)
    resumed.resume(tmp_path / "b")
    resumed.fit()
    assert [s.step for s in list_snapshots(tmp_path / "b")] == [1, 2, 3, 4, 6]
    for a, b in zip(straight.state.posthoc, resumed.state.posthoc, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True))
    # --ema-length 0.1 at the last snapshot is that profile itself; 0.07 differs from both and from the EMA.
    run = load_run(tmp_path / "a", device="cpu", precision="fp32", ema_length=0.1)
    own = dict(straight.state.posthoc[1].model.named_parameters())
    for name, p in run.model.named_parameters():
        torch.testing.assert_close(p, own[name], rtol=1e-5, atol=1e-6)
    assert run.ema.error < 1e-6 and run.ema.snapshots == 3
    other = load_run(tmp_path / "a", device="cpu", precision="fp32", ema_length=0.07)
    assert 0 < other.ema.error < 0.1
    assert not torch.equal(next(other.model.parameters()), next(run.model.parameters()))
    # Without --ema-length the run's own EMA loads, as before.
    plain = load_run(tmp_path / "a", device="cpu", precision="fp32")
    ema = dict(straight.state.ema.model.named_parameters())
    assert all(torch.equal(p, ema[name]) for name, p in plain.model.named_parameters())


def test_posthoc_ema_errors(tmp_path):
    trainer = tiny_trainer(tmp_path / "plain", "train.steps=1")
    trainer.fit()
    with pytest.raises(FileNotFoundError, match="holds no post-hoc EMA snapshot up to step 1: train with"):
        load_run(tmp_path / "plain", device="cpu", ema_length=0.1)
    with pytest.raises(ValueError, match="--ema-length reconstructs EMA weights"):
        load_run(tmp_path / "plain", device="cpu", weights="model", ema_length=0.1)
    with pytest.raises(ValueError, match="sigma_rel must be in"):
        load_run(tmp_path / "plain", device="cpu", ema_length=0.5)
    # Resuming with a post-hoc EMA the checkpoint did not keep (or another width) is refused, naming both.
    later = tiny_trainer(tmp_path / "plain", "train.steps=2", "train.posthoc_ema=[0.1]")
    with pytest.raises(ValueError, match=r"kept no post-hoc EMA, and train.posthoc_ema is \[0.1\] now"):
        later.resume(tmp_path / "plain")
    for bad, message in (("[0]", "each sigma_rel must be in"), ("[0.1,0.1]", "lists a width twice")):
        with pytest.raises(ValueError, match=message):
            tiny_trainer(tmp_path / "x", "train.steps=1", f"train.posthoc_ema={bad}")
    # An unreadable snapshot is named.
    model = scalar_model()
    path = save_snapshot(tmp_path / "odd", 5, [PowerEMA(model, 0.1)])
    path.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="post-hoc EMA snapshot .*step-00000005.safetensors' is unreadable"):
        list_snapshots(tmp_path / "odd")
