import warnings

import numpy as np
import pytest
from PIL import Image

from horseshoe.data import DataConfig, ImageFolder, build_dataset
from horseshoe.data.folder import load_image
from horseshoe.data.transforms import convert_mode, fit


def save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def test_finds_every_extension_recursively(tmp_path):
    grey = Image.new("L", (8, 8), 200)
    for name in ["a.png", "b.JPG", "sub/c.jpeg", "sub/deeper/d.bmp", "e.gif", "f.webp", "g.tif", "h.tiff"]:
        save(tmp_path / name, grey)
    (tmp_path / "notes.txt").write_text("not an image")
    folder = ImageFolder(tmp_path, (8, 8), 1)
    assert len(folder) == 8
    assert folder.get_batch(np.arange(8)).shape == (8, 8, 8, 1)


def test_mode_conversions():
    bg = (10, 20, 30)
    # RGBA composited on the background: transparent -> bg, opaque -> colour.
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 255))
    assert np.asarray(convert_mode(rgba, 3, bg)).tolist() == [[[10, 20, 30], [255, 0, 0]]]
    assert np.asarray(convert_mode(rgba, 4, bg))[0, 0, 3] == 0  # RGBA kept when asked
    # LA -> L composited.
    la = Image.new("LA", (1, 1), (255, 0))
    assert np.asarray(convert_mode(la, 1, (0, 0, 0))).item() == 0
    # Palette with a transparent index.
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    assert np.asarray(convert_mode(pal, 1, (128, 128, 128))).tolist() == [[128, 255]]
    # 16-bit greyscale is rescaled, not clipped.
    i16 = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    assert np.asarray(convert_mode(i16, 1, bg)).tolist() == [[0, 128, 255]]
    # CMYK -> RGB; 1-bit -> L.
    cmyk = Image.new("CMYK", (1, 1), (0, 255, 255, 0))  # pure red
    assert np.asarray(convert_mode(cmyk, 3, bg)).tolist() == [[[255, 0, 0]]]
    assert np.asarray(convert_mode(Image.new("1", (1, 1), 1), 1, bg)).item() == 255
    # Colour to grey uses luma.
    assert np.asarray(convert_mode(Image.new("RGB", (1, 1), (0, 255, 0)), 1, bg)).item() == 150


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.new("L", (4, 2), 0)
    img.putpixel((0, 0), 255)  # top-left marked
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(tmp_path / "rot.jpg", img, exif=exif, quality=100)
    with Image.open(path) as opened:
        shown = np.asarray(convert_mode(opened, 1, (0, 0, 0)))
    assert shown.shape == (4, 2)
    assert shown[0, -1] > 128  # the marked corner is now top-right


def test_fits_keep_crop_or_stretch():
    wide = Image.new("L", (40, 20), 0)
    wide.paste(255, (0, 0, 40, 20))
    wide.paste(0, (0, 0, 2, 20))  # black left border column
    padded = np.asarray(fit(wide, (16, 16), "pad"))
    assert padded.shape == (16, 16)
    assert padded[0].mean() > 200  # padded with the border's median colour (white)
    cropped = np.asarray(fit(Image.new("L", (40, 20), 9), (10, 10), "crop"))
    stretched = np.asarray(fit(Image.new("L", (40, 20), 9), (12, 30), "stretch"))
    assert cropped.shape == (10, 10) and stretched.shape == (12, 30)
    # 'pad' keeps the whole shape: a disk in a wide image stays round and whole.
    canvas = Image.new("L", (64, 32), 0)
    yy, xx = np.mgrid[0:32, 0:64]
    canvas = Image.fromarray(((np.hypot(xx - 32, yy - 16) < 14) * 255).astype(np.uint8))
    disk = np.asarray(fit(canvas, (32, 32), "pad")) > 127
    ys, xs = np.nonzero(disk)
    assert abs((ys.max() - ys.min()) - (xs.max() - xs.min())) <= 1


def test_non_square_training_size(tmp_path):
    save(tmp_path / "a.png", Image.new("RGB", (50, 30), (1, 2, 3)))
    data = build_dataset(DataConfig(path=str(tmp_path), image_size=(24, 40), channels=3, fit="stretch"))
    assert data.get_batch(np.array([0])).shape == (1, 24, 40, 3)


def test_lazy_reading_matches_memory(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        save(tmp_path / f"{i}.png", Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)))
    eager = ImageFolder(tmp_path, (16, 16), 3)
    lazy = ImageFolder(tmp_path, (16, 16), 3, memory_budget=100)
    assert eager.images is not None and lazy.images is None
    idx = np.array([4, 0, 2])
    assert np.array_equal(eager.get_batch(idx), lazy.get_batch(idx))


def test_missing_empty_and_imageless_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder '.*nope' does not exist"):
        ImageFolder(tmp_path / "nope", (8, 8), 1)
    with pytest.raises(ValueError, match=r"no image files in '.*' \(looked for .png, .jpg"):
        ImageFolder(tmp_path, (8, 8), 1)
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="no image files in"):
        ImageFolder(tmp_path, (8, 8), 1)


def test_corrupt_file_is_named_or_skipped(tmp_path):
    save(tmp_path / "good.png", Image.new("L", (8, 8), 3))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="cannot read image '.*broken.png'"):
        ImageFolder(tmp_path, (8, 8), 1)
    folder = ImageFolder(tmp_path, (8, 8), 1, skip_bad=True)
    assert len(folder) == 1 and folder.report.skipped == [str(tmp_path / "broken.png")]


def test_upscaling_warns_with_count(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.png", Image.new("L", (8 if i else 64, 8 if i else 64), 3))
    with pytest.warns(UserWarning, match="2 of 3 images .* smaller than 32x32 and were upscaled"):
        ImageFolder(tmp_path, (32, 32), 1)


@pytest.fixture(scope="module")
def huge_images(tmp_path_factory):
    """1-bit PNGs of a few KB that claim absurd sizes (made in well under a second)."""
    folder = tmp_path_factory.mktemp("huge")
    save(folder / "bomb.png", Image.new("1", (14000, 14000)))  # over twice PIL's limit: DecompressionBombError
    save(folder / "big.png", Image.new("1", (10000, 10000)))  # between the limit and twice it: only a warning
    return folder


@pytest.mark.parametrize("name, pixels", [("bomb.png", 196_000_000), ("big.png", 100_000_000)])
def test_decompression_bomb_is_a_one_line_error_naming_the_file(huge_images, name, pixels):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning must not escape, even as a warning
        with pytest.raises(ValueError) as raised:
            load_image(huge_images / name, (8, 8), 1, "pad", (0, 0, 0))
    assert str(raised.value) == (f"cannot read image {str(huge_images / name)!r}: too large ({pixels} pixels; "
                                 f"PIL's limit is {Image.MAX_IMAGE_PIXELS} pixels)")


def test_decompression_bombs_are_skipped_like_any_bad_file(huge_images, tmp_path):
    for name in ("bomb.png", "big.png"):
        (tmp_path / name).write_bytes((huge_images / name).read_bytes())
    save(tmp_path / "good.png", Image.new("L", (8, 8), 7))
    with pytest.raises(ValueError, match=r"cannot read image '.*big.png': too large \(100000000 pixels"):
        ImageFolder(tmp_path, (8, 8), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = ImageFolder(tmp_path, (8, 8), 1, skip_bad=True)
    assert folder.report.skipped == [str(tmp_path / "big.png"), str(tmp_path / "bomb.png")]
    assert folder.get_batch(np.array([0])).tolist() == np.full((1, 8, 8, 1), 7).tolist()
