"""What training chooses from the data for the settings left to auto: the classes and their recipe, how
uneven classes are drawn, and whether small folders are augmented. Each resolves a Config (horseshoe.config)
into the values the run is trained and saved with, and says in one line which and why.
"""

from __future__ import annotations

from horseshoe.config import Config, merge
from horseshoe.data.augment import AUGMENT_DIM


def with_classes(config: Config, classes: tuple[str, ...]) -> Config:
    """The config for data with these classes: model.num_classes and data.classes set from them.

    Classes the config already names must be the data's; a model with classes needs data with them.
    """
    d, m = config.data, config.model
    if not classes:
        if m.num_classes or d.classes or d.balance_classes:
            what = "data.balance_classes is set" if not (m.num_classes or d.classes) else \
                f"model.num_classes is {m.num_classes}"
            raise ValueError(f"{what} but the data has no classes (data.labels is {d.labels!r}; class folders "
                             f"or data.rotation='four' give classes)")
        return config
    if d.classes and d.classes != classes:
        raise ValueError(f"data.classes is {list(d.classes)} but the data's classes are {list(classes)}")
    if m.num_classes and m.num_classes != len(classes):
        raise ValueError(f"model.num_classes is {m.num_classes} but the data has {len(classes)} classes "
                         f"({', '.join(classes)})")
    return merge(config, {"model": {"num_classes": len(classes)}, "data": {"classes": list(classes)}})


# The class recipe for a few classes (the four-direction horseshoes: the "no class" output near an
# unconditional run's) and for more (each class's own samples first).
FEW_CLASSES = 4
CLASS_RECIPES = {"few": {"label_dropout": 0.5, "class_embed_std": 0.3},
                 "many": {"label_dropout": 0.1, "class_embed_std": 1.0}}


def with_class_recipe(config: Config) -> tuple[Config, str]:
    """The config with train.label_dropout and model.class_embed_std resolved where None (auto) from the number of
    classes (model.num_classes, set by with_classes), and one line saying which ('' without classes)."""
    classes = config.model.num_classes
    if not classes:
        return config, ""
    kind = "few" if classes <= FEW_CLASSES else "many"
    recipe = CLASS_RECIPES[kind]
    dropout = config.train.label_dropout
    std = config.model.class_embed_std
    auto = [name for name, value in (("train.label_dropout", dropout), ("model.class_embed_std", std))
            if value is None]
    dropout = recipe["label_dropout"] if dropout is None else dropout
    std = recipe["class_embed_std"] if std is None else std
    why = (f"auto for {classes} classes, {'at most' if kind == 'few' else 'more than'} {FEW_CLASSES}: "
           f"{' and '.join(auto)}" if auto else "as set")
    line = f"class recipe: label dropout {dropout:g}, class rows N(0, {std:g}^2) ({why})"
    return merge(config, {"train": {"label_dropout": dropout}, "model": {"class_embed_std": std}}), line


# Auto balance: draw every class equally often once the largest class has this many times the smallest's
# images; below it the classes are drawn as they come (near-even classes gain nothing from repeating images).
UNEVEN_CLASSES = 2.0


def with_balance(config: Config, counts: dict[str, int | None]) -> tuple[Config, str]:
    """The config with data.balance_classes resolved (None: auto) and one line saying how classes are drawn and
    why ('' without classes). counts: images per class (None for the endless stream, always even)."""
    d = config.data
    if not counts:
        return config, ""
    sizes = [n for n in counts.values() if n is not None]
    if not sizes:
        return merge(config, {"data": {"balance_classes": bool(d.balance_classes)}}), \
            f"classes: {len(counts)}, drawn evenly by the built-in stream"
    low, high = min(sizes), max(sizes)
    spread = f"{low} images each" if low == high else f"{low} to {high} images"
    if d.balance_classes is None:
        on = high >= UNEVEN_CLASSES * low
        why = (f"auto: the largest class has {high / low:.1f}x the smallest's images, "
               f"{'at least' if on else 'under'} {UNEVEN_CLASSES:g}x")
    else:
        on, why = d.balance_classes, f"data.balance_classes = {str(d.balance_classes).lower()}"
    how = "drawn evenly, the smaller classes' images repeated" if on else "drawn in proportion to their images"
    return merge(config, {"data": {"balance_classes": on}}), f"classes: {len(counts)} ({spread}), {how} ({why})"


# EDM uses 0.12 (Karras et al. 2022, App. C.4). With the edge repeated (data.augment_border), 0.25 kept 20
# silhouettes at 3-4% near-copies in ten minutes where 0.2 reached 8% (docs/measurements/tiny-data.md)
AUTO_AUGMENT_P = 0.25
# Auto augmentation: on for folders of fewer images than this. 20 silhouettes are learned by heart in ten
# minutes without it (86-92% near-copies); 100 are not (2%), where it only cost (SWD 41-51 against 17-21), and
# 320 in 16 classes trained the slow machine's 15 minutes kept 0% near-copies without it at the same judged
# accuracy (docs/measurements/tiny-data.md, many-classes.md). It was 1,000 before those measurements.
SMALL_FOLDER = 100


def with_augmentation(config: Config, images: int | None) -> tuple[Config, str]:
    """The config with data.augment_p resolved and model.augment_dim to match, and one line saying which and why.

    data.augment_p None (auto) is AUTO_AUGMENT_P for a folder of fewer than SMALL_FOLDER images
    (`images`; None for the endless stream), else 0. Augmentation on gives the network its input
    (model.augment_dim = AUGMENT_DIM); a network that has one keeps it when augmentation is off (a
    resume with data.augment_p=0), and is then told "no augmentation".
    """
    d = config.data
    p = d.augment_p
    folder = d.path is not None or d.is_builtin_shapes  # the built-in shapes stand for a user's folder
    what = f"a folder of {images:,} images" if d.path is not None else f"{images:,} built-in shapes" if images else ""
    if p is not None:
        why = f"data.augment_p = {p:g}"
    elif folder and images is not None and images < SMALL_FOLDER:
        p, why = AUTO_AUGMENT_P, f"auto: {what}, fewer than {SMALL_FOLDER:,}"
    else:
        p = 0.0
        why = ("auto: the built-in horseshoes" if not folder else
               "auto: an endless stream" if images is None else f"auto: {what}, {SMALL_FOLDER:,} or more")
    on = bool(p and d.augment)
    if on:
        line = (f"augmentation: on, each of {', '.join(d.augment)} with probability {p:g}, the network told which "
                f"({why})")
    elif p:
        line = "augmentation: off (data.augment lists no transform)"
    else:
        line = f"augmentation: off ({why}; --set data.augment_p={AUTO_AUGMENT_P} turns it on)"
    dim = AUGMENT_DIM if on else config.model.augment_dim
    return merge(config, {"data": {"augment_p": p}, "model": {"augment_dim": dim}}), line
