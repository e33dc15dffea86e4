"""Training data: the built-in procedural horseshoes and any folder of images."""

from horseshoe.data.config import DataConfig
from horseshoe.data.dataset import (
    Horseshoes,
    build_dataset,
    builtin_images,
    first_images,
    subset_images,
    training_images,
)
from horseshoe.data.folder import ImageFolder, find_images
from horseshoe.data.loader import BatchLoader

__all__ = ["DataConfig", "Horseshoes", "ImageFolder", "BatchLoader", "build_dataset", "find_images",
           "first_images", "builtin_images", "subset_images", "training_images"]
