import pytest
import torch

from horseshoe.diffusion import make_schedule, training_loss
from horseshoe.diffusion.objectives import min_snr_weight

SCHEDULE = make_schedule("cosine", 100)
POINT = 0.4


def perfect_network(prediction):
    """The exact predictor for data that is the single value POINT."""
    def net(x_t, t):
        abar = SCHEDULE.alpha_bars[t].view(-1, 1, 1, 1).to(x_t.dtype)
        eps = (x_t - abar.sqrt() * POINT) / (1 - abar).sqrt()
        v = abar.sqrt() * eps - (1 - abar).sqrt() * POINT
        return {"eps": eps, "x0": torch.full_like(x_t, POINT), "v": v}[prediction]
    return net


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
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
