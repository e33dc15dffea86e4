import numpy as np
import pytest

from horseshoe.data import BatchLoader, DataConfig, build_dataset
from horseshoe.data.horseshoes import render
from horseshoe.metrics.shape import analyse, is_horseshoe


def test_same_seed_and_index_same_pixels():
    a = render(7, [0, 1, 2, 3], 32)
    b = render(7, [3, 2, 1, 0], 32)[::-1]  # order and batch do not matter
    c = np.concatenate([render(7, [i], 32) for i in range(4)])
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_different_seeds_and_indices_differ():
    a, b = render(0, range(8), 32), render(1, range(8), 32)
    assert all(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len({img.tobytes() for img in a}) == 8


def test_pixels_are_the_same_on_every_machine():
    # Recorded on the development machine: another machine (CI) must draw the same shoes. A few
    # pixels may differ by one level where libm rounds a transcendental differently, hence abs=8.
    images = render(0, range(4), 32)
    assert images.dtype == np.uint8 and images.shape == (4, 32, 32, 1)
    assert int(images.astype(np.int64).sum()) == pytest.approx(147799, abs=8)


@pytest.mark.parametrize("rotation", ["updown", "full"])
def test_every_shoe_is_one_open_piece_without_holes(rotation):
    images = render(3, range(400), 32, rotation=rotation)[..., 0] / 255.0
    for i, img in enumerate(images):
        report = analyse(img)
        assert report.pieces == 1 and report.stray == 0, (i, report)
        assert report.holes == 0, (i, report)
        assert report.mouths == 1 and report.mouth > 0.3, (i, report)  # a U: open on one side
        assert is_horseshoe(report, img.size), (i, report)


def test_size_fill_and_orientation():
    images = render(5, range(300), 64)[..., 0] > 127
    fills, opens_down = [], []
    for img in images:
        ys, xs = np.nonzero(img)
        fills.append(max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) / 64)
        # Open end down: the lowest rows of the shoe hold two heels, the top row one toe (and vice versa).
        top, bottom = img[ys.min():ys.min() + 3].sum(), img[ys.max() - 2:ys.max() + 1].sum()
        opens_down.append(bottom < top)
        assert img[0].sum() + img[-1].sum() + img[:, 0].sum() + img[:, -1].sum() <= 4  # inside the frame
    assert 0.5 <= min(fills) and max(fills) <= 0.97 and np.mean(fills) > 0.65
    assert 0.3 < np.mean(opens_down) < 0.7  # both orientations occur


def test_anti_aliased_edges():
    img = render(0, [0], 64)[0, ..., 0]
    grey = ((img > 0) & (img < 255)).sum()
    assert grey > 20  # edges have partial coverage, not a hard threshold
    assert set(np.unique(img[img == 0])) == {0}


@pytest.mark.parametrize("size", [16, 48, 256])
def test_any_square_size(size):
    img = render(0, [0, 1], size)
    assert img.shape == (2, size, size, 1)
    assert all(is_horseshoe(analyse(i[..., 0] / 255), size * size) for i in img)


def test_rendered_style_is_colour():
    img = render(0, range(4), 48, style="rendered")
    assert img.shape == (4, 48, 48, 3)
    assert np.abs(img[..., 0].astype(int) - img[..., 2]).max() > 0  # really coloured


def test_bad_arguments():
    with pytest.raises(ValueError, match="between 16 and 256, got 8"):
        render(0, [0], 8)
    with pytest.raises(ValueError, match="unknown horseshoe style 'pencil'"):
        render(0, [0], 32, style="pencil")
    with pytest.raises(ValueError, match=r"data.channels must be 1, 3 or 4, got 2"):
        DataConfig(channels=2)
    with pytest.raises(ValueError, match="built-in horseshoes are square"):
        DataConfig(image_size=(32, 48))


def test_fixed_count_and_endless_stream():
    fixed = build_dataset(DataConfig(count=20))
    assert len(fixed) == 20
    assert np.array_equal(fixed.get_batch(np.array([3, 4])), render(0, [3, 4], 32))
    stream = build_dataset(DataConfig(count=None))
    loader = BatchLoader(stream, DataConfig(count=None, hflip=False), batch_size=8)
    first, second = loader.next_batch(), loader.next_batch()
    assert not np.array_equal(first.numpy(), second.numpy())  # always new images
    np.testing.assert_array_equal(((second + 1) * 127.5).round().numpy().astype(np.uint8)[:, 0],
                                  render(0, range(8, 16), 32)[..., 0])


def test_channel_conversion_of_builtin_data():
    rgb = build_dataset(DataConfig(count=4, channels=3)).get_batch(np.arange(4))
    assert rgb.shape == (4, 32, 32, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])
    grey = build_dataset(DataConfig(count=4, channels=1, style="rendered")).get_batch(np.arange(4))
    assert grey.shape == (4, 32, 32, 1)
