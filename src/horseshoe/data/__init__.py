"""Training data: the built-in procedural horseshoes and shapes, and any folder of images."""

from horseshoe.data.config import DataConfig
from horseshoe.data.dataset import (
    Horseshoes,
    ImageSet,
    Shapes,
    build_dataset,
    builtin_images,
    builtin_set,
    class_counts,
    first_images,
    first_labelled,
    load_like_training,
    subset,
    subset_images,
    training_images,
    training_set,
)
from horseshoe.data.folder import ImageFolder, find_classes, find_images
from horseshoe.data.loader import BatchLoader

__all__ = ["DataConfig", "Horseshoes", "Shapes",
           "ImageFolder", "ImageSet", "BatchLoader", "build_dataset", "class_counts",
           "find_classes", "find_images", "first_images", "load_like_training", "first_labelled", "builtin_images",
           "builtin_set", "subset", "subset_images", "training_images", "training_set"]
