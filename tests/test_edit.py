"""Inpainting (RePaint), SDEdit and DDIM inversion against closed forms: Gaussian and one-point oracles."""

import itertools

import pytest
import torch
from oracles import equicorrelated_denoiser, gaussian_denoiser, one_point_denoiser, plain

from horseshoe.diffusion import make_schedule
from horseshoe.sampling import DIFFUSION_SAMPLERS, SAMPLERS, initial_noise, iterate, sample, sampler_timesteps
from horseshoe.sampling.edit import (
    MASKS,
    builtin_mask,
    finish,
    repaint,
    repaint_length,
    round_trip,
    sdedit,
    sdedit_start,
    slerp_path,
)

MU = 0.3
# Batches of at most 2000: torch runs sqrt on more than 2048 doubles on two threads, 1000x slower on a busy machine.
N, SIDE = 2000, 4


def gaussian_images(n=N, s=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return MU + s * torch.randn((n, 1, SIDE, SIDE), generator=g, dtype=torch.float64)


@pytest.mark.parametrize("resample", [1, 3])
@pytest.mark.parametrize("spacing", ["leading", "linspace"])
def test_inpainting_keeps_pixels_and_draws_the_rest_from_the_data(resample, spacing):
    # Data N(MU, 1) per pixel, independent: the conditional law of the masked pixels given the kept ones
    # is the marginal. Respaced DDPM with sigma_t^2 = beta_t is the exact reverse process for unit-variance
    # data (Ho et al. Sec. 3.2; see test_samplers), and RePaint's jump back is the exact forward kernel,
    # so every step keeps the marginal exact and only sampling error is left: 5 standard errors. The
    # last, noiseless step returns E[x0 | x at t=0], whose std is sqrt(abar_0). Ten big steps make a
    # wrong level anywhere (the known part's noise, the jump's alpha) miss by far more.
    schedule = make_schedule("linear", 1000)
    x0 = gaussian_images()
    mask = builtin_mask("left-half", SIDE, SIDE).double()
    g = torch.Generator().manual_seed(1)
    x_T = initial_noise(x0.shape, g, torch.float64)
    config = plain("ddpm", steps=10, spacing=spacing, ddpm_variance="beta")
    records = list(repaint(gaussian_denoiser(schedule, MU, 1.0), x0, mask, x_T, config, g, resample))
    assert len(records) == (10 - 1) * resample + 1 == repaint_length(gaussian_denoiser(schedule, MU, 1.0),
                                                                      config, resample)
    out = records[-1].x_prev
    assert torch.equal(out[..., SIDE // 2:], x0[..., SIDE // 2:])  # kept: bit for bit
    # Along the way the kept pixels are x0 noised to the level each step reaches (the next record's t).
    for record, after in itertools.pairwise(records):
        if after.t == record.t:  # a jump back and the same step again
            continue
        abar = schedule.alpha_bars[after.t]
        z = (record.x_prev[..., SIDE // 2:] - abar.sqrt() * x0[..., SIDE // 2:]) / (1 - abar).sqrt()
        assert abs(z.mean().item()) < 5 / z.numel() ** 0.5 and abs(z.std().item() - 1) < 5 / (2 * z.numel()) ** 0.5
    generated = out[..., : SIDE // 2]
    n = generated.numel()
    assert generated.mean().item() == pytest.approx(MU, abs=5 / n**0.5)
    assert generated.std().item() == pytest.approx(schedule.alpha_bars[0].sqrt().item(), abs=5 / (2 * n) ** 0.5)


def test_inpainting_fits_correlated_pixels_better_with_jumps_back():
    # Pixels N(MU, 1) with correlation 0.9 between any two, 2 of 4 kept: each masked pixel's exact
    # conditional law has mean MU + rho k (mean of kept - MU) / (1 - rho + rho k) and variance
    # 1 - rho^2 k / (1 - rho + rho k) = 0.147 (vs 1 unconditioned). RePaint approaches it as the
    # resample count U grows (Lugmayr et al. Sec. 4.2: each take lets the known part reach the rest).
    # Measured (DDIM eta=1, 50 steps, 2000 images): slope of generated on exact conditional mean 0.74
    # at U = 1, 0.99 at U = 10; mean squared gap / conditional variance 1.8 and 0.6 (ancestral steps
    # with the posterior variance end a little narrow). The slope's standard error is 0.007.
    rho, k = 0.9, 2
    schedule = make_schedule("linear", 1000)
    denoiser = equicorrelated_denoiser(schedule, MU, 1.0, rho)
    g = torch.Generator().manual_seed(0)
    shared = torch.randn((N, 1, 1, 1), generator=g, dtype=torch.float64)
    x0 = MU + rho**0.5 * shared + (1 - rho) ** 0.5 * torch.randn((N, 1, 2, 2), generator=g, dtype=torch.float64)
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)[None, None]  # the left column is generated
    cond_mean = (MU + rho * k * (x0[..., 1].mean(dim=(1, 2)) - MU) / (1 - rho + rho * k)).view(N, 1, 1)
    cond_var = 1 - rho**2 * k / (1 - rho + rho * k)
    fit = {}
    for resample in (1, 10):
        g = torch.Generator().manual_seed(1)
        x_T = initial_noise(x0.shape, g, torch.float64)
        config = plain("ddim", steps=50, spacing="leading", eta=1.0)
        generated = finish(repaint(denoiser, x0, mask, x_T, config, g, resample), x_T)[..., 0]  # (N, 1, 2)
        centred = (cond_mean - cond_mean.mean()).expand_as(generated)
        slope = (centred * (generated - generated.mean())).sum() / (centred * centred).sum()
        fit[resample] = slope.item(), ((generated - cond_mean) ** 2).mean().item() / cond_var
    assert 0.6 < fit[1][0] < 0.8 and fit[1][1] > 1.5, fit  # the kept pixels reach the rest even without jumps
    assert abs(fit[10][0] - 1) < 0.05 and fit[10][1] < 1.2, fit


@pytest.mark.parametrize("name", ["ddim", "dpmpp_2m"])
def test_inpainting_without_jumps_runs_the_sampler_unchanged_on_independent_pixels(name):
    # With pixels independent under the oracle, the masked ones never see the kept ones: a deterministic
    # sampler must give them exactly what plain sampling from the same noise gives. This holds for
    # DPM-Solver++(2M) only if the merged x is sent into the running sampler (keeping its second-order
    # history), not restarted at every step.
    schedule = make_schedule("cosine", 200)
    denoiser = gaussian_denoiser(schedule, MU, 0.5)
    x0 = gaussian_images(64, 0.5)
    x_T = initial_noise(x0.shape, torch.Generator().manual_seed(2), torch.float64)
    config = plain(name, steps=12, spacing="karras", lambda_min=-3.0)
    mask = builtin_mask("center", SIDE, SIDE).double()
    out = finish(repaint(denoiser, x0, mask, x_T, config, torch.Generator().manual_seed(3)), x_T)
    plain_sample = sample(denoiser, x_T, config, torch.Generator().manual_seed(3))
    inside = mask.bool().expand_as(out)
    assert torch.equal(out[inside], plain_sample[inside])
    assert torch.equal(out[~inside], x0[~inside])


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)  # the consistency sampler: tests/test_distill.py
def test_every_sampler_inpaints_with_jumps_and_keeps_the_known_pixels(name):
    schedule = make_schedule("cosine", 100)
    point = torch.tensor([-0.8, 0.1, 0.6]).view(1, 3, 1, 1).double().expand(1, 3, SIDE, SIDE)
    x0 = torch.zeros((5, 3, SIDE, SIDE), dtype=torch.float64) - 1  # kept pixels need not be the data
    g = torch.Generator().manual_seed(4)
    x_T = initial_noise(x0.shape, g, torch.float64)
    mask = builtin_mask("top-half", SIDE, SIDE).double()
    out = finish(repaint(one_point_denoiser(schedule, point), x0, mask, x_T, plain(name, steps=6, eta=1.0), g, 2), x_T)
    assert torch.equal(out[..., SIDE // 2:, :], x0[..., SIDE // 2:, :])
    # One-point data: x0_hat is the point at every step, so the generated pixels land on it.
    torch.testing.assert_close(out[..., : SIDE // 2, :], point[..., : SIDE // 2, :].expand(5, -1, -1, -1),
                               rtol=0, atol=1e-9)


def test_builtin_masks_cover_what_they_say():
    assert builtin_mask("left-half", 4, 6)[0, 0].tolist() == [[1, 1, 1, 0, 0, 0]] * 4
    assert builtin_mask("bottom-half", 4, 2)[0, 0].tolist() == [[0, 0], [0, 0], [1, 1], [1, 1]]
    assert builtin_mask("center", 8, 8).sum().item() == 16 and builtin_mask("center", 8, 8)[0, 0, 2:6, 2:6].all()
    for name in MASKS:
        m = builtin_mask(name, 8, 8)
        assert m.shape == (1, 1, 8, 8) and 0 < m.sum() < 64
    with pytest.raises(ValueError, match="unknown mask 'middle'; choose one of left-half"):
        builtin_mask("middle", 8, 8)


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)  # the consistency sampler: tests/test_distill.py
def test_sdedit_strength_one_is_plain_sampling_and_zero_the_input(name):
    schedule = make_schedule("cosine", 200)
    denoiser = gaussian_denoiser(schedule, MU, 0.5)
    config = plain(name, steps=8, spacing="karras", lambda_min=-3.0, eta=1.0)
    x0 = gaussian_images(16, 0.5)
    eps = initial_noise(x0.shape, torch.Generator().manual_seed(5), torch.float64)
    edited = finish(sdedit(denoiser, x0, eps, config, torch.Generator().manual_seed(6), 1.0), x0)
    assert torch.equal(edited, sample(denoiser, eps, config, torch.Generator().manual_seed(6)))
    assert list(sdedit(denoiser, x0, eps, config, torch.Generator(), 0.0)) == []  # no network evaluation
    assert torch.equal(finish(sdedit(denoiser, x0, eps, config, torch.Generator(), 0.0), x0), x0)


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)  # the consistency sampler: tests/test_distill.py
@pytest.mark.parametrize("strength", [0.05, 0.3, 0.6, 1.0])
def test_sdedit_on_one_point_data_returns_the_point(name, strength):
    schedule = make_schedule("cosine", 200)
    point = torch.tensor([-0.8, 0.1, 0.6]).view(1, 3, 1, 1).double()
    sketch = torch.tensor([0.9, -0.9, 0.0]).view(1, 3, 1, 1).double()  # far from the point
    eps = initial_noise((6, 3, 1, 1), torch.Generator().manual_seed(7), torch.float64)
    out = finish(sdedit(one_point_denoiser(schedule, point), sketch, eps, plain(name, steps=10, eta=1.0),
                        torch.Generator().manual_seed(8), strength), sketch)
    torch.testing.assert_close(out, point.expand_as(out), rtol=0, atol=1e-9)


def test_sdedit_starts_at_the_position_strength_names_and_follows_the_ode_from_there():
    # strength 0.6 of 10 steps: the last 6, from the 5th timestep. With DDIM on every timestep from
    # there, the result is the exact probability-flow ODE from x_t = a x0 + b eps (the oracle's
    # closed form, from level t instead of T-1); discretisation error < 6e-3 as in test_samplers.
    assert [sdedit_start(10, s) for s in (0.0, 0.01, 0.6, 0.64, 0.66, 1.0)] == [10, 9, 4, 4, 3, 0]
    schedule = make_schedule("linear", 1000)
    s = 0.5
    denoiser = gaussian_denoiser(schedule, MU, s)
    x0 = torch.linspace(-1, 1, 32, dtype=torch.float64).view(32, 1, 1, 1)
    eps = initial_noise(x0.shape, torch.Generator().manual_seed(9), torch.float64)
    config = plain("ddim")  # all 1000 timesteps, trailing: 999, 998, ..., 0
    records = list(sdedit(denoiser, x0, eps, config, torch.Generator(), 0.6))
    assert len(records) == 600 and records[0].t == 599 and [r.index for r in records[:2]] == [0, 1]
    abar = schedule.alpha_bars[599]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    torch.testing.assert_close(records[0].x_t, x_t, rtol=0, atol=1e-12)
    a, b = abar.sqrt(), (1 - abar).sqrt()
    expected = MU + s * (x_t - a * MU) / (a * a * s * s + b * b).sqrt()  # oracles.ode_endpoint, from t = 599
    assert (records[-1].x_prev - expected).abs().max().item() < 6e-3


def test_bad_strength_and_resample_fail_at_the_call():
    schedule = make_schedule("cosine", 100)
    with pytest.raises(ValueError, match=r"strength must lie in \[0, 1\], got 1.5"):
        sdedit(gaussian_denoiser(schedule, MU, 1.0), torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2),
               plain("ddim", steps=5), torch.Generator(), 1.5)  # at the call, before any step
    with pytest.raises(ValueError, match="resample must be a positive integer, got 0"):
        repaint(gaussian_denoiser(schedule, MU, 1.0), torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2),
                torch.zeros(1, 1, 2, 2), plain("ddim", steps=5), torch.Generator(), 0)


def test_ddim_round_trip_error_shrinks_with_the_step_count():
    # DDIM inversion reads eps at the level it leaves (eps(x_r, t) for eps(x_t, t)): a first-order
    # error, so four times the steps should cut the round-trip error about four times (measured 3.8-3.9x
    # on this oracle: 0.54, 0.14, 0.035); asserted: at least 3x each time, and under 0.05 at 160 steps.
    schedule = make_schedule("linear", 1000)
    denoiser = gaussian_denoiser(schedule, MU, 0.5)
    x0 = gaussian_images(256, 0.5)
    errors = []
    for steps in (10, 40, 160):
        x_T, back = round_trip(denoiser, x0, plain("ddim", steps=steps))
        errors.append((back - x0).abs().max().item())
    assert errors[0] > 3 * errors[1] > 9 * errors[2] and errors[2] < 0.05, errors


def test_inverted_noise_matches_the_closed_form_and_regenerates_from_any_sampler_config():
    # The config's sampler does not matter: inversion and the way back are deterministic DDIM.
    schedule = make_schedule("linear", 1000)
    denoiser = gaussian_denoiser(schedule, MU, 0.5)
    x0 = gaussian_images(64, 0.5)
    x_T, back = round_trip(denoiser, x0, plain("dpmpp_2m_sde", steps=500))
    x_T_ddim, back_ddim = round_trip(denoiser, x0, plain("ddim", steps=500))
    assert torch.equal(x_T, x_T_ddim) and torch.equal(back, back_ddim)
    abar = schedule.alpha_bars[-1]
    expected_T = abar.sqrt() * MU + (abar * 0.25 + 1 - abar).sqrt() * (x0 - MU) / 0.5
    assert (x_T - expected_T).abs().max().item() < 2e-2


def test_slerp_path_ends_on_both_noises():
    g = torch.Generator().manual_seed(10)
    z0, z1 = torch.randn((1, 1, 8, 8), generator=g), torch.randn((1, 1, 8, 8), generator=g)
    path = slerp_path(z0, z1, 5)
    assert path.shape == (5, 1, 8, 8)
    torch.testing.assert_close(path[0], z0[0])
    torch.testing.assert_close(path[-1], z1[0])
    norms = path.flatten(1).norm(dim=1)  # a Gaussian's norm is kept along the path (within its spread)
    assert (norms - 8).abs().max() < 3
    with pytest.raises(ValueError, match="at least 2 points, got 1"):
        slerp_path(z0, z1, 1)


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)  # the consistency sampler: tests/test_distill.py
def test_sampler_start_and_send_keep_the_plain_run(name):
    # start=k runs the last N - k of the same timesteps (for one-step DDIM: exactly the plain run's
    # tail); sending back each x_prev unchanged is the plain run.
    schedule = make_schedule("cosine", 100)
    denoiser = gaussian_denoiser(schedule, MU, 0.5)
    config = plain(name, steps=6, eta=1.0)
    x_T = initial_noise((4, 1, 2, 2), torch.Generator().manual_seed(11), torch.float64)
    full = list(iterate(denoiser, x_T, config, torch.Generator().manual_seed(12)))
    tail = list(SAMPLERS[name](denoiser, full[2].x_t, config, torch.Generator(), start=2))
    assert [r.t for r in tail] == sampler_timesteps(schedule, config)[2:] and tail[0].index == 0
    if name == "ddim":
        plain_full = list(iterate(denoiser, x_T, plain(name, steps=6), torch.Generator()))
        ddim_tail = list(SAMPLERS[name](denoiser, plain_full[2].x_t, plain(name, steps=6), torch.Generator(), start=2))
        assert torch.equal(ddim_tail[-1].x_prev, plain_full[-1].x_prev)
    steps = SAMPLERS[name](denoiser, x_T, config, torch.Generator().manual_seed(12))
    record = next(steps)
    for _ in range(5):
        record = steps.send(record.x_prev)
    assert torch.equal(record.x_prev, full[-1].x_prev)
