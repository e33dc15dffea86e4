"""The horseshoe check must reject what is not a horseshoe."""

import numpy as np

from horseshoe.data.horseshoes import render
from horseshoe.metrics.shape import analyse, horseshoe_rate, is_horseshoe, label

YY, XX = np.mgrid[0:32, 0:32] + 0.5
R = np.hypot(YY - 16, XX - 16)


def check(image):
    return is_horseshoe(analyse(image), image.size)


def test_accepts_a_drawn_u():
    u = ((R < 12) & (R > 7) & ~((YY > 16) & (np.abs(XX - 16) < 7))).astype(float)
    assert check(u)


def test_rejects_blob_ring_pieces_noise_and_empty():
    disk = (R < 10).astype(float)
    ring = ((R < 12) & (R > 7)).astype(float)
    u = ((R < 12) & (R > 7) & ~((YY > 16) & (np.abs(XX - 16) < 7))).astype(float)
    two = u.copy()
    two[1:4, 1:4] = 1.0  # a stray blob
    noisy = np.clip(u + np.random.default_rng(0).normal(0, 0.2, u.shape), 0, 1)
    assert not check(disk)  # no mouth
    assert analyse(ring).holes == 1 and not check(ring)  # enclosed hole
    assert analyse(two).stray == 9 and not check(two)
    assert not check(noisy)
    assert not check(np.zeros((32, 32)))


def test_label_counts_components():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal: one piece with 8-neighbours
    mask[4:, 4:] = True
    assert label(mask)[1] == 2


def test_rate_of_training_data_is_one():
    assert horseshoe_rate(render(11, range(50), 32) / 255.0) == 1.0
