"""Model ladder x data on CODE-15%: the joint (N, D) study behind a compute-optimal frontier.

The sweep varies the ladder rung (width, blocks per stage) and `subset_size`; the
parameter count N and FLOPs of every run are recorded in its result.
"""

from scaling.config import RunConfig, override
from scaling.sweep import load_experiment


def get_config() -> RunConfig:
    return override(load_experiment("code15"), {"name": "ladder", "max_epochs": 30})
