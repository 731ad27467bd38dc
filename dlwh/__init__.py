"""dlwh: the deep-learning energy warehouse."""

__version__ = "0.1.0"
