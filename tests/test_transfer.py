"""Transfer from a tiny CODE-pretrained run onto the real PTB-XL and CPSC samples."""

import numpy as np
import pytest
from conftest import tiny_config
from etils import epath

from scaling import store
from scaling.checkpoint import read_arrays
from scaling.config import override, run_id
from scaling.data.cpsc import CPSC_CLASSES
from scaling.train import train_and_evaluate
from scaling.transfer import TransferError, resolve_pretrained

pytestmark = pytest.mark.slow

SIGNAL = {"sample_rate": 400.0, "length": 1024}  # 2.56 s windows, both pretraining and target


@pytest.fixture(scope="module")
def pretrained(code_data, tmp_path_factory):
    """A store with two finished pretraining runs (sweep "pre", subset sizes 80 and 240)."""
    root = tmp_path_factory.mktemp("transfer_store")
    for size in (80, 240):
        cfg = tiny_config(code_data, subset_size=size, **SIGNAL)
        train_and_evaluate(cfg, root / "pre" / run_id(cfg))
    return root


def target(shared_data, kind, **overrides):
    base = tiny_config("", **SIGNAL)
    data = {
        "cpsc": {
            "kind": "cpsc",
            "data.path": str(shared_data / "cpsc_sample" / "records"),
            "classes": ",".join(CPSC_CLASSES),
            "val_fraction": 0.25,
            "test_fraction": 0.3,
        },
        "ptbxl": {
            "kind": "ptbxl",
            "data.path": str(shared_data / "ptbxl_sample"),
            "ptbxl_records": 100,
            "given_split": False,
            "classes": "NORM,MI,STTC,CD,HYP",
            "val_fraction": 0.2,
            "test_fraction": 0.3,
        },
    }[kind]
    return override(base, {**data, "pretrained": "pre:subset_size=240", **overrides})


def run(root, cfg):
    path = root / "transfer" / run_id(cfg)
    return path, train_and_evaluate(cfg, path)


@pytest.mark.parametrize("kind", ["cpsc", "ptbxl"])
def test_finetune_onto_real_samples(pretrained, shared_data, kind):
    cfg = target(shared_data, kind, mode="finetune")
    path, result = run(pretrained, cfg)
    assert result["status"] == "finished"
    assert set(result["n_pos"]["test"]) == set(cfg.data.classes)
    assert result["n_exams"]["test"] > 10
    macro = result["metrics"]["test"]["macro"]["auroc"]
    assert macro is None or 0.0 <= macro <= 1.0
    pre_dir = resolve_pretrained("pre:subset_size=240", epath.Path(pretrained))
    assert np.allclose(_stem_kernel(path), _stem_kernel(pre_dir)) is False  # fine-tuned


def test_linear_probe_trains_only_the_head(pretrained, shared_data):
    path, result = run(pretrained, target(shared_data, "cpsc", mode="linear_probe"))
    assert result["status"] == "finished"
    keys = read_arrays(epath.Path(path) / "ckpt")
    names = {part for part in ("head", "stem", "blocks") for key in keys if f"['{part}']" in key}
    assert names == {"head"}  # the backbone is frozen: its weights are not even in the state


def test_scratch_ignores_the_pretrained_run(pretrained, shared_data):
    a = target(shared_data, "cpsc", mode="scratch")
    b = target(shared_data, "cpsc", mode="scratch", pretrained="pre:subset_size=80")
    from scaling.config import canonical

    assert run_id(canonical(a)) == run_id(canonical(b))
    _, scratch = run(pretrained, canonical(a))
    _, tuned = run(pretrained, target(shared_data, "cpsc", mode="finetune"))
    assert scratch["metrics"]["test"]["micro"] != tuned["metrics"]["test"]["micro"]


def test_few_shot_subset_on_cpsc(pretrained, shared_data):
    _, result = run(pretrained, target(shared_data, "cpsc", mode="finetune", shots=2))
    assert result["train_exams"] <= 2 * len(CPSC_CLASSES)
    assert result["train_exams"] >= 2


def test_pretrained_selector_errors(pretrained, shared_data):
    with pytest.raises(TransferError, match="matches 2 finished runs"):
        resolve_pretrained("pre:init_seed=0", epath.Path(pretrained))
    with pytest.raises(TransferError, match="matches 0 finished runs"):
        resolve_pretrained("pre:subset_size=7", epath.Path(pretrained))
    cfg = target(shared_data, "cpsc", mode="finetune", length=512)
    with pytest.raises(TransferError, match="1024 samples"):
        run(pretrained, cfg)
    assert store.run_status(epath.Path(pretrained / "transfer" / run_id(cfg))) == store.FAILED


def _stem_kernel(run_dir) -> np.ndarray:
    arrays = read_arrays(epath.Path(run_dir) / "ckpt")
    return arrays["['params']['stem']['kernel'].value"]
