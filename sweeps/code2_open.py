"""CODE-II-open data scaling: 1,000 exams to the whole 12k-patient training pool."""

from scaling.sweep import PROFILES, Sweep, log_spaced, seeded_sizes


def get_sweep() -> Sweep:
    sizes = [*log_spaced(1000, 8000, 4), 0]
    return Sweep(
        name="code2_open",
        experiment="code2_open",
        axes=(seeded_sizes(sizes, {3000: 3, 10_000: 2}),),
        profiles=PROFILES,
        profile="gpu_shared",
    )
