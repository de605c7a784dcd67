"""Transfer to PTB-XL: a CODE-pretrained ResNet fine-tuned (or probed) on PTB-XL superclasses.

PTB-XL records (500 Hz) are resampled to 400 Hz and centred in 4096 samples, leads
matched by name; folds 1-8 train, 9 validation, 10 test. `transfer.pretrained` is the
run dir of a finished pretraining run, relative to the store (`<sweep>/<run_id>`) or
absolute. `shots=k` trains on k positives per class instead of the full training folds.
"""

from scaling.config import DataConfig, EvalConfig, RunConfig, TrainConfig, TransferConfig


def get_config() -> RunConfig:
    return RunConfig(
        name="transfer_ptbxl",
        data=DataConfig(
            kind="ptbxl",
            path="data/ptbxl",
            classes=(),
            label_level="superdiagnostic",
            sample_rate=400.0,
            length=4096,
        ),
        train=TrainConfig(
            batch_size=64,
            lr=1e-4,
            schedule="plateau",
            plateau_patience=5,
            early_stopping=8,
            max_epochs=30,
        ),
        eval=EvalConfig(bootstrap=1000),
        transfer=TransferConfig(mode="finetune"),
    )
