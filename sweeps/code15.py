"""CODE-15% data scaling: subset_size log-spaced from 1,000 exams to the whole pool.

Three seeds up to 10k exams, two up to 100k, one above (0 = the whole training pool).
"""

from scaling.sweep import PROFILES, Sweep, log_spaced, seeded_sizes


def get_sweep() -> Sweep:
    sizes = [*log_spaced(1000, 300_000, 6), 0]
    return Sweep(
        name="code15",
        experiment="code15",
        axes=(seeded_sizes(sizes, {10_000: 3, 100_000: 2}),),
        profiles=PROFILES,
        profile="gpu8",
    )
