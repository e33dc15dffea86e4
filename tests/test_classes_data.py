"""Labelled data: class folders, the four-direction horseshoes, and labels through the loader."""

import numpy as np
import pytest
import torch
from PIL import Image

from horseshoe.config import Config, build_config, merge
from horseshoe.data import BatchLoader, DataConfig, ImageFolder, build_dataset, find_classes
from horseshoe.data.horseshoes import DIRECTIONS, render_labelled
from horseshoe.data.transforms import to_uint8
from horseshoe.metrics.shape import analyse, opening_accuracy
from horseshoe.recipe import FEW_CLASSES, with_balance, with_class_recipe, with_classes


def make_folder(root, layout):
    """layout: {relative path: grey level}: one 8x8 PNG each."""
    for name, level in layout.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), level).save(path)
    return root


def test_first_level_subfolders_are_the_classes_sorted(tmp_path):
    make_folder(tmp_path, {"shoe/a.png": 10, "shoe/deeper/b.png": 20, "heart/c.png": 200, ".cache/d.png": 0})
    classes, files, labels = find_classes(tmp_path)
    assert classes == ("heart", "shoe")  # sorted; the hidden folder is no class
    assert [f.name for f in files] == ["c.png", "a.png", "b.png"] and labels.tolist() == [0, 1, 1]
    folder = ImageFolder(tmp_path, (8, 8), 1)
    assert folder.classes == ("heart", "shoe") and folder.report.per_class == {"heart": 1, "shoe": 2}
    pixels = folder.get_batch(np.arange(3))[:, 0, 0, 0]
    assert [int(p) for p in pixels[folder.get_labels(np.arange(3)) == 1]] == [10, 20]


def test_one_subfolder_or_labels_none_reads_every_image_without_classes(tmp_path):
    make_folder(tmp_path / "one", {"only/a.png": 1, "only/b.png": 2})
    assert find_classes(tmp_path / "one")[0] == ()
    make_folder(tmp_path / "two", {"x/a.png": 1, "y/b.png": 2, "y/c.png": 3})
    folder = build_dataset(DataConfig(path=str(tmp_path / "two"), image_size=8, labels="none"))
    assert folder.classes == () and len(folder) == 3


def test_a_class_folder_without_images_is_named(tmp_path):
    make_folder(tmp_path, {"a/x.png": 1, "b/y.png": 2})
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("no image")
    with pytest.raises(ValueError, match=r"class folder '.*c' has no images .*--set data.labels=none"):
        ImageFolder(tmp_path, (8, 8), 1)


def test_images_beside_class_folders_are_an_error_that_names_them(tmp_path):
    make_folder(tmp_path, {"a/x.png": 1, "b/y.png": 2, "stray.png": 3})
    with pytest.raises(ValueError, match=r"1 images sit at the top level of '.*' \(stray.png\) beside the class "
                                         r"folders a, b: .* --set data.labels=none to train on all 3 images"):
        ImageFolder(tmp_path, (8, 8), 1)


def test_a_class_whose_files_all_fail_is_named(tmp_path):
    make_folder(tmp_path, {"a/x.png": 1, "b/y.png": 2})
    (tmp_path / "b" / "y.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"no readable images in class folder '.*b'"):
        ImageFolder(tmp_path, (8, 8), 1, skip_bad=True)


def test_classes_decide_the_model_and_must_agree_with_the_config():
    config = build_config(None, ["data.rotation='four'"])
    found = with_classes(config, DIRECTIONS)
    assert found.model.num_classes == 4 and found.data.classes == DIRECTIONS
    assert with_classes(build_config(), ()).model.num_classes == 0
    with pytest.raises(ValueError, match=r"data.classes is \['a', 'b'\] but the data's classes are \['b', 'c'\]"):
        with_classes(build_config(None, ["data.classes=['a','b']", "model.num_classes=2"]), ("b", "c"))
    with pytest.raises(ValueError, match="model.num_classes is 3 but the data has no classes"):
        with_classes(build_config(None, ["model.num_classes=3"]), ())
    with pytest.raises(ValueError, match="data.balance_classes is set but the data has no classes"):
        with_classes(build_config(None, ["data.balance_classes=true"]), ())
    with pytest.raises(ValueError, match="data.classes names 2 classes but model.num_classes is 0"):
        build_config(None, ["data.classes=['a','b']"])
    with pytest.raises(ValueError, match="data.labels must be one of auto, none"):
        build_config(None, ["data.labels='folders'"])


@pytest.mark.parametrize("size", [16, 32])
def test_each_direction_renders_a_shoe_opening_that_way(size):
    images, labels = render_labelled(8, range(120), size, rotation="four")
    assert set(labels.tolist()) == {0, 1, 2, 3}
    for c, name in enumerate(DIRECTIONS):
        mine = images[labels == c, ..., 0] / 255.0
        assert len(mine) >= 15 and all(analyse(img).opening == name for img in mine)
    assert opening_accuracy(images / 255.0, [DIRECTIONS[k] for k in np.roll(labels, 1)]) < 0.5  # it can fail


def test_the_opening_of_a_drawn_u():
    yy, xx = np.mgrid[0:32, 0:32] + 0.5
    r = np.hypot(yy - 16, xx - 16)
    u = ((r < 12) & (r > 7) & ~((yy > 16) & (np.abs(xx - 16) < 7))).astype(float)  # open at the bottom
    assert [analyse(np.rot90(u, k)).opening for k in range(4)] == ["down", "right", "up", "left"]
    assert analyse(np.zeros((32, 32))).opening is None


def test_labels_follow_flips_and_turns_of_the_four_directions():
    # The loader flips and turns images; the label must still name the way each opening faces.
    config = DataConfig(count=48, rotation="four", hflip=True, vflip=True, rot90=True, image_size=32)
    loader = BatchLoader(build_dataset(config), config, batch_size=48, seed=2)
    images, labels = loader.next_with_labels()
    plain = BatchLoader(build_dataset(config), DataConfig(count=48, rotation="four", hflip=False, image_size=32),
                        batch_size=48, seed=2).next_with_labels()[1]
    assert (labels != plain).sum() > 10  # many labels changed
    assert opening_accuracy(to_uint8(images) / 255.0, [DIRECTIONS[k] for k in labels]) == 1.0


def uneven(tmp_path):
    make_folder(tmp_path, {**{f"few/{i}.png": i for i in range(3)}, **{f"many/{i}.png": 100 + i for i in range(12)}})
    config = DataConfig(path=str(tmp_path), image_size=8, hflip=False, balance_classes=True)
    return build_dataset(config), config


def test_balanced_classes_draw_every_class_equally_often(tmp_path):
    dataset, config = uneven(tmp_path)
    loader = BatchLoader(dataset, config, batch_size=24, seed=0)
    assert loader.epoch_length == 24  # 2 classes x 12, the largest class
    indices = loader.indices(0)
    labels = dataset.get_labels(indices)
    assert (labels == 0).sum() == (labels == 1).sum() == 12
    assert sorted(np.bincount(indices[labels == 0]).tolist()) == [4, 4, 4]  # each of the 3 four times
    assert sorted(indices[labels == 1].tolist()) == list(range(3, 15))  # each of the 12 once
    assert loader.epochs_done() == 0.0
    loader.next_batch()
    assert loader.epochs_done() == 1.0
    unbalanced = BatchLoader(dataset, DataConfig(path=str(tmp_path), image_size=8), batch_size=15, seed=0)
    assert (dataset.get_labels(unbalanced.indices(0)) == 0).sum() == 3


def test_labels_resume_and_split_over_ranks_like_the_images(tmp_path):
    dataset, config = uneven(tmp_path)
    full = BatchLoader(dataset, config, batch_size=6, seed=3)
    expected = [full.next_with_labels() for _ in range(7)]
    first = BatchLoader(dataset, config, batch_size=6, seed=3)
    for _ in range(3):
        first.next_batch()
    resumed = BatchLoader(dataset, config, batch_size=6, seed=3)
    resumed.load_state_dict(first.state_dict())
    for images, labels in expected[3:]:
        got_images, got_labels = resumed.next_with_labels()
        assert torch.equal(images, got_images) and torch.equal(labels, got_labels)
    ranks = [BatchLoader(dataset, config, batch_size=6, seed=3, rank=r, world_size=3) for r in range(3)]
    for images, labels in expected[:4]:
        parts = [r.next_with_labels() for r in ranks]
        assert torch.equal(images, torch.cat([p[0] for p in parts]))
        assert torch.equal(labels, torch.cat([p[1] for p in parts]))


def test_auto_balance_draws_uneven_classes_evenly_and_says_why():
    config = merge(Config(), {"data": {"classes": ["a", "b"]}, "model": {"num_classes": 2}})
    even, line = with_balance(config, {"a": 20, "b": 30})
    assert even.data.balance_classes is False and "drawn in proportion" in line and "1.5x" in line
    uneven, line = with_balance(config, {"a": 5, "b": 10})
    assert uneven.data.balance_classes is True and "drawn evenly" in line and "5 to 10 images" in line
    told, line = with_balance(merge(config, {"data": {"balance_classes": False}}), {"a": 1, "b": 100})
    assert told.data.balance_classes is False and "data.balance_classes = false" in line
    assert with_balance(Config(), {}) == (Config(), "")


def test_the_class_recipe_follows_the_number_of_classes_unless_set():
    def recipe(classes, *overrides):
        config = with_classes(build_config(None, list(overrides)), tuple(f"c{i}" for i in range(classes)))
        return with_class_recipe(config)

    few, line = recipe(FEW_CLASSES)
    assert (few.train.label_dropout, few.model.class_embed_std) == (0.5, 0.3) and "at most 4" in line
    many, line = recipe(FEW_CLASSES + 1)
    assert (many.train.label_dropout, many.model.class_embed_std) == (0.1, 1.0) and "more than 4" in line
    told, line = recipe(16, "train.label_dropout=0.2")
    assert (told.train.label_dropout, told.model.class_embed_std) == (0.2, 1.0)
    assert "label dropout 0.2" in line and "auto for 16 classes" in line and "model.class_embed_std" in line
    both, line = recipe(16, "train.label_dropout=0.2", "model.class_embed_std=0.5")
    assert line.endswith("(as set)")
    plain = build_config(None, [])
    assert with_class_recipe(plain) == (plain, "")
