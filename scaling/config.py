"""Run configuration: frozen, typed dataclasses, overrides by key, and the run id.

A `RunConfig` fully describes one training run. Experiments build one in
`get_config()`; sweeps vary its fields by key. A key is either a dotted path
(`train.lr`) or a leaf name that is unique across the config (`subset_size`),
so the same name is used in sweeps, `--set` overrides and result tables.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from scaling.errors import ScalingError

CODE15_CLASSES = ("1dAVb", "RBBB", "LBBB", "SB", "AF", "ST")
LEADS_12 = ("DI", "DII", "DIII", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
LEADS_8 = ("DI", "DII", "V1", "V2", "V3", "V4", "V5", "V6")


class ConfigError(ScalingError):
    """A configuration key or value is wrong; the message names it."""


@dataclass(frozen=True)
class DataConfig:
    """Which exams a run sees and how their signals are prepared."""

    kind: str = "code"  # "code" (CODE family), "ptbxl" or "cpsc"
    path: str = ""  # dataset root (CODE: folder with exams.csv and exams_part*.hdf5)
    test_path: str = ""  # a separate test set in the same layout (e.g. CODE-II-test)
    classes: tuple[str, ...] = CODE15_CLASSES  # class columns / label names
    label_level: str = "superdiagnostic"  # PTB-XL label level
    ptbxl_records: int = 500  # PTB-XL: read records500/ (500) or records100/ (100)
    given_split: bool = True  # use a dataset's own split (PTB-XL folds) when it has one
    source_rate: float = 400.0  # CODE files carry no rate; PhysioNet headers do
    sample_rate: float = 400.0  # rate the model sees
    length: int = 4096  # samples the model sees (centred pad or crop)
    leads: tuple[str, ...] = LEADS_12
    highpass_hz: float = 0.0  # baseline-wander removal; 0 = off
    notch_hz: float = 0.0  # powerline notch; 0 = off
    scale: float = 1.0  # amplitude scaling applied after filtering
    val_fraction: float = 0.1  # of patients, when no fixed split is given
    test_fraction: float = 0.1
    split_seed: int = 0  # which patients go to val / test
    data_seed: int = 0  # permutation of the training pool (which patients)
    subset_size: int = 0  # training exams; 0 = the whole pool
    shots: int = 0  # few-shot: k positives per class; 0 = off
    nan_policy: str = "fail"  # "fail" or "exclude" exams with NaN/inf samples
    # What the data at `path` (and `test_path`) is: a hash of its content, filled in when
    # a sweep is planned. It stands for the paths in the run id, so moving data keeps ids.
    fingerprint: str = ""


@dataclass(frozen=True)
class ModelConfig:
    """The ResNet-1D of Ribeiro et al. (2020) and its size ladder."""

    stem_filters: int = 64
    filters: tuple[int, ...] = (128, 196, 256, 320)
    downsample: tuple[int, ...] = (4, 4, 4, 4)
    blocks_per_stage: int = 1
    kernel_size: int = 16
    width: float = 1.0  # multiplies every filter count
    dropout: float = 0.2


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the length of training."""

    optimizer: str = "adam"  # "adam" or "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "plateau"  # "plateau", "cosine" or "constant"
    warmup_steps: int = 0
    plateau_factor: float = 0.1
    plateau_patience: int = 3  # evaluations without improvement before LR × factor
    min_lr: float = 1e-7
    batch_size: int = 64
    max_epochs: int = 0  # 0 = no limit from epochs
    max_steps: int = 0  # 0 = no limit from steps
    eval_every: int = 0  # steps between evaluations; 0 = once per epoch
    early_stopping: int = 9  # evaluations without improvement before stopping; 0 = off
    early_stopping_metric: str = "val_loss"  # or "val_macro_auroc"
    checkpoint_every: int = 0  # steps; 0 = at every evaluation
    init_seed: int = 0  # weights, dropout and batch order
    class_weighting: bool = False
    dtype: str = "float32"  # compute dtype: "float32" or "bfloat16"
    fail_at_step: int = -1  # fault injection for tests: raise at this step


@dataclass(frozen=True)
class EvalConfig:
    """How a finished run is scored."""

    thresholds: str = "val"  # "val": chosen on validation; "f1": on the data scored
    bootstrap: int = 1000  # resamples for 95% CIs; 0 = no CIs
    bootstrap_seed: int = 0
    batch_size: int = 256


@dataclass(frozen=True)
class TransferConfig:
    """Start from a finished run's weights and train on another dataset."""

    mode: str = "none"  # "none", "finetune", "linear_probe" or "scratch"
    # The pretrained run: its run dir (absolute, or `<sweep>/<run_id>` in the same store), or
    # a selector `<sweep>:key=value,...` matching exactly one finished run of that sweep.
    pretrained: str = ""


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)


# ---------------------------------------------------------------------------
# Keys: dotted paths and unique leaf names


def _paths(cls: type, prefix: str = "") -> dict[str, type]:
    """Every leaf field of a config dataclass as dotted path -> type."""
    hints = typing.get_type_hints(cls)
    out: dict[str, type] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            out.update(_paths(tp, path + "."))
        else:
            out[path] = tp
    return out


LEAF_TYPES: dict[str, type] = _paths(RunConfig)


def _leaf_index() -> dict[str, str]:
    by_leaf: dict[str, list[str]] = {}
    for path in LEAF_TYPES:
        by_leaf.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    return {leaf: paths[0] for leaf, paths in by_leaf.items() if len(paths) == 1}


_UNIQUE_LEAVES = _leaf_index()


def resolve_key(key: str) -> str:
    """The dotted path for a key; an unknown key names the closest valid one."""
    if key in LEAF_TYPES:
        return key
    if key in _UNIQUE_LEAVES:
        return _UNIQUE_LEAVES[key]
    candidates = list(LEAF_TYPES) + list(_UNIQUE_LEAVES)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"unknown config key '{key}'{hint}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a value (possibly a string from the command line) to a field's type."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, *_) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' expects a list, got {value!r}")
        return tuple(_coerce(v, item_tp, key) for v in value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"config key '{key}' has an unsupported union type")
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if isinstance(value, str):
                return int(float(value)) if float(value).is_integer() else int(value)
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config key '{key}' expects {tp.__name__}, got {value!r}") from e
    raise ConfigError(f"config key '{key}' has unsupported type {tp}")


DATASET_KINDS: dict[str, str] = {
    "code": "scaling.data.code",  # CODE-II, CODE-15%: exams.csv + exams_part*.hdf5
    "ptbxl": "scaling.data.ptbxl",  # PTB-XL: ptbxl_database.csv + WFDB records
    "cpsc": "scaling.data.cpsc",  # CPSC 2018, Challenge 2020/2021: .mat + .hea
}
"""Each `data.kind` and the module that reads it (the contract: `scaling/data/kinds.py`)."""

CHOICES: dict[str, Collection[Any]] = {
    "data.kind": DATASET_KINDS.keys(),
    "data.label_level": ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all"),
    "data.ptbxl_records": (500, 100),
    "data.nan_policy": ("fail", "exclude"),
    "train.optimizer": ("adam", "adamw"),
    "train.schedule": ("plateau", "cosine", "constant"),
    "train.early_stopping_metric": ("val_loss", "val_macro_auroc"),
    "train.dtype": ("float32", "bfloat16"),
    "eval.thresholds": ("val", "f1"),
    "transfer.mode": ("none", "finetune", "linear_probe", "scratch"),
}
"""The values a field with a closed set of values may take (PTB-XL's levels: `ptbxl.LEVELS`)."""


def validate(cfg: RunConfig) -> RunConfig:
    """`cfg` itself, or a `ConfigError` naming the first field with a value it cannot take."""
    for path, allowed in CHOICES.items():
        if (value := get_value(cfg, path)) not in allowed:
            raise ConfigError(
                f"config key '{path}' must be one of {', '.join(map(str, allowed))}; got {value!r}"
            )
    check_model(cfg.model)
    return cfg


def check_model(cfg: ModelConfig) -> None:
    """A `ConfigError` naming the first field of `cfg` out of range."""
    if len(cfg.filters) != len(cfg.downsample):
        raise ConfigError(
            f"ModelConfig.filters {cfg.filters} and ModelConfig.downsample {cfg.downsample} "
            "must have the same length (one entry per stage)"
        )
    checks = (
        ("stem_filters", cfg.stem_filters >= 1),
        ("filters", len(cfg.filters) >= 1 and min(cfg.filters) >= 1),
        ("downsample", len(cfg.downsample) >= 1 and min(cfg.downsample) >= 1),
        ("blocks_per_stage", cfg.blocks_per_stage >= 1),
        ("kernel_size", cfg.kernel_size >= 1),
        ("width", cfg.width > 0),
        ("dropout", 0.0 <= cfg.dropout < 1.0),
    )
    for field_name, ok in checks:
        if not ok:
            raise ConfigError(
                f"ModelConfig.{field_name} = {getattr(cfg, field_name)!r} is out of range "
                "(filters, downsample, blocks and kernel >= 1, width > 0, 0 <= dropout < 1)"
            )


def get_value(cfg: RunConfig, key: str) -> Any:
    obj: Any = cfg
    for part in resolve_key(key).split("."):
        obj = getattr(obj, part)
    return obj


def matches(cfg: RunConfig, wanted: dict[str, str]) -> bool:
    """Whether `cfg` has each wanted value (given as strings, compared after coercion)."""
    return all(get_value(cfg, k) == get_value(override(cfg, {k: v}), k) for k, v in wanted.items())


def override(cfg: RunConfig, updates: dict[str, Any]) -> RunConfig:
    """A copy of `cfg` with `updates` (keys as in `resolve_key`) applied and type-checked."""
    nested: dict[str, Any] = {}
    for key, value in updates.items():
        path = resolve_key(key)
        value = _coerce(value, LEAF_TYPES[path], key)
        node = nested
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return validate(_replace_nested(cfg, nested))


def _replace_nested(obj: Any, nested: dict[str, Any]) -> Any:
    changes = {}
    for name, value in nested.items():
        if isinstance(value, dict):
            changes[name] = _replace_nested(getattr(obj, name), value)
        else:
            changes[name] = value
    return dataclasses.replace(obj, **changes)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """Parse `key=value` strings from the command line."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


# ---------------------------------------------------------------------------
# Serialisation and identity


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: dict[str, Any]) -> RunConfig:
    """Rebuild a config from `to_dict` output; unknown keys are an error."""
    flat = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for k, v in node.items():
            path = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(v, path + ".")
            else:
                if path not in LEAF_TYPES:
                    resolve_key(path)  # raises with a suggestion
                flat[path] = v

    walk(d, "")
    return override(RunConfig(), flat)


def flatten(cfg: RunConfig) -> dict[str, Any]:
    """Leaf name -> value, for result tables (dotted path where a leaf name repeats)."""
    leaf_of = {path: leaf for leaf, path in _UNIQUE_LEAVES.items()}
    out = {}
    for path in LEAF_TYPES:
        value = get_value(cfg, path)
        out[leaf_of.get(path, path)] = list(value) if isinstance(value, tuple) else value
    return out


FROM_PRETRAINED = ("finetune", "linear_probe")  # transfer modes that start from a run's weights


def check_transfer(cfg: RunConfig) -> None:
    """A `ConfigError` for a transfer mode that starts from weights but names no run."""
    if cfg.transfer.mode in FROM_PRETRAINED and not cfg.transfer.pretrained:
        raise ConfigError(
            f"transfer.mode '{cfg.transfer.mode}' starts from a pretrained run: set "
            "transfer.pretrained (its run dir, or <sweep>:key=value,... for one finished run)"
        )


def canonical(cfg: RunConfig) -> RunConfig:
    """The config with fields that cannot matter cleared, so equal runs hash equally."""
    if cfg.transfer.mode not in FROM_PRETRAINED and cfg.transfer.pretrained:
        return dataclasses.replace(cfg, transfer=dataclasses.replace(cfg.transfer, pretrained=""))
    return cfg


PATH_KEYS = ("data.path", "data.test_path")
"""Fields naming where data lives: resolved against the working directory by the CLI, and
left out of the run id once `data.fingerprint` says what the data is."""


def identity(cfg: RunConfig) -> dict[str, Any]:
    """The fields of the canonical config that differ from the defaults, by dotted path.

    Hashing only these keeps every existing run id when a new field is added with a
    default; changing a default is then a change of meaning the code version records.
    The dataset enters by its content fingerprint, not by its paths, when it has one.
    """
    cfg, default = canonical(cfg), RunConfig()
    skip = PATH_KEYS if cfg.data.fingerprint else ()
    return {
        path: list(v) if isinstance(v, tuple) else v
        for path in LEAF_TYPES
        if path not in skip and (v := get_value(cfg, path)) != get_value(default, path)
    }


def run_id(cfg: RunConfig) -> str:
    """Content hash of the resolved config (its non-default fields): the run's identity."""
    blob = json.dumps(identity(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
