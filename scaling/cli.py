"""The `scaling` command: the only place that parses flags and the environment."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

from etils import epath

from scaling import store
from scaling.config import DATASET_KINDS, parse_overrides
from scaling.errors import ScalingError

EXIT_FAILED_RUNS = 1
EXIT_BAD_INPUT = 2
EXIT_BUG = 1  # as failed runs: the shared interface reserves 2 for user errors


class UsageError(ScalingError):
    """A command-line argument is wrong."""


# ---------------------------------------------------------------------------
# Helpers shared by commands


def writable_dir(path: str) -> Path:
    """Create `path` if needed and prove it is writable, or fail naming it."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to output directory '{out}': {e.strerror or e}") from e
    return out


def _absolute_paths(overrides: dict[str, str]) -> dict[str, str]:
    """`--set` values of path fields made absolute against the working directory."""
    from scaling.config import PATH_KEYS, resolve_key

    return {
        k: store.absolute(v) if v and resolve_key(k) in PATH_KEYS else v
        for k, v in overrides.items()
    }


def _resolve_paths(args: argparse.Namespace) -> None:
    """Every path the user gave, made absolute against the working directory, once, here:
    Orbax, Ray workers (another working directory) and cluster jobs see absolute paths."""
    for name in ("store", "out", "compile_cache", "path", "tracker_dir"):
        if value := getattr(args, name, None):
            setattr(args, name, store.absolute(value))
    for name in ("sweep", "experiment"):  # a name, or a path to a .py file
        if (value := getattr(args, name, None)) and value.endswith(".py"):
            setattr(args, name, store.absolute(value))


def _axes(items: list[str]) -> dict[str, list[str]]:
    """`--axis key=v1,v2,...` replaces that axis's values."""
    out = {}
    for key, value in parse_overrides(items).items():
        values = [v for v in value.split(",") if v]
        if not values:
            raise UsageError(f"--axis {key} has no values")
        out[key] = values
    return out


def _trackers(args: argparse.Namespace, store_path: str, *, here: bool = True):
    """The `--tracker` settings (packages checked here unless the run is elsewhere)."""
    from scaling.tracking import settings

    return settings(
        args.tracker or [], args.tracker_dir or store_path, os.environ, check_packages=here
    )


def _plan(args: argparse.Namespace):
    """The sweep named on the command line with its --profile, --axis and --set applied."""
    from dataclasses import replace

    from scaling.sweep import expand, load_sweep, replace_axes

    sweep = replace_axes(load_sweep(args.sweep), _axes(args.axis or []))
    if args.profile:
        sweep = replace(sweep, profile=args.profile)
    return sweep, expand(sweep, parse_overrides(args.set or []), cwd=Path.cwd())


# ---------------------------------------------------------------------------
# Commands


def cmd_sweep(args: argparse.Namespace) -> int:
    sweep, runs = _plan(args)
    if args.adaptive:
        return _adaptive(args, sweep, runs)
    if args.dry_run:
        extra = _interpolated_runs(args, sweep, runs, None)
        print(
            _dry_run(
                sweep, runs + extra, args.store, calibrate=args.calibrate,
                workers=args.max_concurrent,
            )
        )  # fmt: skip
        return 0
    trackers = _trackers(args, args.store)
    if not args.address:  # a cluster's data may not be visible here; its workers check it
        _check_data(runs, args.store, sweep.name)
    if sweep.tune:
        from scaling.sweep import tuning_points
        from scaling.tuning import write_record

        keys = list(tuning_points(sweep)[0])
        write_record(args.store, sweep.name, keys, [r.config for r in runs], sweep.select)
    ok = _run_tuned(args, sweep, runs, trackers)
    if ok and sweep.tune_at:  # the other sizes, once the tuned ones have their winners
        from scaling.tuning import add_interpolated

        extra = _interpolated_runs(args, sweep, runs, args.store)
        add_interpolated(
            args.store,
            sweep.name,
            {r.run_id: r.point | {"subset_size": r.config.data.subset_size} for r in extra},
        )
        ok = _run_stage(args, sweep, extra, trackers).ok
    return 0 if ok else EXIT_FAILED_RUNS


def _run_tuned(args: argparse.Namespace, sweep, runs, trackers) -> bool:
    """Run `runs`, by successive halving of the tuning points if the sweep asks for it."""
    if not sweep.halving:
        return _run_stage(args, sweep, runs, trackers).ok
    from scaling.halving import run_halving, savings

    def stage(planned, stop_at: float | None):
        if stop_at is not None:
            print(f"sweep {sweep.name}: successive halving, rung at {stop_at:.3g} of training")
        return _run_stage(args, sweep, planned, trackers, stop_at)

    ok = run_halving(sweep, runs, args.store, stage)
    pruned, spared, trained = savings(args.store, sweep.name, [r.run_id for r in runs])
    print(
        f"sweep {sweep.name}: successive halving pruned {pruned} of {len(runs)} tuning runs, "
        f"sparing {spared:,} training examples ({spared / max(1, spared + trained):.0%} of "
        f"the {spared + trained:,} the full tuning grid would train at most)"
    )
    return ok


def _interpolated_runs(args: argparse.Namespace, sweep, runs, store_path: str | None) -> list:
    """The runs of a `tune_at` sweep at the sizes it does not tune: with the winners of the
    tuned sizes interpolated in log-size (from `store_path`), else (a dry run, before
    tuning) with the first tuning point's values as stand-ins of the same cost."""
    from scaling.sweep import expand, tuning_points, untuned_sizes
    from scaling.tuning import interpolate, winners_by_size

    sizes = untuned_sizes(sweep)
    if not sizes:
        return []
    if store_path is None:
        values = dict.fromkeys(sizes, tuning_points(sweep)[0])
    else:
        values = interpolate(winners_by_size(store_path, sweep.name, list(sweep.tune_at)), sizes)
        for size in sizes:
            shown = " ".join(f"{k}={v}" for k, v in values[size].items())
            print(f"sweep {sweep.name}: subset_size {size} not tuned; interpolated {shown}")
    planned = expand(sweep, parse_overrides(args.set or []), cwd=Path.cwd(), interpolated=values)
    known = {r.run_id for r in runs}
    return [r for r in planned if r.run_id not in known]


def _run_stage(args: argparse.Namespace, sweep, runs, trackers, stop_at: float | None = None):
    """Run `runs` on Ray (to `stop_at` of their training if given); print the summary and
    every failure; return the summary."""
    from scaling.orchestrate import run_sweep

    started = time.monotonic()
    summary = run_sweep(
        sweep,
        runs,
        args.store,
        address=args.address,
        max_concurrent=args.max_concurrent,
        num_cpus=args.num_cpus,
        compile_cache=args.compile_cache,
        retry_diverged=args.retry_diverged,
        report_every=args.refresh,
        trackers=trackers,
        stop_at=stop_at,
    )
    print(_summary_line(sweep.name, summary, len(runs), time.monotonic() - started, args.store))
    for rid, msg in summary.diverged.items():
        print(f"  diverged {rid}: {msg} (kept; --retry-diverged trains it again)")
    for rid, msg in summary.failed.items():
        where = store.run_path(args.store, sweep.name, rid) / "failure.json"
        print(f"  FAILED {rid}: {msg} (traceback in {where}; launch again to retry)")
    return summary


def _adaptive(args: argparse.Namespace, sweep, runs) -> int:
    """Rounds of plan -> run -> refit (`scaling.adaptive`), each round an ordinary sweep."""
    from scaling import adaptive, plan
    from scaling.orchestrate import run_sweep

    if not args.budget or args.dry_run:
        raise UsageError("--adaptive needs --budget (e.g. 2h or 5e6ex) and no --dry-run")
    if store.is_remote(args.store):  # its round files are sweep files that Python imports
        raise UsageError(f"--adaptive needs a store on a file system, not '{args.store}'")
    q = plan.parse_question(args.question, metric=args.metric, cls=args.cls, split=args.split)
    budget = plan.parse_budget(args.budget)
    trackers = _trackers(args, args.store)

    def run_round(planned) -> bool:
        started = time.monotonic()
        if not args.address:
            _check_data(planned, args.store, sweep.name)
        summary = run_sweep(
            sweep, planned, args.store, address=args.address, max_concurrent=args.max_concurrent,
            num_cpus=args.num_cpus, compile_cache=args.compile_cache,
            retry_diverged=args.retry_diverged, report_every=args.refresh, trackers=trackers,
        )  # fmt: skip
        seconds = time.monotonic() - started
        print(_summary_line(sweep.name, summary, len(planned), seconds, args.store))
        return summary.ok

    try:
        state = adaptive.run_adaptive(
            sweep, runs, args.store, q, budget, run_round, rounds=args.rounds,
            tolerance=args.tolerance, form=args.form, n_bootstrap=args.bootstrap,
        )  # fmt: skip
    except adaptive.RoundFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED_RUNS
    spent = sum(r["cost"] for r in state["rounds"])
    print(
        f"adaptive sweep {sweep.name}: {len(state['rounds'])} rounds, planned cost {spent:.4g} "
        f"of {budget}; rounds in {adaptive.state_path(args.store, sweep.name).parent}"
    )
    return 0


def _check_data(runs, store_path: str, sweep: str) -> None:
    """Open the data of every unfinished run as its worker will (bad data: one line, exit 2);
    the readers' warnings (exams left out) are printed once each."""
    from scaling.run_data import preflight

    todo = [
        r
        for r in runs
        if not (store.run_path(store_path, sweep, r.run_id) / "result.json").exists()
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        preflight(r.config.data for r in todo)
    readers = (str(w.message) for w in caught if issubclass(w.category, UserWarning))
    for message in dict.fromkeys(readers):
        print(f"warning: {message}", file=sys.stderr)


def _summary_line(name: str, summary, planned: int, seconds: float, store_path: str) -> str:
    """One line: finished of planned, trained by this invocation, retried, failed, diverged."""
    retried = f", {len(summary.retried)} retried" if summary.retried else ""
    if summary.waited:
        retried += f", {len(summary.waited)} finished by another process while waiting"
    halved = f", {len(summary.paused)} paused at their rung" if summary.paused else ""
    halved += f", {len(summary.pruned)} pruned" if summary.pruned else ""
    return (
        f"sweep {name}: {len(summary.finished)}/{planned} finished "
        f"({len(summary.trained)} trained now{retried}){halved}, {len(summary.failed)} failed, "
        f"{len(summary.diverged)} diverged in {seconds:.1f}s; store {store_path}"
    )


def _compile_cache_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--compile-cache",
        default=os.environ.get("JAX_COMPILATION_CACHE_DIR"),
        help="JAX compilation cache shared by all workers (default: $JAX_COMPILATION_CACHE_DIR, "
        "else <store>/.jax_cache)",
    )


def _dry_run(sweep, runs, store_path: str, *, calibrate: bool, workers: int | None) -> str:
    """The runs, which are finished, and the cost of the rest (examples, FLOPs, time), each
    row saying where its throughput (and a whole-pool run its size) came from."""
    from scaling import cost, results

    table = results.collect(store_path, sweep.name) if epath.Path(store_path).exists() else None
    statuses = [store.run_status(store.run_path(store_path, sweep.name, r.run_id)) for r in runs]
    device = cost.device_kind(sweep.resources)
    costs = cost.sweep_costs(runs, statuses, table, device, calibrated=calibrate)
    lines = [
        f"sweep {sweep.name} ({sweep.experiment}), profile {sweep.profile}: "
        f"{len(runs)} runs, resources per run {sweep.resources}"
    ]
    axes = [c for c in costs.columns if c in {k for r in runs for k in r.point}]
    for row in costs.itertuples(index=False):
        point = " ".join(f"{k}={row[costs.columns.get_loc(k)]}" for k in axes)
        when = f"{row.seconds:9.0f}s" if row.seconds == row.seconds else "        ?"
        examples = f"{row.examples:>11,d}" if row.examples else "          ?"
        flops = f"{row.flops:10.3g}" if row.flops == row.flops else "         ?"
        lines.append(
            f"  {row.run_id} {row.status:9s} {point:44s} params {row.n_params:>11,d} "
            f"examples {examples} {flops} FLOP {when}  {row.source}"
        )
    todo = costs[costs["status"] != store.FINISHED]
    if sweep.tune and "subset_size" in costs:
        lines.append(_tuning_cost(sweep, costs, todo))
    unknown = int(todo["seconds"].isna().sum())
    hours = todo["seconds"].sum(skipna=True) / 3600
    text = (
        f"to run: {len(todo)} of {len(runs)}, {todo['flops'].sum():.3g} training FLOP, "
        f"{_duration(hours * 3600)} of one {device} worker"
    )
    if workers:
        text += f", about {_duration(hours * 3600 / workers)} on {workers} concurrent runs"
    if unknown:
        text += f" plus {unknown} runs of unknown cost (see their rows)"
    if todo["source"].str.startswith("reference").any():
        notes = [f"  {n}" for n in cost.reference_notes()]
        text += "\nreference throughputs (scaling/reference_throughput.csv):\n" + "\n".join(notes)
    return "\n".join([*lines, text])


def _tuning_cost(sweep, costs, todo) -> str:
    """Per subset size: the runs tuning multiplies it into and the time of those left."""
    from scaling.sweep import tuning_points

    n = len(tuning_points(sweep))
    where = f"subset_size {', '.join(map(str, sweep.tune_at))}" if sweep.tune_at else "every size"
    lines = [f"tuning: {n} points at {where} and seed ({sweep.select} picks the winner)"]
    if sweep.halving:
        from scaling.halving import grid_share

        lines.append(
            f"  successive halving keeps 1/{sweep.halving} per rung: at most about "
            f"{grid_share(n, sweep.halving):.0%} of the tuning runs' time below"
        )
    for size, group in costs.groupby("subset_size", sort=True):
        left = todo[todo["subset_size"] == size]
        unknown = " + unknown" if left["seconds"].isna().any() else ""
        if sweep.tune_at and size not in sweep.tune_at:
            how = "values interpolated after tuning, costed as the first tuning point"
        else:
            how = f"{len(group) // n} settings of the other axes × {n} tuning points"
        lines.append(
            f"  subset_size={size}: {len(group)} runs ({how}), "
            f"{len(left)} to run, {_duration(left['seconds'].sum(skipna=True))}{unknown}"
        )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    """Seconds as s, min or h, whichever reads best."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def cmd_run(args: argparse.Namespace) -> int:
    from scaling.config import override, run_id
    from scaling.sweep import load_experiment, locate_data
    from scaling.train import Diverged, attempt

    trackers = _trackers(args, args.store)
    cfg = override(load_experiment(args.experiment), parse_overrides(args.set or []))
    cfg = locate_data(cfg, Path.cwd())
    path = store.run_path(args.store, "runs", run_id(cfg))
    try:
        result = attempt(cfg, path, trackers).result
    except Diverged as e:  # an outcome of training, recorded in the store, not a bug
        print(f"run {path}: diverged: {e}", file=sys.stderr)
        return 1
    macro = result["metrics"]["test"]["macro"]
    print(f"run {path}: test macro AUROC {macro['auroc']:.4f}, loss {result['loss']['test']:.4f}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from scaling.progress import summarize

    states = store.scan(args.store, args.sweep)
    if not states:
        raise UsageError(f"no runs found in store '{args.store}'")
    print(summarize(states))
    for s in states:
        if s.status in (store.FAILED, store.DIVERGED):
            msg = store.read_json(s.path / "failure.json").get("message", "")
            print(f"  {s.status} {s.sweep}/{s.run_id}: {msg}")
    return 0


def _table(store_path: str, sweep: str | None = None, *, all_runs: bool = True):
    """The results table; without `all_runs`, only the selected runs (tuning winners)."""
    from scaling import results

    if not epath.Path(store_path).exists():
        raise UsageError(f"store '{store_path}' does not exist")
    table = results.collect(store_path, sweep)
    if table.empty:
        raise UsageError(f"no runs found in store '{store_path}'")
    return table if all_runs else results.selected(table)


def cmd_results(args: argparse.Namespace) -> int:
    from scaling import results

    table = _table(args.store, args.sweep)
    if args.out:
        results.write(table, args.out, args.format)
        print(f"wrote {len(table)} rows to {args.out}")
    elif args.format == "markdown":
        print(results.to_markdown(table), end="")
    elif args.format == "csv":
        print(table.to_csv(index=False), end="")
    else:
        raise UsageError("--format parquet needs --out FILE")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from scaling import laws

    table = _table(args.store, args.sweep, all_runs=args.all_runs)
    fit = laws.fit_metric(
        table,
        metric=args.metric,
        cls=_class_of(args.metric, args.cls),
        split=args.split,
        form=args.form,
        n_bootstrap=args.bootstrap,
    )
    print(laws.describe(fit))
    law = fit.law
    try:
        result = law.selection or laws.backtest(law.x, law.y, weights=law.weights)
    except laws.LawError as e:
        print(f"no rolling-origin backtest: {e}")
    else:
        print("rolling-origin backtest (fit up to each cut-off, predict up to 10× beyond it):")
        print(result.table.to_string(index=False))
        errors = result.cutoffs.pivot(index="cutoff", columns="form", values="log_rmse")
        print("log-RMSE per cut-off:")
        errors = errors[[f for f in result.table["form"] if f in errors]]
        print(errors.to_string(float_format="%.3g"))
        print(f"why: {result.reason}")
    if args.target is not None:
        print(laws.describe_target(table, fit, args.target))
    return 0


def _class_of(metric: str, cls: str | None) -> str:
    """The row to fit: the given class, else macro (the loss has one row, "all")."""
    return cls or ("all" if metric == "loss" else "macro")


def cmd_plot(args: argparse.Namespace) -> int:
    from scaling import laws, plots

    table = _table(args.store, args.sweep, all_runs=args.all_runs)
    out = writable_dir(args.out)
    fits = [
        laws.fit_metric(
            table,
            metric=m,
            cls=_class_of(m, args.cls),
            split=args.split,
            form=args.form,
            n_bootstrap=args.bootstrap,
        )
        for m in args.metrics
    ]
    for path in plots.plot_scaling(fits, out / "scaling"):
        print(f"wrote {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from scaling import report
    from scaling.adaptive import states

    table = _table(args.store, args.sweep)
    paths = report.write_report(
        table,
        writable_dir(args.out),
        form=args.form,
        target=args.target,
        n_bootstrap=args.bootstrap,
        adaptive=states(args.store, args.sweep),
        all_runs=args.all_runs,
    )
    for path in paths.values():
        print(f"wrote {path}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from scaling import plan

    q = plan.parse_question(args.question, metric=args.metric, cls=args.cls, split=args.split)
    budget = plan.parse_budget(args.budget)
    sweep, runs = _plan(args)
    table = _table(args.store, sweep.name)
    proposal = plan.plan_study(
        sweep, runs, table, q, budget, form=args.form, n_bootstrap=args.bootstrap,
        tolerance=args.tolerance,
    )  # fmt: skip
    if proposal.question != q:
        print(f"{q}: out of the fitted law's reach; planning for {proposal.question} instead")
    print(plan.describe(proposal, _budget_unit(sweep, budget)))
    if not proposal.picks:
        print("nothing to plan: no run fits the budget or narrows the interval")
        return 0
    out = Path(args.out or f"plan_{sweep.name}.py").absolute()
    plan.write_plan(out, sweep, runs, proposal)
    print(f"wrote {out}; run it with: scaling sweep {out} --store {args.store}")
    return 0


def _budget_unit(sweep, budget) -> str:
    from scaling import cost

    if budget.unit == "examples":
        return "examples seen in training"
    return f"time of one {cost.device_kind(sweep.resources)} worker"


def _seconds(text: str) -> float:
    if not float(text) > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return float(text)


def _question_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument(
        "--budget", required=required, help="compute to spend: 2h, 90min (worker time) or 5e6ex"
    )
    p.add_argument("--metric", default="auroc", help="metric of the question (default: auroc)")
    p.add_argument("--class", dest="cls", help="class, micro or macro (default: macro)")
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--form", default="saturating", help="law form (default: saturating)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap refits of the law")
    p.add_argument(
        "--tolerance", type=float, default=0.0, help="stop once the interval is this narrow"
    )


def cmd_submit(args: argparse.Namespace) -> int:
    from scaling.orchestrate import SubmitError, submit

    _plan(args)  # a malformed sweep fails here, before anything is submitted
    trackers = _trackers(args, args.store, here=False)  # the cluster needs the packages
    overrides = _absolute_paths(parse_overrides(args.set or []))
    extra = [f"--set={k}={v}" for k, v in overrides.items()]
    extra += [f"--axis={a}" for a in args.axis or []]
    if args.profile:
        extra.append(f"--profile={args.profile}")
    if args.compile_cache:
        extra.append(f"--compile-cache={args.compile_cache}")
    extra += [f"--tracker={name}" for name in trackers.names]
    if args.tracker_dir:
        extra.append(f"--tracker-dir={args.tracker_dir}")
    try:
        job_id = submit(
            args.sweep,
            address=args.address,
            store_path=args.store,
            extra_args=extra,
            env=dict(trackers.env),
        )
    except (SubmitError, ConnectionError) as e:
        print(f"error: could not submit to {args.address}: {e}", file=sys.stderr)
        return 1
    print(f"submitted job {job_id} to {args.address}")
    print(f"follow it:  ray job logs --address {args.address} --follow {job_id}")
    print(f"progress:   scaling status {args.store}")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from scaling.data.synthetic import class_names_for, write_code_dataset

    out = writable_dir(args.out)
    path = write_code_dataset(
        out,
        n_exams=args.exams,
        n_patients=args.patients,
        classes=class_names_for(args.classes),
        length=args.length,
        seed=args.seed,
    )
    print(f"wrote {args.exams} exams of {args.patients} patients to {path}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from scaling.data.check import check_dataset

    classes = tuple(c for c in (args.classes or "").split(",") if c)
    report = check_dataset(args.path, kind=args.kind, classes=classes)
    print(report.format())
    return 0 if not report.problems else EXIT_BAD_INPUT


def cmd_demo(args: argparse.Namespace) -> int:
    from scaling.demo import run_demo

    out = writable_dir(args.out)
    return run_demo(
        out,
        exams=args.exams,
        patients=args.patients,
        axis=_axes(args.axis or []),
        overrides=parse_overrides(args.set or []),
        num_cpus=args.num_cpus,
        compile_cache=args.compile_cache,
        trackers=_trackers(args, os.fspath(out / "store")),
    )


# ---------------------------------------------------------------------------
# Parser


def _sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", help="sweep name (sweeps/<name>.py) or path to a sweep file")
    p.add_argument("--store", default="store", help="results store path or URL (default: store)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field for every run (repeatable)",
    )
    p.add_argument(
        "--axis",
        action="append",
        metavar="KEY=V1,V2",
        help="replace the values of one sweep axis (repeatable)",
    )
    p.add_argument("--profile", help="resource profile of the sweep (e.g. cpu, gpu8, tpu)")
    _compile_cache_arg(p)


def _tracker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracker",
        action="append",
        choices=["tensorboard", "wandb", "mlflow"],
        help="also report each run trained now to this experiment tracker (repeatable; "
        'needs pip install -e ".[NAME]")',
    )
    p.add_argument(
        "--tracker-dir",
        help="where TensorBoard events, W&B files (unless WANDB_DIR) and the MLflow file "
        "store (unless MLFLOW_TRACKING_URI) go (default: the store)",
    )


def _fit_args(p: argparse.ArgumentParser, *, target: bool = True) -> None:
    p.add_argument("store", help="results store path")
    p.add_argument("--sweep", help="only this sweep of the store")
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument(
        "--class", dest="cls", help="class name, micro or macro (default: macro; all for loss)"
    )
    p.add_argument(
        "--form",
        default="saturating",
        choices=["power", "saturating", "m1", "m2", "m3", "m4", "broken", "broken2", "auto"],
        help="law form; auto: chosen by a rolling backtest (default: saturating)",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs")
    p.add_argument(
        "--all-runs",
        action="store_true",
        help="fit every tuning point, not only the run selected on validation at each size",
    )
    if target:
        p.add_argument("--target", type=float, help="metric value to reach (e.g. 0.95)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scaling", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="synthetic data -> sweep on local Ray -> laws, plot, report")
    p.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    p.add_argument("--exams", type=int, default=3000, help="synthetic exams to write")
    p.add_argument("--patients", type=int, default=2000, help="synthetic patients")
    p.add_argument(
        "--axis",
        action="append",
        metavar="KEY=V1,V2",
        help="replace the values of one axis of sweeps/demo.py",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")
    _compile_cache_arg(p)
    _tracker_args(p)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("run", help="train and evaluate one experiment in this process")
    p.add_argument("experiment", help="experiment name (experiments/<name>.py) or path")
    p.add_argument("--store", default="store")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    _tracker_args(p)
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("sweep", help="run a sweep on Ray (embedded, or a cluster with --address)")
    _sweep_args(p)
    p.add_argument("--address", help="Ray cluster address (default: start an embedded one)")
    p.add_argument("--max-concurrent", type=int, help="runs in flight at once")
    p.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")
    p.add_argument("--dry-run", action="store_true", help="list runs, status and cost; run nothing")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="with --dry-run: time a few train steps of each model shape here",
    )
    p.add_argument(
        "--retry-diverged",
        action="store_true",
        help="train diverged runs again (by default their divergence is kept as their result)",
    )
    p.add_argument(
        "--refresh",
        type=_seconds,
        metavar="SECONDS",
        help="seconds between progress updates (default: 1 live in a terminal, else 10)",
    )
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="rounds of plan -> run -> refit for --question within --budget (see scaling plan)",
    )
    p.add_argument("--rounds", type=int, default=3, help="with --adaptive: rounds in all")
    p.add_argument("--question", default="exponent", help="with --adaptive: as for scaling plan")
    _question_args(p, required=False)
    _tracker_args(p)
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("submit", help="submit a sweep as a Ray job to a cluster")
    _sweep_args(p)
    p.add_argument("--address", required=True, help="Ray dashboard address, http://HEAD:8265")
    _tracker_args(p)
    p.set_defaults(fn=cmd_submit)

    p = sub.add_parser("plan", help="propose the runs that narrow a question's interval most")
    _sweep_args(p)
    p.add_argument(
        "--question",
        required=True,
        help="exponent, metric-at:N or size-for:METRIC=VALUE (e.g. size-for:auroc=0.95)",
    )
    _question_args(p)
    p.add_argument("--out", help="sweep file to write (default: plan_<sweep>.py)")
    p.set_defaults(fn=cmd_plan)

    p = sub.add_parser("status", help="progress of the runs in a store")
    p.add_argument("store")
    p.add_argument("--sweep")
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("results", help="the tidy results table of a store")
    p.add_argument("store")
    p.add_argument("--sweep")
    p.add_argument("--format", default="csv", choices=["parquet", "csv", "markdown"])
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(fn=cmd_results)

    p = sub.add_parser("fit", help="fit a scaling law to one metric")
    _fit_args(p)
    p.add_argument("--metric", default="auroc")
    p.set_defaults(fn=cmd_fit)

    p = sub.add_parser("plot", help="scaling-curve figures (PNG and PDF)")
    _fit_args(p, target=False)
    p.add_argument("--metrics", nargs="+", default=["auroc", "auprc", "f1", "loss"])
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_plot)

    p = sub.add_parser("report", help="HTML + Markdown report of a store")
    _fit_args(p)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_report)

    data = sub.add_parser("data", help="dataset tools").add_subparsers(
        dest="data_command", required=True
    )
    p = data.add_parser("synth", help="write a synthetic dataset in the CODE layout")
    p.add_argument("--out", required=True)
    p.add_argument("--exams", type=int, required=True)
    p.add_argument("--patients", type=int, required=True)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--length", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_data_synth)

    p = data.add_parser("check", help="validate a CODE, PTB-XL or CPSC dataset")
    p.add_argument("path")
    p.add_argument("--kind", default="auto", choices=["auto", *DATASET_KINDS])
    p.add_argument("--classes", help="comma-separated class columns (CODE; default: inferred)")
    p.set_defaults(fn=cmd_data_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def command() -> int:
        _resolve_paths(args)
        return args.fn(args)

    return run_command(command)


def run_command(command: Callable[[], int]) -> int:
    """`command`'s exit code; bad input (`ScalingError`, a missing file) is one line and exit 2,
    Ctrl-C exit 130, and anything else a bug: its traceback, a line saying so, exit 1."""
    try:
        return command()
    except (ScalingError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        print(
            "error: this is a bug in scaling, not a problem with your input; please report it "
            "with the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
