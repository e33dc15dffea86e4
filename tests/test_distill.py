"""Few-step students: the consistency sampler and loss on Gaussian data, whose ODE map is known in closed form, and
`horseshoe distill` end to end on a tiny run: determinism, resume, the student as a run, bad inputs."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from training_helpers import TINY

from horseshoe.cli import main
from horseshoe.diffusion import Denoiser
from horseshoe.diffusion.consistency import CLEAN, consistency_loss, draw_pairs, nearer_sigma, sigmas
from horseshoe.diffusion.schedules import make_schedule
from horseshoe.distill_config import ADVERSARIAL, STUDENT_BATCH
from horseshoe.runs.distill import distill, finished_teacher, student_config
from horseshoe.runs.load import load_run
from horseshoe.sampling import SampleConfig, generate, initial_noise, sampler_timesteps
from horseshoe.sampling.trajectories import level_visits, student_levels, teacher_paths
from horseshoe.training import checkpoint
from horseshoe.training.state import CRITIC_PART

MU, S = 0.3, 0.5  # data x0 ~ N(MU, S^2) in every pixel
SCHEDULE = make_schedule("cosine", 1000)


def ode_map(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE's end from x_t for Gaussian data: x_t ~ N(sqrt(abar) MU, abar S^2 + 1 - abar), and
    the flow carries each standardised value to the same standardised value of N(MU, S^2)."""
    abar = SCHEDULE.alpha_bars[t].float().view(-1, 1, 1, 1)
    return MU + S * (x_t - abar.sqrt() * MU) / (abar * S**2 + 1 - abar).sqrt()


def posterior_mean(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """E[x0 | x_t], what a diffusion model's x0_hat estimates: shrunk towards MU, not the ODE's end."""
    abar = SCHEDULE.alpha_bars[t].float().view(-1, 1, 1, 1)
    return MU + abar.sqrt() * S**2 * (x_t - abar.sqrt() * MU) / (abar * S**2 + 1 - abar)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_consistency_sampling_with_the_exact_map_draws_the_data_distribution(steps):
    # x_T ~ N(0, I) stands for the marginal at the first level, N(sqrt(abar) MU, abar S^2 + 1 - abar): one step
    # maps it a little off N(MU, S^2); from the second step on, the noised guesses are that marginal exactly.
    config = SampleConfig(sampler="consistency", steps=steps, clip_x0=False)
    exact = Denoiser(lambda x, t: ode_map(x, t), SCHEDULE, "x0")
    images = generate(exact, 4096, (1, 4, 4), config, seed=1, batch_size=4096)
    mean, std = MU, S
    if steps == 1:
        abar = SCHEDULE.alpha_bar(sampler_timesteps(SCHEDULE, config)[0])
        spread = math.sqrt(abar * S**2 + 1 - abar)
        mean, std = MU - S * math.sqrt(abar) * MU / spread, S / spread
    assert abs(float(images.mean()) - mean) < 0.006
    assert abs(float(images.std()) - std) < 0.006
    if steps == 1:  # the diffusion model's own x0_hat in one step: a blur, its spread far too small
        blurred = generate(Denoiser(lambda x, t: posterior_mean(x, t), SCHEDULE, "x0"), 4096, (1, 4, 4), config)
        assert float(blurred.std()) < 0.1


def test_consistency_levels_are_the_first_of_one_more_step_and_steps_stay_within_1_to_4():
    two = sampler_timesteps(SCHEDULE, SampleConfig(sampler="consistency", steps=2))
    three = sampler_timesteps(SCHEDULE, SampleConfig(sampler="dpmpp_2m", steps=3))
    assert two == three[:2] and two[1] > 0
    for steps in (None, 5):
        with pytest.raises(ValueError, match="1 to 4 steps"):
            SampleConfig(sampler="consistency", steps=steps)


def test_nearer_levels_shrink_by_q_each_stage_and_reach_the_data_at_stage_0_for_low_noise():
    sigma = torch.tensor([0.05, 1.0, 20.0], dtype=torch.float64)
    gaps = [sigma - nearer_sigma(sigma, stage) for stage in range(4)]
    assert torch.equal(nearer_sigma(sigma, 0)[:1], torch.zeros(1))  # low noise: r = clean, the diffusion loss
    torch.testing.assert_close(gaps[3][1:] / gaps[2][1:], torch.full((2,), 0.5, dtype=torch.float64))
    draws = draw_pairs(SCHEDULE, (512, 1, 2, 2), torch.Generator().manual_seed(0), 3, -0.4, 2.0, 968)
    table = sigmas(SCHEDULE)
    assert bool((draws.t <= 967).all()) and bool((draws.r < draws.t).all())
    assert bool(((draws.r == CLEAN) | (table[draws.r.clamp(min=0)] < table[draws.t])).all())


def test_teacher_paths_end_where_the_exact_ode_map_takes_each_level():
    # The exact diffusion model of Gaussian data (its x0_hat is the posterior mean) as the teacher: DPM-Solver++(2M)
    # on its karras steps must carry x at every student level to the closed-form ODE end of that x.
    teacher = Denoiser(lambda x, t: posterior_mean(x, t), SCHEDULE, "x0")
    config = SampleConfig(sampler="dpmpp_2m", clip_x0=False)
    levels = student_levels(SCHEDULE, SampleConfig(sampler="consistency", steps=2, rho=7.0))
    assert len(levels) == 6 and levels[0] == 967
    # every sampler starts at 967; 2 and 4 steps share sigma ~ 1 (t = 518); the rest are one sampler's each
    assert level_visits(SCHEDULE, SampleConfig(rho=7.0), levels) == (4, 1, 1, 2, 1, 1) and levels[3] == 518
    paths = teacher_paths(teacher, 256, (1, 2, 2), config, levels, seed=0, steps=20)
    assert paths.x.shape == (256, 6, 1, 2, 2) and paths.labels is None
    for j, t in enumerate(levels[1:], start=1):  # the first level is x_T itself, not quite the marginal there
        exact = ode_map(paths.x[:, j].float(), torch.full((256,), t))
        assert float((exact - paths.x0.float()).abs().mean()) < 0.02, t  # measured 0.011-0.015
    blurred = posterior_mean(paths.x[:, 1].float(), torch.full((256,), levels[1]))
    assert float((blurred - paths.x0.float()).abs().mean()) > 0.2  # the ends are not the teacher's one-step guess


def test_a_students_paths_start_from_noise_that_sampling_at_its_seed_does_not_draw():
    # A student is near exact on the noise of its own paths: samples drawn from that noise (`sample` at seed 0, its
    # page, the benchmarks) would flatter it. The first level of a path is its noise x_T itself.
    teacher = Denoiser(lambda x, t: posterior_mean(x, t), SCHEDULE, "x0")
    levels = student_levels(SCHEDULE, SampleConfig(sampler="consistency", steps=2, rho=7.0))
    config = SampleConfig(sampler="dpmpp_2m", clip_x0=False)
    paths = teacher_paths(teacher, 8, (1, 2, 2), config, levels, seed=0, steps=4)
    assert torch.equal(paths.x, teacher_paths(teacher, 8, (1, 2, 2), config, levels, seed=0, steps=4).x)
    for seed in range(3):
        drawn = initial_noise((8, 1, 2, 2), torch.Generator().manual_seed(seed)).bfloat16()
        assert not torch.equal(paths.x[:, 0], drawn), seed


class Affine(torch.nn.Module):
    """v(x, t) = a(sigma_t) x + b(sigma_t): x0_hat = sqrt(abar) x - sqrt(1 - abar) v is then affine in x, the form of
    the Gaussian case's consistency function, with v-prediction's skip to x at low noise, as in our runs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:
        log_sigma = sigmas(SCHEDULE)[t].float().log().view(-1, 1)
        a, b = self.net(log_sigma / 3).unbind(1)
        return a.view(-1, 1, 1, 1) * x + b.view(-1, 1, 1, 1)


def tuned(teacher=None, steps: int = 300) -> Affine:
    """Stages 2 to 6 (t - r from a quarter of sigma_t to a 128th), the learning rate decayed to 0."""
    torch.manual_seed(0)
    model, noise = Affine(), torch.Generator().manual_seed(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for step in range(steps):
        x0 = MU + S * torch.randn(1024, 1, 2, 2, generator=noise)
        draws = draw_pairs(SCHEDULE, tuple(x0.shape), noise, 2 + step * 5 // steps, -0.4, 1.5, 968)
        loss = consistency_loss(model, SCHEDULE, x0, draws, "v", 1e-3, teacher=teacher)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay.step()
    return model


@pytest.mark.parametrize("method", ["ect", "cd"])
def test_the_consistency_loss_learns_the_ode_map_not_the_posterior_mean(method):
    # At sigma = 1 (t = 500) the ODE's slope is S / sqrt(abar S^2 + 1 - abar) = 0.63; the posterior mean's is 0.28.
    teacher = None
    if method == "cd":  # the exact diffusion model, as v: v = (sqrt(abar) x_t - x0_hat) / sqrt(1 - abar)
        def teacher(x, t, labels=None):
            abar = SCHEDULE.alpha_bars[t].float().view(-1, 1, 1, 1)
            return (abar.sqrt() * x - posterior_mean(x, t)) / (1 - abar).sqrt()
    model = tuned(teacher)
    t = torch.tensor([500, 500])
    with torch.no_grad():
        out = Denoiser(model, SCHEDULE, "v")(torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2), t).x0
    slope = float(out[1, 0, 0, 0] - out[0, 0, 0, 0])
    exact = float(ode_map(torch.ones(1, 1, 1, 1), t[:1]) - ode_map(torch.zeros(1, 1, 1, 1), t[:1]))
    assert math.isclose(slope, exact, abs_tol=0.06), (slope, exact)  # measured 0.64-0.67


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher")
    assert main(["train", "--out", str(run), "--steps", "3", "--no-progress",
                 *sum((["--set", s] for s in TINY), [])]) == 0
    return run


def same_tensors(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def weights(run) -> dict:
    return checkpoint.load(checkpoint.resolve(run), parts=("model", "ema")).tensors


FEW_PATHS = ("distill.paths=16", "distill.path_steps=4")  # a tiny run's paths: a fraction of a second


def test_a_student_is_a_run_that_samples_in_few_steps_and_repeats_bit_for_bit(teacher, tmp_path):
    distill(teacher, tmp_path / "a", steps=2, progress=False, overrides=FEW_PATHS)
    distill(teacher, tmp_path / "b", steps=2, progress=False, overrides=FEW_PATHS)
    assert same_tensors(weights(tmp_path / "a")["ema"], weights(tmp_path / "b")["ema"])
    student = load_run(tmp_path / "a")
    config = student.sampler()
    assert (config.sampler, config.steps, student.config.distill.method) == ("consistency", 2, "trajectory")
    first, again = (student.generate(config, 4, seed=3) for _ in range(2))
    assert torch.equal(first, again) and not torch.equal(first, student.generate(config, 4, seed=4))
    page = (tmp_path / "a" / "index.html").read_text()
    assert "Teacher and student" in page and "student, 2 steps" in page and (tmp_path / "a/distill/0.png").is_file()
    edited = list(student.edit(torch.zeros(1, *student.image_shape), 0.5, count=2))
    assert len(edited) == 1  # half of 2 steps


@pytest.mark.parametrize("method", ["ect", "cd"])
def test_the_consistency_methods_tune_a_student_too(teacher, tmp_path, method):
    distill(teacher, tmp_path / method, method, steps=1, progress=False)
    student = load_run(tmp_path / method)
    assert student.config.distill.method == method and student.sampler().sampler == "consistency"
    assert not same_tensors(weights(tmp_path / method)["model"], weights(teacher)["model"])


@pytest.mark.parametrize("adversarial", [0.0, 0.5])
def test_a_student_resumes_bit_for_bit(teacher, tmp_path, adversarial):
    # The teacher's paths are made again on resume, from the same seed: the same paths, the same student; a critic
    # and its Adam come back from the checkpoint. The resume repeats neither the steps nor the settings: a student
    # resumes with its own config (the defaults' 520 steps and 2048 paths would differ).
    extra = ("train.checkpoint_every=2", f"distill.adversarial={adversarial}", *FEW_PATHS)
    distill(teacher, tmp_path / "straight", steps=4, progress=False, overrides=extra)
    halfway = tmp_path / "straight" / "checkpoints" / checkpoint.checkpoint_name(2)
    distill(teacher, tmp_path / "resumed", progress=False, resume=halfway)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert same_tensors(a["model"], b["model"]) and same_tensors(a["ema"], b["ema"])
    assert not same_tensors(a["model"], weights(teacher)["model"])
    if adversarial:
        critics = [checkpoint.load(path, parts=(CRITIC_PART,)).tensors[CRITIC_PART]
                   for path in (checkpoint.resolve(tmp_path / "straight"), checkpoint.resolve(tmp_path / "resumed"),
                                halfway)]
        assert same_tensors(critics[0], critics[1])  # weights and Adam moments
        learned = [{k: v for k, v in c.items() if k.endswith(".original")} for c in (critics[0], critics[2])]
        assert learned[0] and not same_tensors(*learned)  # its weights learned between steps 2 and 4, and were saved
        without = tmp_path / "straight-without"
        distill(teacher, without, steps=4, progress=False, overrides=extra[:1] + FEW_PATHS)
        assert not same_tensors(a["model"], weights(without)["model"])  # the critic's term moved the student
    else:  # a student tuned without a critic (as before there was one) resumes only without one
        with pytest.raises(ValueError, match="has no critic .* resume it with --set distill.adversarial=0"):
            distill(teacher, tmp_path / "other", steps=4, progress=False, resume=halfway,
                    overrides=("distill.adversarial=1", *extra[2:]))


def test_a_student_plays_against_a_critic_unless_its_teacher_had_few_images(teacher):
    found = finished_teacher(teacher)
    assert found.config.data.augment_p == 0  # the built-in shoes: no augmentation
    assert student_config(found).distill.adversarial == ADVERSARIAL > 0
    few = dataclasses.replace(found.config, data=dataclasses.replace(found.config.data, augment_p=0.25))
    assert student_config(dataclasses.replace(found, config=few)).distill.adversarial == 0
    assert student_config(found, "ect").distill.adversarial == 0
    with pytest.raises(ValueError, match="distill.adversarial needs method 'trajectory'"):
        student_config(found, "cd", overrides=("distill.adversarial=1",))
    with pytest.raises(ValueError, match="distill.adversarial must be a number of at least 0"):
        student_config(found, overrides=("distill.adversarial=-1",))


def test_a_teacher_of_augmented_images_gets_no_critic_unless_asked_and_then_one_that_sees_both_augmented(tmp_path):
    teacher = tmp_path / "augmented"
    assert main(["train", "--out", str(teacher), "--steps", "2", "--no-progress",
                 *sum((["--set", s] for s in (*TINY, "data.augment_p=0.5")), [])]) == 0
    distill(teacher, tmp_path / "plain", steps=2, progress=False, overrides=FEW_PATHS)
    assert load_run(tmp_path / "plain").config.distill.adversarial == 0
    distill(teacher, tmp_path / "critic", steps=2, progress=False, overrides=("distill.adversarial=1", *FEW_PATHS))
    student = load_run(tmp_path / "critic")
    assert student.config.distill.adversarial == 1 and student.config.data.augment_p == 0.5
    assert not same_tensors(weights(tmp_path / "plain")["model"], weights(tmp_path / "critic")["model"])


def test_distill_refuses_unfinished_missing_and_distilled_runs_and_steps_outside_1_to_4(teacher, tmp_path, capsys):
    assert main(["distill", str(tmp_path / "none")]) == 2
    assert "no run or checkpoint" in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    assert main(["train", "--out", str(unfinished), "--steps", "2", "--no-progress",
                 *sum((["--set", s] for s in TINY), [])]) == 0
    data = checkpoint.load(checkpoint.resolve(unfinished))
    data.state["stopped"] = "signal"  # as Ctrl-C leaves it
    checkpoint.save(unfinished, 2, data, keep=2)
    assert main(["distill", str(unfinished)]) == 2
    assert "is not finished" in capsys.readouterr().err
    student = tmp_path / "student"
    assert main(["distill", str(teacher), "--out", str(student), "--steps", "1", "--no-progress",
                 *sum((["--set", s] for s in FEW_PATHS), [])]) == 0
    capsys.readouterr()
    assert main(["distill", str(student)]) == 2
    assert "already distilled" in capsys.readouterr().err
    assert main(["sample", str(student), "--steps", "5", "--out", str(tmp_path / "s")]) == 2
    assert "1 to 4 steps" in capsys.readouterr().err
    # A resume takes the student's own teacher and method, and a student's checkpoint.
    for run, out, flags, says in [(student, student, [], "was distilled from"),
                                  (teacher, student, ["--method", "ect"], "--method ect differs"),
                                  (teacher, teacher, [], "is not a student's")]:
        assert main(["distill", str(run), "--out", str(out), "--resume", "--no-progress", *flags]) == 2
        assert says in capsys.readouterr().err


def test_a_student_takes_batches_of_64_unless_its_teacher_took_fewer_or_could_not_split_them(teacher):
    found = finished_teacher(teacher)

    def batch(size: int, accum: int) -> int:
        train = dataclasses.replace(found.config.train, batch_size=size, grad_accum=accum)
        return student_config(dataclasses.replace(found, config=dataclasses.replace(found.config, train=train))
                              ).train.batch_size

    assert (batch(128, 1), batch(256, 4), batch(8, 1), batch(96, 3)) == (STUDENT_BATCH, STUDENT_BATCH, 8, 96)
