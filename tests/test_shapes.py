"""The built-in many-class shapes: deterministic, balanced, drawn inside the frame, read back by class, and
the packaged judge still tells fresh ones apart."""

import numpy as np
import pytest

from horseshoe.cli.common import data_flag
from horseshoe.config import build_config
from horseshoe.data import build_dataset, first_labelled, shapes
from horseshoe.data.transforms import to_model_range
from horseshoe.metrics.judge import load_judge, per_class_accuracy


def test_sixteen_sorted_classes_drawn_evenly_by_index():
    assert len(shapes.CLASSES) == 16 and list(shapes.CLASSES) == sorted(shapes.CLASSES)
    _, labels = shapes.render_labelled(0, range(48), 16)
    assert np.array_equal(np.bincount(labels), np.full(16, 3))
    assert np.array_equal(labels, np.arange(48) % 16)


def test_an_image_depends_only_on_seed_and_index():
    a, _ = shapes.render_labelled(3, [5, 40, 17], 32)
    b, _ = shapes.render_labelled(3, [17, 5], 32)
    assert np.array_equal(a[0], b[1]) and np.array_equal(a[2], b[0])
    other, _ = shapes.render_labelled(4, [5], 32)
    assert not np.array_equal(a[0], other[0])


def test_every_class_is_a_single_sized_shape_inside_the_frame():
    images, labels = shapes.render_labelled(0, range(16 * 4), 32)
    ink = images[..., 0].astype(np.float64) / 255
    area = ink.mean(axis=(1, 2))
    assert area.min() > 0.03 and area.max() < 0.6, (area.min(), area.max())
    border = np.concatenate([ink[:, 0], ink[:, -1], ink[:, :, 0], ink[:, :, -1]], axis=1)
    assert border.max(axis=1).mean() < 0.25  # shapes are placed inside, not cut by the frame
    within = [ink[labels == c].reshape(4, -1) for c in range(16)]
    assert all(np.abs(w[0] - w[1]).mean() > 0.01 for w in within)  # variation inside each class


def test_the_shapes_load_as_a_labelled_dataset_and_through_the_data_flag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert data_flag("shapes") == {"path": None, "builtin": "shapes"}
    (tmp_path / "shapes").mkdir()  # a folder of that name is the user's folder, not the built-in set
    assert data_flag("shapes") == {"path": "shapes"}
    config = build_config(None, ["data.builtin='shapes'", "data.count=40"])
    dataset = build_dataset(config.data)
    assert dataset.classes == shapes.CLASSES and len(dataset) == 40
    images, labels, classes = first_labelled(config.data, 20)
    assert images.shape == (20, 32, 32, 1) and np.array_equal(labels, np.arange(20) % 16)
    unlabelled = build_config(None, ["data.builtin='shapes'", "data.labels='none'", "data.count=16"])
    assert build_dataset(unlabelled.data).classes == ()


@pytest.mark.parametrize("bad, message", [("data.builtin='circles'", "data.builtin must be one of"),
                                          ("data.style='rendered'", "silhouettes only")])
def test_bad_builtin_settings_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        build_config(None, ["data.builtin='shapes'", bad])


def test_the_packaged_judge_reads_fresh_shapes_by_their_class():
    """Refit with benchmarks/shapes_judge.py when data/shapes.py changes: this fails when the judge is stale."""
    judge = load_judge()
    assert judge.classes == shapes.CLASSES
    images, labels = shapes.render_labelled(7, range(16 * 12), 32)  # a seed neither fitted on nor tested on
    accuracy = per_class_accuracy(judge.predict(to_model_range(images)), labels, 16)
    assert accuracy.mean() >= 0.95 and accuracy.min() >= 0.75, dict(zip(shapes.CLASSES, accuracy.round(2), strict=True))
    assert min(judge.real_accuracy) >= 0.75
    # mirrored samples are read the same way (runs flip their training images)
    mirrored = per_class_accuracy(judge.predict(to_model_range(images).flip(-1)), labels, 16)
    assert mirrored.mean() >= 0.95


def test_per_class_accuracy_counts_hits_of_each_asked_class():
    asked = np.array([0, 0, 1, 1, 1, 2])
    read = np.array([0, 1, 1, 1, 0, 0])
    assert np.allclose(per_class_accuracy(read, asked, 4)[:3], [0.5, 2 / 3, 0.0])
    assert np.isnan(per_class_accuracy(read, asked, 4)[3])


def test_the_judge_resizes_other_sizes_to_its_own():
    judge = load_judge()
    images, labels = shapes.render_labelled(8, range(32), 64)
    read = judge.predict(to_model_range(images))
    assert (read == labels).mean() >= 0.8
