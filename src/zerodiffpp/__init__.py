"""ZeroDiff / ZeroDiff++ for (generalized) zero-shot learning, as a DVC benchmark pipeline."""

__version__ = "0.1.0"
