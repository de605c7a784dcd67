"""Model ladder x data on CODE-15% for the joint law y = E + A N^-alpha + B D^-beta."""

from scaling.models import LADDER
from scaling.sweep import PROFILES, Sweep, log_spaced

RUNGS = ("xxs", "xs", "s", "m", "ribeiro", "l")


def get_sweep() -> Sweep:
    rungs = [{"width": 1.0, "blocks_per_stage": 1, **LADDER[name]} for name in RUNGS]
    return Sweep(
        name="ladder",
        experiment="ladder",
        axes=(
            {key: [r[key] for r in rungs] for key in ("width", "blocks_per_stage")},
            {"subset_size": log_spaced(3000, 300_000, 5)},
        ),
        profiles=PROFILES,
        profile="gpu8",
    )
