"""The launcher's one error type."""
from __future__ import annotations


class ClusterError(Exception):
    """A bad input or an unusable environment, with a message for the user (the command line
    prints ``error: <message>`` and exits with status 2, no traceback)."""
