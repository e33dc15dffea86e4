import pytest
import torch

from horseshoe.diffusion import PREDICTIONS, Denoiser, make_schedule, training_loss
from horseshoe.diffusion.objectives import draw_noise, min_snr_weight, nearest_timesteps

SCHEDULE = make_schedule("cosine", 100)
POINT = 0.4


def perfect_network(prediction):
    """The exact predictor for data that is the single value POINT."""
    def net(x_t, t):
        abar = SCHEDULE.alpha_bars[t].view(-1, 1, 1, 1).to(x_t.dtype)
        eps = (x_t - abar.sqrt() * POINT) / (1 - abar).sqrt()
        v = abar.sqrt() * eps - (1 - abar).sqrt() * POINT
        return {"eps": eps, "x0": torch.full_like(x_t, POINT), "v": v, "flow": eps - POINT}[prediction]
    return net


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_perfect_predictor_has_zero_loss(prediction):
    x0 = torch.full((8, 1, 4, 4), POINT, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    loss = training_loss(perfect_network(prediction), SCHEDULE, x0, g, prediction)
    assert loss.item() < 1e-20


def test_loss_replays_the_generator():
    # With a network that outputs zero, the eps loss is exactly the mean of eps^2 for the drawn eps.
    x0 = torch.randn(6, 2, 4, 4, dtype=torch.float64)
    loss = training_loss(lambda x, t: torch.zeros_like(x), SCHEDULE, x0, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    torch.randint(0, 100, (6,), generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    assert loss.item() == pytest.approx(eps.pow(2).mean().item(), rel=1e-12)
    again = training_loss(lambda x, t: torch.zeros_like(x), SCHEDULE, x0, torch.Generator().manual_seed(3))
    assert again.item() == loss.item()


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_weighting(prediction):
    # x0 target with a zero network and constant data c: per-example loss c^2, weighted by min(SNR, gamma).
    # For the other targets the weight divides by SNR (eps) or SNR + 1 (v), Hang et al. 2023.
    gamma, c = 5.0, 0.5
    x0 = torch.full((64, 1, 2, 2), c, dtype=torch.float64)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    g = torch.Generator().manual_seed(1)
    loss = training_loss(zero, SCHEDULE, x0, g, "x0", min_snr_gamma=gamma)
    t = torch.randint(0, 100, (64,), generator=torch.Generator().manual_seed(1))
    snr = SCHEDULE.snr()[t]
    assert loss.item() == pytest.approx((c * c * snr.clamp(max=gamma)).mean().item(), rel=1e-6)
    w = min_snr_weight(snr, gamma, prediction)
    expected = {"eps": snr.clamp(max=gamma) / snr, "x0": snr.clamp(max=gamma),
                "v": snr.clamp(max=gamma) / (snr + 1)}[prediction]
    torch.testing.assert_close(w, expected)
    # A huge gamma makes the eps weight 1: the plain loss.
    plain = training_loss(zero, SCHEDULE, x0, torch.Generator().manual_seed(1), "eps")
    big = training_loss(zero, SCHEDULE, x0, torch.Generator().manual_seed(1), "eps", min_snr_gamma=1e30)
    assert big.item() == pytest.approx(plain.item(), rel=1e-12)


def test_bad_objective_arguments():
    x0 = torch.zeros(2, 1, 2, 2)
    g = torch.Generator()
    with pytest.raises(ValueError, match="unknown prediction target 'score'"):
        training_loss(lambda x, t: x, SCHEDULE, x0, g, "score")
    with pytest.raises(ValueError, match="min_snr_gamma must be > 0, got -1"):
        training_loss(lambda x, t: x, SCHEDULE, x0, g, "eps", min_snr_gamma=-1)


def test_nearest_timesteps_finds_each_step_and_the_nearer_neighbour_in_log_sigma():
    schedule = make_schedule("cosine", 1000)
    log_sigma = -schedule.half_log_snr()  # ln sqrt((1 - abar) / abar)
    steps = torch.tensor([0, 1, 17, 500, 998, 999])
    assert nearest_timesteps(schedule, log_sigma[steps].exp()).tolist() == steps.tolist()
    # Just below and just above the log midpoint between steps 500 and 501.
    middle = 0.5 * (log_sigma[500] + log_sigma[501])
    gap = 1e-6 * (log_sigma[501] - log_sigma[500])
    assert nearest_timesteps(schedule, torch.stack([middle - gap, middle + gap]).exp()).tolist() == [500, 501]
    # Beyond either end of the schedule: its first and last step.
    assert nearest_timesteps(schedule, torch.tensor([1e-9, 1e9], dtype=torch.float64)).tolist() == [0, 999]


def test_lognormal_noise_levels_follow_the_normal_law_in_ln_sigma():
    from statistics import NormalDist

    schedule = make_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(0)
    t, eps = draw_noise(schedule, (40_000, 1, 2, 2), g, lognormal=(-1.2, 1.2))
    ln_sigma = -schedule.half_log_snr()[t]
    assert eps.shape == (40_000, 1, 2, 2) and t.dtype == torch.int64
    # The quantiles of ln sigma_t are those of N(-1.2, 1.2^2) (within sampling error and the steps' spacing).
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        assert float(ln_sigma.quantile(q)) == pytest.approx(NormalDist(-1.2, 1.2).inv_cdf(q), abs=0.03)
    # Uniform (the default) draws the same t as torch.randint on the same generator, as before the option.
    t_uniform, _ = draw_noise(schedule, (64, 1, 2, 2), torch.Generator().manual_seed(3))
    assert torch.equal(t_uniform, torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(3)))


def test_timesteps_setting_is_checked():
    from horseshoe.diffusion import DiffusionConfig

    assert DiffusionConfig().lognormal is None
    assert DiffusionConfig(timesteps="lognormal", p_mean=-0.5).lognormal == (-0.5, 1.2)
    with pytest.raises(ValueError, match="diffusion.timesteps must be one of uniform, lognormal, got 'beta'"):
        DiffusionConfig(timesteps="beta")
    with pytest.raises(ValueError, match="diffusion.p_std positive, got -1.2, 0.0"):
        DiffusionConfig(timesteps="lognormal", p_std=0.0)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_min_snr_weighted_loss_is_the_same_in_every_parameterisation(prediction):
    # A network whose x0 estimate is off by d everywhere (data: the single value POINT), written in each
    # parameterisation; with min-SNR-gamma every target's weighted loss must be min(SNR, gamma) d^2, the
    # paper's x0-space loss (Hang et al. 2023, Eq. 7): the weights undo each target's own scale.
    gamma, d = 5.0, 0.25
    schedule = make_schedule("cosine", 100)

    def net(x_t, t):
        abar = schedule.alpha_bars[t].view(-1, 1, 1, 1).to(x_t.dtype)
        a, b = abar.sqrt(), (1 - abar).sqrt()
        x0 = torch.full_like(x_t, POINT + d)
        eps = (x_t - a * x0) / b
        return {"eps": eps, "x0": x0, "v": a * eps - b * x0, "flow": eps - x0}[prediction]

    # The denoiser reads the output back as that x0 estimate.
    x_t, t = torch.randn(3, 1, 2, 2, dtype=torch.float64), torch.tensor([5, 50, 95])
    torch.testing.assert_close(Denoiser(net, schedule, prediction)(x_t, t).x0, torch.full_like(x_t, POINT + d))
    x0 = torch.full((64, 1, 2, 2), POINT, dtype=torch.float64)
    loss = training_loss(net, schedule, x0, torch.Generator().manual_seed(2), prediction, min_snr_gamma=gamma)
    t = torch.randint(0, 100, (64,), generator=torch.Generator().manual_seed(2))
    expected = (schedule.snr()[t].clamp(max=gamma) * d * d).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
