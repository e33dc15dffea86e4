"""The critic and the hinge losses of a student's adversarial term (horseshoe.models.critic,
horseshoe.diffusion.adversarial): the losses' known values, and that the game pushes a student's images towards the
training images."""

from __future__ import annotations

import pytest
import torch

from horseshoe.diffusion.adversarial import critic_loss, generator_loss
from horseshoe.models.critic import Critic


def test_the_hinge_losses_take_their_known_values():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 3.0])
    # E[max(0, 1 - real)] = (0 + 0.5 + 2) / 3; E[max(0, 1 + fake)] = (0 + 1 + 4) / 3
    assert critic_loss(real, fake).item() == pytest.approx(2.5 / 3 + 5 / 3)
    assert generator_loss(fake).item() == pytest.approx(-1 / 3)


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 20, 28), (1, 8, 8)])
def test_the_critic_scores_one_number_per_image_at_any_size(shape):
    scores = Critic(shape)(torch.randn(4, *shape))
    assert scores.shape == (4,) and torch.isfinite(scores).all()


def test_the_game_moves_a_students_images_to_the_training_images():
    # Real images: a bright square on black; the student's: the same square at grey, as free pixels. Alternating
    # the critic's step and the student's (the hinge game as training plays it), the square brightens towards
    # the real one's, and the images as a whole come nearer the real ones.
    torch.manual_seed(0)
    real = -torch.ones(32, 1, 8, 8)
    real[:, :, 2:6, 2:6] = 1.0
    square = torch.zeros(8, 8, dtype=torch.bool)
    square[2:6, 2:6] = True
    fake = torch.where(square, 0.0, -1.0).expand(32, 1, 8, 8).clone().requires_grad_(True)
    critic = Critic((1, 8, 8))
    critic_opt = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.0, 0.99))
    student_opt = torch.optim.Adam([fake], lr=5e-3)
    start = (fake.detach() - real).abs().mean()  # 0.25: the square's 16 of 64 pixels, each 1 off
    for _ in range(300):
        loss = critic_loss(critic(real), critic(fake.detach()))
        critic_opt.zero_grad()
        loss.backward()
        critic_opt.step()
        student_opt.zero_grad()
        generator_loss(critic(fake)).backward()
        student_opt.step()
    moved = fake.detach()
    assert moved[:, 0, square].mean() > 0.6, moved[:, 0, square].mean()  # from 0 towards the real 1 (0.99)
    assert (moved - real).abs().mean() < start / 2, (moved - real).abs().mean()  # nearer the real images (0.12)
