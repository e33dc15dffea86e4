"""The training errors the command line catches, in a module light enough to import without the trainer."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite and training was told not to skip such steps."""
