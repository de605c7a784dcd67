"""Sweeps and experiments: loading them by name and expanding a sweep into run configs.

An experiment file (`experiments/<name>.py`) exports `get_config() -> RunConfig`.
A sweep file (`sweeps/<name>.py`) exports `get_sweep() -> Sweep`: which experiment,
which axes (the product of axes; keys inside one axis are zipped), and the
resources per run under named profiles (e.g. "cpu", "gpu8", "tpu").
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from scaling.config import (
    PATH_KEYS,
    ConfigError,
    RunConfig,
    canonical,
    check_transfer,
    get_value,
    override,
    resolve_key,
    run_id,
)
from scaling.errors import ScalingError
from scaling.store import absolute
from scaling.tuning import TuningError, check_halving, parse_select, points

REPO_ROOT = Path(__file__).resolve().parents[1]


class SweepError(ScalingError):
    """A sweep or experiment file is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class Resources:
    """What one run asks of Ray."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0  # fractional shares one GPU between runs
    memory_fraction: float = 0.0  # of one accelerator's memory per run; 0 = JAX default
    custom: dict[str, float] = field(default_factory=dict)  # e.g. {"TPU": 4}


PROFILES = {
    "cpu": Resources(num_cpus=2),  # one CPU machine, a few runs side by side
    "gpu8": Resources(num_cpus=4, num_gpus=1.0),  # an 8-GPU node: one run per GPU
    "gpu_shared": Resources(num_cpus=2, num_gpus=0.25, memory_fraction=0.22),  # 4 small runs/GPU
    "tpu": Resources(num_cpus=8, custom={"TPU": 4}),  # a TPU VM host (v4-8: 4 chips)
}
"""Resource profiles for one CPU machine, one 8-GPU node and a TPU VM, selectable by name."""


@dataclass(frozen=True)
class Sweep:
    name: str
    experiment: str  # experiments/<experiment>.py
    axes: tuple[dict[str, list[Any]], ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)  # overrides applied to every run
    profiles: dict[str, Resources] = field(default_factory=lambda: {"cpu": Resources()})
    profile: str = "cpu"
    max_retries: int = 2  # retries after a worker crash (process killed, node lost)
    tune: dict[str, list[Any]] = field(default_factory=dict)  # tuned fields -> their values
    tune_samples: int = 0  # 0: the whole tuning grid; n: a seeded random sample of n points
    tune_seed: int = 0
    select: str = "val_loss"  # the validation metric that picks the winning tuning point
    tune_at: tuple[int, ...] = ()  # tune only at these subset sizes; interpolate the others
    halving: int = 0  # successive halving: keep 1/halving of the tuning points per rung; 0 off

    @property
    def resources(self) -> Resources:
        if self.profile not in self.profiles:
            raise SweepError(
                f"sweep '{self.name}' has no resource profile '{self.profile}'; "
                f"it has {', '.join(self.profiles)}"
            )
        return self.profiles[self.profile]


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    config: RunConfig
    point: dict[str, Any]  # the axis values of this run


def find_file(kind: str, name: str) -> Path:
    """`experiments/<name>.py` or `sweeps/<name>.py` by name, or a path to a .py file."""
    direct = Path(name)
    if direct.suffix == ".py":
        if not direct.exists():
            raise SweepError(f"no such {kind} file: {direct}")
        return direct
    for root in (Path.cwd(), REPO_ROOT):
        candidate = root / kind / f"{name}.py"
        if candidate.exists():
            return candidate
    available = sorted(p.stem for p in (REPO_ROOT / kind).glob("*.py") if p.stem != "__init__")
    raise SweepError(f"no {kind} named '{name}'; available: {', '.join(available)}")


def _import(path: Path, export: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"_scaling_{path.parent.name}_{path.stem}", path)
    assert spec and spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise SweepError(f"{path}:{e.lineno}: syntax error: {e.msg}") from e
    except Exception as e:
        where = traceback.extract_tb(e.__traceback__)[-1]
        raise SweepError(
            f"{path}: {type(e).__name__} while loading (line {where.lineno}): {e}"
        ) from e
    fn = getattr(module, export, None)
    if not callable(fn):
        raise SweepError(f"{path} does not define {export}()")
    try:
        return fn()
    except (ConfigError, SweepError) as e:
        raise SweepError(f"{path}: {e}") from e


def _load(kind: str, name: str, export: str, expected: type) -> Any:
    path = find_file(kind, name)
    value = _import(path, export)
    if not isinstance(value, expected):
        raise SweepError(
            f"{path}: {export}() returned {type(value).__name__}, not {expected.__name__}"
        )
    return value


def load_experiment(name: str) -> RunConfig:
    """`get_config()` of `experiments/<name>.py` (or of a path to such a file)."""
    return _load("experiments", name, "get_config", RunConfig)


def load_sweep(name: str) -> Sweep:
    """`get_sweep()` of `sweeps/<name>.py` (or of a path to such a file)."""
    return _load("sweeps", name, "get_sweep", Sweep)


def _points(sweep: Sweep) -> list[dict[str, Any]]:
    """The product over axes of the zipped values inside each axis."""
    per_axis = []
    for axis in sweep.axes:
        if not axis:
            raise SweepError(f"sweep '{sweep.name}' has an empty axis")
        lengths = {key: len(values) for key, values in axis.items()}
        for key, n in lengths.items():
            if n == 0:
                raise SweepError(f"sweep '{sweep.name}': axis '{key}' has no values")
        if len(set(lengths.values())) > 1:
            raise SweepError(f"sweep '{sweep.name}': zipped keys need equal lengths, got {lengths}")
        keys = list(axis)
        per_axis.append(
            [dict(zip(keys, vals, strict=True)) for vals in zip(*axis.values(), strict=True)]
        )
    return [
        {k: v for part in combo for k, v in part.items()} for combo in itertools.product(*per_axis)
    ]


def expand(
    sweep: Sweep,
    overrides: dict[str, Any] | None = None,
    base: RunConfig | None = None,
    *,
    cwd: Path | None = None,
    interpolated: dict[int, dict[str, Any]] | None = None,
) -> list[PlannedRun]:
    """Resolved configs of every run, in axis order, each with its run id (duplicates dropped).

    Data paths are made absolute against `cwd` (default: this process's working directory)
    and each dataset's content fingerprint enters the run id in place of its path. With
    `tune_at`, sizes outside it are planned only given their `interpolated` tuned values.
    """
    overrides = overrides or {}
    fingerprints: dict[str, str] = {}
    try:
        tuned = tuning_points(sweep)
        axis_keys = {resolve_key(k) for axis in sweep.axes for k in axis}
        tune_keys = set(tuned[0]) if sweep.tune else set()
        for key in overrides:
            if resolve_key(key) in axis_keys:
                raise SweepError(f"'{key}' is an axis of sweep '{sweep.name}'; it cannot be --set")
            if resolve_key(key) in tune_keys:
                raise SweepError(f"'{key}' is tuned by sweep '{sweep.name}'; it cannot be --set")
        for key in [*axis_keys, *map(resolve_key, sweep.fixed)]:
            if key in tune_keys:
                raise SweepError(
                    f"sweep '{sweep.name}': '{key}' is tuned; it cannot also be an axis or fixed"
                )
        cfg = base if base is not None else load_experiment(sweep.experiment)
        cfg = override(cfg, {**sweep.fixed, **overrides})
        planned, seen = [], set()
        for point in _with_tuning(sweep, cfg, tuned, interpolated):
            run_cfg = locate_data(override(cfg, point), cwd or Path.cwd(), fingerprints)
            run_cfg = canonical(run_cfg)
            check_transfer(run_cfg)
            rid = run_id(run_cfg)
            if rid not in seen:
                seen.add(rid)
                planned.append(PlannedRun(rid, run_cfg, point))
    except ConfigError as e:
        raise SweepError(f"sweep '{sweep.name}': {e}") from e
    _ = sweep.resources  # unknown profile fails here, before anything starts
    return planned


def _with_tuning(
    sweep: Sweep,
    cfg: RunConfig,
    tuned: list[dict[str, Any]],
    interpolated: dict[int, dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """The sweep's points crossed with its tuning points, innermost (every (size, seed) has
    its points side by side); sizes outside `tune_at` take their `interpolated` values."""
    points = _points(sweep)
    sizes = [override(cfg, p).data.subset_size for p in points]
    missing = set(sweep.tune_at) - set(sizes)
    if sweep.tune_at and (not sweep.tune or missing):
        raise SweepError(
            f"sweep '{sweep.name}': tune_at needs tune={{...}} and sizes of the sweep; "
            f"{sorted(missing)} are not among its subset sizes"
        )
    out = []
    for point, size in zip(points, sizes, strict=True):
        if not sweep.tune_at or size in sweep.tune_at:
            out += [{**point, **t} for t in tuned]
        elif interpolated is not None:
            out.append({**point, **interpolated[size]})
    return out


def untuned_sizes(sweep: Sweep, cfg: RunConfig | None = None) -> list[int]:
    """The subset sizes of a `tune_at` sweep whose tuned values are interpolated."""
    if not sweep.tune_at:
        return []
    cfg = cfg or RunConfig()
    sizes = {override(cfg, p).data.subset_size for p in _points(sweep)}
    return sorted(sizes - set(sweep.tune_at))


def tuning_points(sweep: Sweep) -> list[dict[str, Any]]:
    """The sweep's tuning points (dotted keys); one empty point for a sweep without tuning."""
    if not sweep.tune:
        for name in ("tune_samples", "halving"):
            if getattr(sweep, name):
                raise SweepError(f"sweep '{sweep.name}': {name} needs tune={{...}}")
        return [{}]
    try:
        check_halving(sweep.halving, parse_select(sweep.select))
        return points(sweep.tune, sweep.tune_samples, sweep.tune_seed)
    except TuningError as e:
        raise SweepError(f"sweep '{sweep.name}': {e}") from e


def locate_data(cfg: RunConfig, cwd: Path, cache: dict[str, str] | None = None) -> RunConfig:
    """`cfg` with its data paths absolute (against `cwd`) and its data fingerprint filled in.

    The fingerprint covers the dataset and the separate test set; it stays empty while the
    data is missing (a dry run before downloading), and the run id then uses the paths.
    """
    from scaling.data.fingerprint import fingerprint  # late: scaling.data imports h5py, pandas

    cache = {} if cache is None else cache
    updates = {key: absolute(value, cwd) for key in PATH_KEYS if (value := get_value(cfg, key))}
    prints = []
    for key in PATH_KEYS:
        if path := updates.get(key):
            if path not in cache:
                cache[path] = fingerprint(path)
            prints.append(cache[path])
    if all(prints) and prints:
        updates["data.fingerprint"] = "-".join(prints)
    return override(cfg, updates) if updates else cfg


def replace_axes(sweep: Sweep, values: dict[str, list[Any]]) -> Sweep:
    """A copy of `sweep` with the values of some axes replaced (a zipped axis: all its keys)."""
    if not values:
        return sweep
    wanted = {resolve_key(k): v for k, v in values.items()}
    axes = []
    for axis in sweep.axes:
        keys = {resolve_key(k) for k in axis}
        hits = {k: v for k, v in wanted.items() if k in keys}
        if hits and set(hits) != keys:
            raise SweepError(
                f"axis {list(axis)} of sweep '{sweep.name}' is zipped: give all of its keys"
            )
        axes.append(hits or axis)
        for k in hits:
            del wanted[k]
    if wanted:
        raise SweepError(f"'{next(iter(wanted))}' is not an axis of sweep '{sweep.name}'")
    return dataclasses.replace(sweep, axes=tuple(axes))


def seeded_sizes(sizes: list[int], seeds_for: dict[int, int]) -> dict[str, list[int]]:
    """A zipped axis of (subset_size, data_seed, init_seed): more seeds at small sizes.

    `seeds_for` maps an upper size bound to the number of seeds for sizes up to it;
    sizes above every bound (and 0, the whole pool) get one seed.
    """
    axis: dict[str, list[int]] = {"subset_size": [], "data_seed": [], "init_seed": []}
    for size in sizes:
        bounds = [b for b in sorted(seeds_for) if size and size <= b]
        for seed in range(seeds_for[bounds[0]] if bounds else 1):
            axis["subset_size"].append(size)
            axis["data_seed"].append(seed)
            axis["init_seed"].append(seed)
    return axis


def log_spaced(low: int, high: int, n: int) -> list[int]:
    """n integers spaced evenly in log between low and high (both included)."""
    if n < 2 or low <= 0 or high <= low:
        raise SweepError(f"log_spaced needs 0 < low < high and n >= 2, got {low}, {high}, {n}")
    step = (math.log(high) - math.log(low)) / (n - 1)
    return sorted({round(math.exp(math.log(low) + i * step)) for i in range(n)})
