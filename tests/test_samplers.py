"""Every sampler against closed forms: Gaussian data, one-point data and the exact ODE flow."""

import pytest
import torch
from oracles import gaussian_denoiser, ode_endpoint, one_point_denoiser, plain

from horseshoe.diffusion import Denoiser, make_schedule
from horseshoe.sampling import (
    DIFFUSION_SAMPLERS,
    SampleConfig,
    ddim_invert,
    initial_noise,
    iterate,
    make_timesteps,
    sample,
    sampler_timesteps,
)
from horseshoe.sampling.config import SPACINGS
from horseshoe.sampling.timesteps import karras_timesteps, usable_steps

MU, S = 0.3, 0.5


def draw(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return initial_noise((n, 1, 1, 1), g, torch.float64), g


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)  # the consistency sampler: tests/test_distill.py
def test_gaussian_oracle_reproduces_data_distribution(name):
    # Driven by the optimal predictor for N(MU, S^2), every sampler run over all T=1000 steps must
    # return samples with mean MU and std S. Tolerance: 5 standard errors of the estimate
    # (S/sqrt(n) for the mean, S/sqrt(2n) for the std) plus the discretisation error measured for
    # 1000 steps against the exact ODE flow (< 6e-3, see test_deterministic_samplers_follow_the_ode).
    schedule = make_schedule("linear", 1000)
    n = 40_000
    x_T, g = draw(n)
    out = sample(gaussian_denoiser(schedule, MU, S), x_T, plain(name), g)
    assert out.mean().item() == pytest.approx(MU, abs=5 * S / n**0.5 + 6e-3)
    assert out.std().item() == pytest.approx(S, abs=5 * S / (2 * n) ** 0.5 + 6e-3)


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)  # the consistency sampler: tests/test_distill.py
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("num_steps", [1, 7, 50])
def test_one_point_data_returns_the_point(name, spacing, num_steps):
    # For data that is a single point, x0_hat = point at every step, and every sampler must end on it.
    schedule = make_schedule("cosine", 200)
    point = torch.tensor([-0.8, 0.1, 0.6]).view(1, 3, 1, 1).double()
    denoiser = one_point_denoiser(schedule, point)
    g = torch.Generator().manual_seed(1)
    x_T = initial_noise((16, 3, 1, 1), g, torch.float64)
    out = sample(denoiser, x_T, plain(name, steps=num_steps, spacing=spacing, eta=1.0), g)
    torch.testing.assert_close(out, point.expand_as(out), rtol=0, atol=1e-9)


@pytest.mark.parametrize("spacing", ["leading", "linspace"])
def test_ddpm_is_exact_for_unit_variance_data(spacing):
    # Ho et al. Sec. 3.2: sigma_t^2 = beta_t is the exact reverse variance for x0 ~ N(mu, 1). Only the
    # noiseless last step (Algorithm 2, z = 0 at t=0) returns E[x0 | x at t=0], whose std is
    # sqrt(abar_0). With T = 10 every step is large, so using abar one step off changes the std by
    # >20% (measured: 0.77 and 1.50 instead of 0.995): this catches off-by-one timesteps.
    schedule = make_schedule("linear", 10)
    denoiser = gaussian_denoiser(schedule, MU, 1.0)
    n = 100_000
    x_T, g = draw(n, seed=2)
    out = sample(denoiser, x_T, plain("ddpm", ddpm_variance="beta", spacing=spacing), g)
    expected_std = schedule.alpha_bars[0].sqrt().item()
    assert out.mean().item() == pytest.approx(MU, abs=5 / n**0.5)
    assert out.std().item() == pytest.approx(expected_std, abs=5 / (2 * n) ** 0.5)


def test_ddpm_respaced_is_exact_for_unit_variance_data():
    # The respaced process (5 of 1000 steps, ending at t=0) is itself a DDPM, so the same holds.
    schedule = make_schedule("linear", 1000)
    n = 100_000
    x_T, g = draw(n, seed=3)
    out = sample(gaussian_denoiser(schedule, MU, 1.0), x_T,
                 plain("ddpm", steps=5, spacing="linspace", ddpm_variance="beta"), g)
    assert out.mean().item() == pytest.approx(MU, abs=5 / n**0.5)
    assert out.std().item() == pytest.approx(1.0, abs=5 / (2 * n) ** 0.5 + 1e-4)


def test_deterministic_samplers_follow_the_ode():
    # Per sample, deterministic DDIM and DPM-Solver++ must land where the exact probability-flow ODE
    # does. Bounds are the measured errors with ~2x margin: DDIM is first order (5.4e-3 at 1000
    # steps), DPM-Solver++(2M) second order (1.3e-4 at 1000, 7.7e-2 at 20 trailing steps, where DDIM
    # is off by 0.24). An off-by-one timestep raises DPM-Solver++'s 1000-step error to 6e-3.
    schedule = make_schedule("linear", 1000)
    x_T, g = draw(2000, seed=4)
    exact = ode_endpoint(schedule, x_T, MU, S)
    denoiser = gaussian_denoiser(schedule, MU, S)

    def err(name, steps):
        out = sample(denoiser, x_T, plain(name, steps=steps), g)
        return (out - exact).abs().max().item()

    assert err("ddim", 1000) < 1e-2
    assert err("dpmpp_2m", 1000) < 3e-4
    assert err("dpmpp_2m", 20) < 0.15
    assert err("dpmpp_2m", 20) < 0.5 * err("ddim", 20)
    assert err("ddim", 100) < 0.5 * err("ddim", 20)  # converges as the steps grow


def test_ddim_with_eta_one_is_ddpm_with_posterior_variance():
    # Song et al.: eta = 1 turns Eq. 12 into the DDPM ancestral step. Same noise stream, same samples.
    schedule = make_schedule("cosine", 100)
    denoiser = gaussian_denoiser(schedule, MU, S)
    for steps in [None, 10]:
        x_T, g1 = draw(500, seed=5)
        a = sample(denoiser, x_T, plain("ddim", steps=steps, eta=1.0), g1)
        _, g2 = draw(500, seed=5)
        b = sample(denoiser, x_T, plain("ddpm", steps=steps, ddpm_variance="posterior"), g2)
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_sde_solver_starts_with_the_ancestral_step():
    # SDE-DPM-Solver++'s first-order update is the DDPM posterior step written in log-SNR time, so its
    # first step (before there is a previous x0_hat to extrapolate with) must match DDIM with eta = 1
    # on the same noise; the second step already differs (second-order correction).
    schedule = make_schedule("cosine", 100)
    denoiser = gaussian_denoiser(schedule, MU, S)
    runs = []
    for name, eta in [("dpmpp_2m_sde", 0.0), ("ddim", 1.0)]:
        x_T, g = draw(500, seed=5)
        runs.append(list(iterate(denoiser, x_T, plain(name, steps=10, eta=eta), g)))
    (sde0, sde1, *_), (anc0, anc1, *_) = runs
    torch.testing.assert_close(sde0.x_prev, anc0.x_prev, rtol=1e-10, atol=1e-10)
    assert (sde1.x_prev - anc1.x_prev).abs().max() > 1e-3


def test_sde_solver_beats_the_ancestral_sampler_at_20_steps():
    # On Gaussian data the sample std after 20 linear-schedule steps is off by 0.108 for the
    # first-order ancestral sampler and by 0.013 for SDE-DPM-Solver++(2M) (measured, 200k samples);
    # the bound leaves ~2x margin and the standard error of the std here is 1e-3.
    schedule = make_schedule("linear", 1000)
    denoiser = gaussian_denoiser(schedule, MU, S)

    def std_error(name, eta):
        x_T, g = draw(100_000, seed=7)
        out = sample(denoiser, x_T, plain(name, steps=20, eta=eta), g)
        assert out.mean().item() == pytest.approx(MU, abs=5e-3)
        return abs(out.std().item() - S)

    sde, ancestral = std_error("dpmpp_2m_sde", 0.0), std_error("ddim", 1.0)
    assert sde < 0.03 and ancestral > 0.08


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)  # the consistency sampler: tests/test_distill.py
def test_same_seed_same_sample(name):
    schedule = make_schedule("linear", 50)
    denoiser = gaussian_denoiser(schedule, MU, S)
    outs = []
    for _ in range(2):
        x_T, g = draw(64, seed=9)
        outs.append(sample(denoiser, x_T, plain(name, steps=20, eta=0.5), g))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)  # the consistency sampler: tests/test_distill.py
def test_records_walk_the_timesteps(name):
    schedule = make_schedule("linear", 100)
    x_T, g = draw(4)
    records = list(iterate(gaussian_denoiser(schedule, MU, S), x_T, plain(name, steps=10), g))
    assert [r.index for r in records] == list(range(10))
    assert [r.t for r in records] == make_timesteps(100, 10, "trailing")
    assert records[0].x_t is x_T
    for before, after in zip(records[:-1], records[1:], strict=True):
        assert after.x_t is before.x_prev


def test_ddim_inversion_round_trip():
    # Inverting data through the exact ODE must give the standardised noise, and sampling it back
    # must recover the data (both to the first-order discretisation error at 500 steps).
    schedule = make_schedule("linear", 1000)
    denoiser = gaussian_denoiser(schedule, MU, S)
    g = torch.Generator().manual_seed(6)
    x0 = MU + S * torch.randn((2000, 1, 1, 1), generator=g, dtype=torch.float64)
    config = plain("ddim", steps=500)
    records = list(ddim_invert(denoiser, x0, config))
    x_T = records[-1].x_prev
    assert [r.t for r in records] == make_timesteps(1000, 500, "trailing")[::-1]
    abar = schedule.alpha_bars[-1]
    expected_T = abar.sqrt() * MU + (abar * S**2 + 1 - abar).sqrt() * (x0 - MU) / S
    assert (x_T - expected_T).abs().max().item() < 2e-2
    back = sample(denoiser, x_T, config, g)
    assert (back - x0).abs().max().item() < 2e-2


def test_sampler_argument_errors():
    schedule = make_schedule("linear", 100)
    denoiser = gaussian_denoiser(schedule, MU, S)
    x_T, g = draw(2)
    with pytest.raises(ValueError, match="sample.sampler must be one of .*, got 'euler'"):
        plain("euler")
    with pytest.raises(ValueError, match="num_steps must be between 1 and T=100, got 101"):
        sample(denoiser, x_T, plain("ddim", steps=101), g)
    with pytest.raises(ValueError, match="sample.steps must be a positive integer .*, got 0"):
        plain("ddim", steps=0)
    with pytest.raises(ValueError, match="sample.eta must be a number >= 0, got -0.5"):
        plain("ddim", eta=-0.5)
    with pytest.raises(ValueError, match="sample.spacing must be one of .*, got 'even'"):
        plain("ddim", spacing="even")
    with pytest.raises(ValueError, match="unknown prediction 'score'"):
        Denoiser(lambda x, t: x, schedule, "score")


@pytest.mark.parametrize("rho", [1.0, 3.0, 7.0])
def test_karras_spacing_follows_eq_5(rho):
    # Karras et al. Eq. 5 in sigma_t = sqrt((1 - abar_t) / abar_t): from the noisiest kept timestep to
    # t = 0, each level at the timestep nearest in log sigma, so the level lies between the sigmas of
    # its timestep's neighbours.
    schedule = make_schedule("cosine", 1000)
    sigma = ((1 - schedule.alpha_bars) / schedule.alpha_bars).sqrt()
    kept = usable_steps(schedule, -3.0)
    n = 12
    steps = sampler_timesteps(schedule, plain("ddim", steps=n, spacing="karras", rho=rho, lambda_min=-3.0))
    assert steps[0] == kept - 1 and steps[-1] == 0
    assert all(a > b for a, b in zip(steps, steps[1:], strict=False))
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    levels = (sigma[kept - 1] ** (1 / rho) + ramp * (sigma[0] ** (1 / rho) - sigma[kept - 1] ** (1 / rho))) ** rho
    for t, level in zip(steps[1:-1], levels[1:-1], strict=True):
        assert sigma[t - 1] <= level <= sigma[t + 1]
    # A larger rho moves steps to low noise: count those in the cleaner half against rho = 1's.
    uniform = sampler_timesteps(schedule, plain("ddim", steps=n, spacing="karras", rho=1.0, lambda_min=-3.0))
    clean_half = [sum(t < kept // 2 for t in s) for s in (uniform, steps)]
    assert clean_half[1] > clean_half[0] if rho > 1 else clean_half[1] == clean_half[0]


def test_karras_spacing_never_repeats_a_timestep():
    # Several levels can round to one timestep (near t = 0, and at the cosine schedule's noisy end);
    # they are pushed apart, so asking for every timestep returns each exactly once.
    schedule = make_schedule("linear", 50)
    assert karras_timesteps(schedule, 50, 50, 7.0) == list(range(49, -1, -1))
    for schedule, n in [(make_schedule("linear", 50), 40), (make_schedule("cosine", 200), 7)]:
        steps = karras_timesteps(schedule, schedule.num_steps, n, 7.0)  # cosine: the noisy end collides
        assert len(steps) == n and all(a > b >= 0 for a, b in zip(steps, steps[1:], strict=False))
        assert steps[0] == schedule.num_steps - 1 and steps[-1] == 0
    with pytest.raises(ValueError, match="karras spacing depends on the noise schedule"):
        make_timesteps(50, 10, "karras")
    with pytest.raises(ValueError, match="rho must be a positive number, got 0"):
        plain("ddim", rho=0)


def test_lambda_min_starts_at_the_noisiest_kept_level():
    # lambda_t = log(sqrt(abar_t / (1 - abar_t))) falls with t; lambda_min keeps t = 0..K-1 where
    # K counts the timesteps at or above it, and the samplers space their steps over those K.
    schedule = make_schedule("cosine", 1000)
    half_log_snr = 0.5 * torch.log(schedule.alpha_bars / (1 - schedule.alpha_bars))
    kept = int((half_log_snr >= -3.0).sum())
    assert usable_steps(schedule, -3.0) == kept and half_log_snr[kept - 1] >= -3.0 > half_log_snr[kept]
    assert usable_steps(schedule, None) == 1000
    x_T, g = draw(2)
    records = list(iterate(gaussian_denoiser(schedule, MU, S), x_T, plain("dpmpp_2m", steps=10, lambda_min=-3.0), g))
    assert [r.t for r in records] == make_timesteps(kept, 10, "trailing")
    assert records[0].t == kept - 1


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)  # the consistency sampler: tests/test_distill.py
def test_lambda_min_keeps_one_point_data_exact(name):
    schedule = make_schedule("cosine", 200)
    point = torch.tensor([-0.8, 0.1, 0.6]).view(1, 3, 1, 1).double()
    denoiser = one_point_denoiser(schedule, point)
    g = torch.Generator().manual_seed(1)
    x_T = initial_noise((16, 3, 1, 1), g, torch.float64)
    out = sample(denoiser, x_T, plain(name, steps=12, lambda_min=-2.0, eta=1.0), g)
    torch.testing.assert_close(out, point.expand_as(out), rtol=0, atol=1e-9)


def test_lambda_min_errors():
    schedule = make_schedule("cosine", 100)
    denoiser = gaussian_denoiser(schedule, MU, S)
    x_T, g = draw(2)
    kept = usable_steps(schedule, -3.0)
    with pytest.raises(ValueError, match=f"100 steps is more than the {kept} timesteps with lambda_t >= "):
        sample(denoiser, x_T, plain("ddpm", steps=100, lambda_min=-3.0), g)
    with pytest.raises(ValueError, match="lambda_min=20.0 leaves no timestep"):
        sample(denoiser, x_T, plain("ddim", steps=10, lambda_min=20.0), g)
    with pytest.raises(ValueError, match="lambda_min must be a finite number"):
        plain("ddim", lambda_min=float("nan"))


def test_clip_x0_bounds_the_prediction():
    schedule = make_schedule("linear", 100)
    denoiser = gaussian_denoiser(schedule, 3.0, 0.1)  # data far outside [-1, 1]
    x_T, g = draw(16)
    records = list(iterate(denoiser, x_T, plain("ddim", steps=10, clip_x0=True), g))
    assert all(r.x0_hat.abs().max() <= 1.0 for r in records)
    assert records[-1].x_prev.abs().max() <= 1.0 + 1e-12


def test_sample_section_fills_in_sampler_options():
    schedule = make_schedule("cosine", 1000)
    kept = usable_steps(schedule, -3.0)
    section = SampleConfig(sampler="dpmpp_2m", steps=20, spacing="leading", lambda_min=-3.0)
    own = section.for_sampler(schedule)
    assert (own.sampler, own.steps, own.spacing, own.lambda_min) == ("dpmpp_2m", 20, "leading", -3.0)
    assert section.for_sampler(schedule, "ddim").steps == 20
    assert section.for_sampler(schedule, "ddpm").steps == kept  # ddpm in place of the run's sampler
    assert SampleConfig(sampler="dpmpp_2m", lambda_min=None).for_sampler(schedule, "ddpm").steps == 1000
    assert SampleConfig(sampler="ddpm", steps=50).for_sampler(schedule, "ddpm").steps == 50
    given = section.for_sampler(schedule, "ddim", 7, eta=0.5, spacing="linspace")
    assert (given.sampler, given.steps, given.eta, given.spacing) == ("ddim", 7, 0.5, "linspace")
    assert SampleConfig(steps=20, lambda_min=None).for_sampler(make_schedule("cosine", 10), "ddim").steps == 10


def test_ddim_is_the_euler_step_of_the_flow_ode():
    # For prediction 'flow' (u = eps - x0) each deterministic DDIM step from t to s is one Euler step of
    # dx/ds = u on the straight path x = (1 - s) x0 + s eps: with a = sqrt(abar), b = sqrt(1 - abar), that
    # path's point is x_t / (a + b) at s = b / (a + b) (DiffusionConfig's docstring).
    schedule = make_schedule("cosine", 1000)

    def velocity(x, t):  # any smooth field; it need not be a good model
        return torch.sin(3 * x) + 1e-3 * t.view(-1, 1, 1, 1).to(x.dtype) * x

    denoiser = Denoiser(velocity, schedule, "flow")
    config = SampleConfig(sampler="ddim", steps=6, spacing="trailing", lambda_min=None, clip_x0=False)
    x_T, g = draw(4)
    x_T = x_T.expand(4, 1, 2, 2).contiguous()

    def straight(x, t):
        a, b = schedule.alpha_bar(t) ** 0.5, (1 - schedule.alpha_bar(t)) ** 0.5
        return x / (a + b), b / (a + b)

    timesteps = sampler_timesteps(schedule, config)
    records = list(iterate(denoiser, x_T, config, g))
    for i, r in enumerate(records):
        s_next = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x, s = straight(r.x_t, r.t)
        x_next, s_after = straight(r.x_prev, s_next)
        euler = x + (s_after - s) * velocity(r.x_t, torch.tensor([r.t]).expand(4))
        torch.testing.assert_close(x_next, euler, rtol=1e-10, atol=1e-10)
    assert straight(records[-1].x_prev, -1)[1] == 0.0  # ends on the data end of the path
