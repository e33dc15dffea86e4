import math

import pytest
import torch

from horseshoe.diffusion import SCHEDULES, make_schedule


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("T", [10, 500, 1000])
def test_alpha_bar_strictly_decreasing_in_unit_interval(name, T):
    s = make_schedule(name, T)
    assert s.betas.dtype == torch.float64 and s.num_steps == T
    assert bool((s.alpha_bars > 0).all() and (s.alpha_bars < 1).all())
    assert bool((s.alpha_bars[1:] < s.alpha_bars[:-1]).all())
    torch.testing.assert_close(s.alphas, 1 - s.betas, rtol=0, atol=0)
    torch.testing.assert_close(s.alpha_bars, torch.cumprod(1 - s.betas, 0), rtol=0, atol=0)


def test_linear_matches_ho_et_al():
    s = make_schedule("linear", 1000)
    assert s.betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert s.betas[-1].item() == pytest.approx(0.02, abs=1e-15)
    diffs = s.betas[1:] - s.betas[:-1]
    assert torch.allclose(diffs, torch.full_like(diffs, (0.02 - 1e-4) / 999), atol=1e-15)
    # The well-known endpoint of the DDPM schedule: abar_T ~ 4.04e-5.
    assert s.alpha_bars[-1].item() == pytest.approx(4.035e-5, rel=1e-3)


def test_linear_scales_with_T():
    s = make_schedule("linear", 500)  # the seed project's T
    assert s.betas[0].item() == pytest.approx(2e-4) and s.betas[-1].item() == pytest.approx(0.04)


def test_cosine_closed_form():
    T, s_off = 1000, 0.008
    sched = make_schedule("cosine", T)

    def f(t):
        return math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2

    for t in [0, 1, 10, 250, 500, 900]:  # unclipped region: abar_t = f(t+1)/f(0)
        assert sched.alpha_bars[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-12)
    assert sched.betas.max().item() == pytest.approx(0.999)  # clipped at the end


def test_sigmoid_closed_form():
    T = 1000
    sched = make_schedule("sigmoid", T)

    def sig(z):
        return 1 / (1 + math.exp(-z))

    def abar(t):  # Jabri et al. 2022 with start=-3, end=3, tau=1
        return (sig(3) - sig(6 * t / T - 3)) / (sig(3) - sig(-3))

    for t in [0, 100, 500, 900]:
        assert sched.alpha_bars[t].item() == pytest.approx(abar(t + 1), rel=1e-10)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'"):
        make_schedule("quadratic", 100)
    with pytest.raises(ValueError, match="num_steps"):
        make_schedule("linear", 0)
