"""CODE-II data scaling (66 classes): 1,000 exams to the whole pool (about 2.7M exams)."""

from scaling.sweep import PROFILES, Sweep, log_spaced, seeded_sizes


def get_sweep() -> Sweep:
    sizes = [*log_spaced(1000, 1_000_000, 7), 0]
    return Sweep(
        name="code2",
        experiment="code2",
        axes=(seeded_sizes(sizes, {10_000: 3, 100_000: 2}),),
        profiles=PROFILES,
        profile="gpu8",
    )
