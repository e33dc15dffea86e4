"""The critic and the hinge losses of a student's adversarial term (horseshoe.models.critic,
horseshoe.diffusion.adversarial): the losses' known values, and that the game pushes a student's images towards the
training images and, with classes, towards the class asked for."""

from __future__ import annotations

import pytest
import torch

from horseshoe.diffusion.adversarial import critic_loss, generator_loss
from horseshoe.models import NO_CLASS
from horseshoe.models.critic import Critic


def test_the_hinge_losses_take_their_known_values():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 3.0])
    # E[max(0, 1 - real)] = (0 + 0.5 + 2) / 3; E[max(0, 1 + fake)] = (0 + 1 + 4) / 3
    assert critic_loss(real, fake).item() == pytest.approx(2.5 / 3 + 5 / 3)
    assert generator_loss(fake).item() == pytest.approx(-1 / 3)


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 20, 28), (1, 8, 8)])
def test_the_critic_scores_one_number_per_image_at_any_size(shape):
    critic = Critic(shape, classes=3)
    labels = torch.tensor([0, 2, NO_CLASS, 1])
    scores = critic(torch.randn(4, *shape), labels)
    assert scores.shape == (4,) and torch.isfinite(scores).all()


def trained_critic(real: torch.Tensor, fake: torch.Tensor, real_labels=None, fake_labels=None,
                   classes: int = 0) -> Critic:
    torch.manual_seed(0)
    critic = Critic(tuple(real.shape[1:]), classes)
    optimizer = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.0, 0.99))
    for _ in range(60):
        loss = critic_loss(critic(real, real_labels), critic(fake, fake_labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return critic


def test_the_student_term_pushes_its_images_towards_the_training_images():
    # Real images: a bright square on black; the student's: the same square, dimmer. After the critic has learned
    # the difference, descending the student's term brightens the square and leaves the black alone.
    real = -torch.ones(32, 1, 8, 8)
    real[:, :, 2:6, 2:6] = 1.0
    fake = real.clone()
    fake[:, :, 2:6, 2:6] = 0.0
    critic = trained_critic(real, fake)
    fake.requires_grad_(True)
    generator_loss(critic(fake)).backward()
    step = -fake.grad.mean(0)[0]  # gradient descent's direction
    background = torch.ones(8, 8, dtype=torch.bool)
    background[2:6, 2:6] = False
    assert step[2:6, 2:6].mean() > 0  # the square brightens
    assert step[2:6, 2:6].mean() > 4 * step[background].abs().mean()  # mostly there


def test_with_classes_the_critic_judges_the_class_asked_for():
    # Class 0 is a square on the left, class 1 on the right. The critic sees real images with their classes and, as
    # its fakes, the same images under the other class: it must learn which side goes with which class.
    left, right = -torch.ones(16, 1, 8, 8), -torch.ones(16, 1, 8, 8)
    left[:, :, 2:6, 0:3], right[:, :, 2:6, 5:8] = 1.0, 1.0
    images = torch.cat([left, right])
    labels = torch.cat([torch.zeros(16, dtype=torch.long), torch.ones(16, dtype=torch.long)])
    critic = trained_critic(images, images, labels, 1 - labels, classes=2)
    with torch.no_grad():
        asked, other = critic(images, labels), critic(images, 1 - labels)
    assert (asked > other).float().mean() == 1.0
    unconditional = critic(images, torch.full_like(labels, NO_CLASS))
    assert torch.isfinite(unconditional).all()
