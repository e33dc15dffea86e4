"""Differential tests against diffusers' schedulers: same schedule, timesteps, model and noise."""

import pytest
import torch
from oracles import plain

from horseshoe.diffusion import Denoiser, make_schedule, q_posterior_mean_variance
from horseshoe.sampling import iterate, sampler_timesteps

schedulers = pytest.importorskip("diffusers.schedulers")

T = 1000


def make_model(schedule):
    """A smooth, nonlinear stand-in for a trained network (any function serves: both sides get it).

    It predicts a bounded x0 and returns the matching eps, as a trained model would; an arbitrary eps
    model would send x0_hat to ~1e4 at the cosine schedule's last step and measure only cancellation.
    """

    def model_fn(x, t):
        abar = schedule.alpha_bars[t].view(-1, 1, 1, 1)
        tau = t.double().view(-1, 1, 1, 1) / T
        x0 = 0.8 * torch.tanh(x) + 0.1 * torch.sin(3 * x) * tau
        return (x - abar.sqrt() * x0) / (1 - abar).sqrt()

    return model_fn


def float64_tables(sched, schedule):
    """diffusers keeps its tables in float32; give it ours in float64 so both compute in float64."""
    sched.betas = schedule.betas.clone()
    sched.alphas = schedule.alphas.clone()
    sched.alphas_cumprod = schedule.alpha_bars.clone()
    return sched


def start(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((3, 2, 4, 4), generator=g, dtype=torch.float64)


# Not 'linspace': diffusers' DDIM always steps to t - T//N, which for linspace (999, 888, ...) is not
# the next timestep it evaluates (999 -> 899, then 888); ours steps to the timestep it visits next.
@pytest.mark.parametrize("spacing", ["trailing", "leading"])
@pytest.mark.parametrize("num_steps", [10, 50])
def test_ddim_matches_diffusers(spacing, num_steps):
    schedule = make_schedule("linear", T)
    model_fn = make_model(schedule)
    ref = schedulers.DDIMScheduler(num_train_timesteps=T, trained_betas=schedule.betas.numpy(),
                                   clip_sample=False, set_alpha_to_one=True, steps_offset=0,
                                   timestep_spacing=spacing, prediction_type="epsilon")
    float64_tables(ref, schedule).final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    ref.set_timesteps(num_steps)
    x = start()
    ours = list(iterate(Denoiser(model_fn, schedule), x, plain("ddim", steps=num_steps, spacing=spacing), None))
    assert [r.t for r in ours] == ref.timesteps.tolist()
    for record in ours:
        t = torch.tensor([record.t])
        x = ref.step(model_fn(x, t.expand(x.shape[0])), record.t, x, eta=0.0).prev_sample
        torch.testing.assert_close(record.x_prev, x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
@pytest.mark.parametrize("num_steps", [10, 20])
def test_dpmpp_2m_matches_diffusers(spacing, num_steps):
    schedule = make_schedule("cosine", T)
    model_fn = make_model(schedule)
    ref = schedulers.DPMSolverMultistepScheduler(
        num_train_timesteps=T, trained_betas=schedule.betas.numpy(), algorithm_type="dpmsolver++",
        solver_order=2, solver_type="midpoint", final_sigmas_type="zero", timestep_spacing=spacing,
        steps_offset=0, prediction_type="epsilon", lower_order_final=True)
    float64_tables(ref, schedule)
    ref.set_timesteps(num_steps)
    # diffusers' own linspace/leading for this scheduler differ from DDIM's (N+1 points, last dropped);
    # the solver is what is compared, so it runs on our timesteps.
    config = plain("dpmpp_2m", steps=num_steps, spacing=spacing)
    ours = list(iterate(Denoiser(model_fn, schedule), start(), config, None))
    ref.set_timesteps(timesteps=[r.t for r in ours])
    abar = schedule.alpha_bars[ref.timesteps]
    ref.sigmas = torch.cat([((1 - abar) / abar).sqrt(), abar.new_zeros(1)])  # float64, not float32
    x = start()
    for record in ours:
        t = torch.tensor([record.t])
        x = ref.step(model_fn(x, t.expand(x.shape[0])), record.t, x).prev_sample.double()
        torch.testing.assert_close(record.x_prev, x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("num_steps", [10, 20])
def test_dpmpp_2m_sde_matches_diffusers(num_steps):
    # diffusers' sde-dpmsolver++ (midpoint) on our timesteps, fed the same per-step noise: our sampler
    # draws it from the generator, so a second generator with the same seed replays it.
    schedule = make_schedule("cosine", T)
    model_fn = make_model(schedule)
    ref = schedulers.DPMSolverMultistepScheduler(
        num_train_timesteps=T, trained_betas=schedule.betas.numpy(), algorithm_type="sde-dpmsolver++",
        solver_order=2, solver_type="midpoint", final_sigmas_type="zero", steps_offset=0,
        prediction_type="epsilon", lower_order_final=True)
    float64_tables(ref, schedule)
    ours = list(iterate(Denoiser(model_fn, schedule), start(), plain("dpmpp_2m_sde", steps=num_steps),
                        torch.Generator().manual_seed(3)))
    ref.set_timesteps(timesteps=[r.t for r in ours])
    abar = schedule.alpha_bars[ref.timesteps]
    ref.sigmas = torch.cat([((1 - abar) / abar).sqrt(), abar.new_zeros(1)])
    replay = torch.Generator().manual_seed(3)
    x = start()
    for i, record in enumerate(ours):
        t = torch.tensor([record.t])
        noise = torch.randn(x.shape, generator=replay, dtype=torch.float64) if i + 1 < len(ours) else None
        x = ref.step(model_fn(x, t.expand(x.shape[0])), record.t, x, variance_noise=noise,
                     generator=torch.Generator().manual_seed(0)).prev_sample.double()
        torch.testing.assert_close(record.x_prev, x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("lambda_min", [-4.0, -3.0, -1.5])
def test_lambda_min_starts_where_diffusers_does(lambda_min):
    # Our lambda_min is diffusers' lambda_min_clipped (DPMSolverMultistepScheduler): both start at the
    # noisiest timestep with lambda_t >= lambda_min. The steps after it differ on purpose: diffusers
    # keeps the stride T/N from there (967, 867, ..., 67, then one jump to 0); ours spreads the N steps
    # evenly over the kept range (967, 870, ..., 96), as without the clip.
    schedule = make_schedule("cosine", T)
    ref = schedulers.DPMSolverMultistepScheduler(
        num_train_timesteps=T, trained_betas=schedule.betas.numpy(), algorithm_type="dpmsolver++",
        timestep_spacing="trailing", steps_offset=0, lambda_min_clipped=lambda_min)
    ref.set_timesteps(10)
    ours = sampler_timesteps(schedule, plain("ddim", steps=10, spacing="trailing", lambda_min=lambda_min))
    assert ours[0] == ref.timesteps[0] < T - 1


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_ddpm_posterior_matches_diffusers(variance):
    schedule = make_schedule("linear", T)
    ref = float64_tables(schedulers.DDPMScheduler(num_train_timesteps=T, trained_betas=schedule.betas.numpy(),
                                                  variance_type=variance, clip_sample=False), schedule)
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    x_t, x0 = start(1), start(2)
    for t in [1, 2, 10, 500, 999]:
        mean, var = q_posterior_mean_variance(schedule, x0, x_t, t)
        # diffusers returns mean + sqrt(var) * noise; replay its noise to split the two apart.
        g = torch.Generator().manual_seed(t)
        eps_hat = (x_t - schedule.alpha_bars[t].sqrt() * x0) / (1 - schedule.alpha_bars[t]).sqrt()
        got = ref.step(eps_hat, t, x_t, generator=g).prev_sample
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
        ref_var = ref._get_variance(t)
        expected_var = var[0, 0, 0, 0] if variance == "fixed_small" else schedule.betas[t]
        assert float(ref_var) == pytest.approx(float(expected_var), rel=1e-10, abs=1e-14)
        torch.testing.assert_close(got - ref_var.sqrt() * noise, mean, rtol=0, atol=1e-10)


@pytest.mark.parametrize("num_steps,variance", [(None, "posterior"), (50, "posterior"), (50, "beta")])
def test_ddpm_trajectory_matches_diffusers(num_steps, variance):
    # Whole ancestral trajectories, drawing the same noise from identically seeded generators.
    schedule = make_schedule("linear", T)
    model_fn = make_model(schedule)
    ref = float64_tables(schedulers.DDPMScheduler(
        num_train_timesteps=T, trained_betas=schedule.betas.numpy(), clip_sample=False,
        variance_type="fixed_small" if variance == "posterior" else "fixed_large",
        timestep_spacing="leading"), schedule)
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    ref.set_timesteps(num_steps or T)
    config = plain("ddpm", steps=num_steps, spacing="leading", ddpm_variance=variance)
    g_ours, g_ref = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    x = start()
    records = list(iterate(Denoiser(model_fn, schedule), x, config, g_ours))
    assert [r.t for r in records] == ref.timesteps.tolist()
    for record in records:
        t = torch.tensor([record.t])
        x = ref.step(model_fn(x, t.expand(x.shape[0])), record.t, x, generator=g_ref).prev_sample
        torch.testing.assert_close(record.x_prev, x, rtol=0, atol=1e-10)
