"""The demo experiment: a tiny ResNet-1D on synthetic CODE-layout data, 100 Hz × 1024 samples.

Small model and short signal so that a whole sweep runs in minutes on 2 CPU cores; every
code path (HDF5 reading, resampling, nested subsets, training, metrics) is the real one.
"""

from scaling.config import CODE15_CLASSES, DataConfig, EvalConfig, RunConfig, TrainConfig
from scaling.models import ladder_config


def get_config() -> RunConfig:
    return RunConfig(
        name="demo",
        data=DataConfig(
            kind="code",
            path="demo_out/data",  # `scaling demo` writes the data here and points at it
            classes=CODE15_CLASSES,
            source_rate=400.0,
            sample_rate=100.0,
            length=1024,
            val_fraction=0.15,
            test_fraction=0.25,
        ),
        model=ladder_config("tiny"),
        train=TrainConfig(
            batch_size=32,
            lr=3e-3,
            max_steps=400,
            eval_every=50,
            early_stopping=4,
            plateau_patience=2,
        ),
        eval=EvalConfig(bootstrap=200, batch_size=256),
    )
