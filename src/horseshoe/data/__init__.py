"""Training data: the built-in procedural horseshoes and any folder of images."""

from horseshoe.data.dataset import DataConfig, Horseshoes, build_dataset
from horseshoe.data.folder import ImageFolder, find_images
from horseshoe.data.loader import BatchLoader

__all__ = ["DataConfig", "Horseshoes", "ImageFolder", "BatchLoader", "build_dataset", "find_images"]
