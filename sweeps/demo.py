"""Demo sweep: 5 nested, log-spaced subset sizes × 2 seeds of the demo experiment."""

from scaling.sweep import Resources, Sweep


def get_sweep() -> Sweep:
    return Sweep(
        name="demo",
        experiment="demo",
        axes=(
            {"subset_size": [60, 150, 350, 800, 1700]},
            {"data_seed": [0, 1], "init_seed": [0, 1]},  # zipped: two seeds
        ),
        profiles={"cpu": Resources(num_cpus=1)},
        profile="cpu",
    )
