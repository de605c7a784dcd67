"""The one family of errors a user can cause.

Every error that bad input can raise (a config key, a sweep file, a dataset, a law with too
few points, a tracker that is not installed, ...) derives from `ScalingError` and carries a
one-line message naming what is wrong. The command line prints that line and exits 2;
anything else that escapes a command is a bug and is printed with its traceback.
"""

from __future__ import annotations


class ScalingError(ValueError):
    """Bad input; the message says which and why, in one line."""
