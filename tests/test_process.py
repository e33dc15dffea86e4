import pytest
import torch

from horseshoe.diffusion import (
    eps_from_v,
    eps_from_x0,
    flow_target,
    make_schedule,
    q_posterior_mean_variance,
    q_sample,
    v_target,
    x0_eps_from_flow,
    x0_from_eps,
    x0_from_v,
)


@pytest.fixture
def schedule():
    return make_schedule("cosine", 200)


def test_q_sample_statistics(schedule):
    # x_t | x0 ~ N(sqrt(abar) x0, 1 - abar): check mean and variance over many eps draws.
    g = torch.Generator().manual_seed(0)
    n, x0_value, t = 200_000, 0.7, 120
    x0 = torch.full((n, 1, 1, 1), x0_value, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x_t = q_sample(schedule, x0, torch.full((n,), t), eps)
    abar = schedule.alpha_bars[t].item()
    # 5 standard errors: sd/sqrt(n) for the mean, var*sqrt(2/n) for the variance.
    assert x_t.mean().item() == pytest.approx(abar**0.5 * x0_value, abs=5 * (1 - abar) ** 0.5 / n**0.5)
    assert x_t.var().item() == pytest.approx(1 - abar, abs=5 * (1 - abar) * (2 / n) ** 0.5)


def test_q_sample_per_example_timesteps(schedule):
    x0 = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 50, 199])
    out = q_sample(schedule, x0, t, eps)
    for i in range(3):
        a = schedule.alpha_bars[t[i]]
        torch.testing.assert_close(out[i], a.sqrt() * x0[i] + (1 - a).sqrt() * eps[i])


def test_posterior_against_bayes_rule(schedule):
    # Independent derivation: q(x_{t-1}|x_t,x0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x0), a product of Gaussians
    # in x_{t-1}: precision 1/(1-abar_{t-1}) + alpha_t/beta_t,
    # mean = var * (sqrt(abar_{t-1}) x0 / (1-abar_{t-1}) + sqrt(alpha_t) x_t / beta_t).
    x0 = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    x_t = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    for t in [1, 7, 100, 199]:
        abar_prev = schedule.alpha_bars[t - 1]
        alpha, beta = schedule.alphas[t], schedule.betas[t]
        var = 1 / (1 / (1 - abar_prev) + alpha / beta)
        mean = var * (abar_prev.sqrt() * x0 / (1 - abar_prev) + alpha.sqrt() * x_t / beta)
        got_mean, got_var = q_posterior_mean_variance(schedule, x0, x_t, t)
        torch.testing.assert_close(got_mean, mean, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(got_var, var.expand_as(x_t), rtol=1e-10, atol=1e-12)


def test_posterior_at_first_step_returns_x0(schedule):
    # t = 0: the step before is clean data (abar = 1), so the posterior is a point mass at x0.
    x0, x_t = torch.randn(2, 1, 2, 2, dtype=torch.float64), torch.randn(2, 1, 2, 2, dtype=torch.float64)
    mean, var = q_posterior_mean_variance(schedule, x0, x_t, 0)
    torch.testing.assert_close(mean, x0)
    assert float(var.abs().max()) == 0.0


def test_eps_x0_v_round_trips(schedule):
    x0 = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 10, 100, 150, 199])
    x_t = q_sample(schedule, x0, t, eps)
    torch.testing.assert_close(x0_from_eps(schedule, x_t, t, eps), x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(eps_from_x0(schedule, x_t, t, x0), eps, rtol=1e-9, atol=1e-9)
    v = v_target(schedule, x0, t, eps)
    torch.testing.assert_close(x0_from_v(schedule, x_t, t, v), x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(eps_from_v(schedule, x_t, t, v), eps, rtol=1e-9, atol=1e-9)
    # v is the rotation of (x0, eps) by phi with tan(phi) = sqrt((1-abar)/abar): |v|^2 + |x_t|^2 = |x0|^2 + |eps|^2.
    torch.testing.assert_close(v.pow(2) + x_t.pow(2), x0.pow(2) + eps.pow(2), rtol=1e-9, atol=1e-9)


def test_flow_round_trips_and_is_the_straight_path_velocity(schedule):
    x0 = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 10, 100, 150, 199])
    x_t = q_sample(schedule, x0, t, eps)
    u = flow_target(x0, eps)
    x0_back, eps_back = x0_eps_from_flow(schedule, x_t, t, u)
    torch.testing.assert_close(x0_back, x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(eps_back, eps, rtol=1e-9, atol=1e-9)
    # u is d/ds of x(s) = (1 - s) x0 + s eps, by finite differences along the straight path.
    s, h = 0.3, 1e-6
    path = lambda s: (1 - s) * x0 + s * eps  # noqa: E731
    torch.testing.assert_close((path(s + h) - path(s - h)) / (2 * h), u, rtol=1e-6, atol=1e-6)
