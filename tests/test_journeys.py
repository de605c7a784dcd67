"""User journeys: the installed `scaling` command typed in a new empty folder, relative paths.

Each test starts in an empty working directory and drives the console script as a
subprocess, the way a user types it. The relative-paths journey runs its sweeps on the
embedded (loopback-only) Ray; the failed/killed and diverged journeys, which are about the
store, on the suite's head (`--address`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import psutil
import pytest
from conftest import TINY, scaling_bin, write_sweep

from scaling import store


def synth(cwd: Path, out: str = "data", exams: int = 300, patients: int = 200) -> None:
    run = scaling_bin("data", "synth", "--out", out, "--exams", str(exams), "--patients",
                      str(patients), "--length", "1024", cwd=cwd)  # fmt: skip
    assert run.returncode == 0, run.stderr


def no_leftovers(root: Path) -> list[Path]:
    """Temporary files or locks left in a store."""
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name == "lock"]


def trainings(root: Path, sweep: str) -> dict[str, int]:
    return {s.run_id: store.count_trainings(s.path) for s in store.scan(root, sweep)}


def listening_non_loopback(proc: psutil.Process) -> list[str]:
    """Listening sockets of `proc` and its descendants bound to a non-loopback address."""
    bad = []
    for p in [proc, *proc.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for c in conns:
            ip = c.laddr.ip.removeprefix("::ffff:")
            if c.status == psutil.CONN_LISTEN and not (ip.startswith("127.") or ip == "::1"):
                bad.append(f"{p.name()} {ip}:{c.laddr.port}")
    return bad


@pytest.mark.slow
@pytest.mark.ray
def test_relative_store_and_data_then_the_data_moves(tmp_path):
    synth(tmp_path)
    sweep = write_sweep(tmp_path, "rel", [30, 60, 100, 160]).name
    args = ["sweep", sweep, "--store", "store", "--set", "data.path=data"]
    proc = scaling_bin(*args, cwd=tmp_path, wait=False)
    sweep_proc = psutil.Process(proc.pid)
    checked, exposed = 0, []
    while proc.poll() is None:  # the embedded cluster, probed while it runs
        if len(sweep_proc.children(recursive=True)) > 3:
            exposed += listening_non_loopback(sweep_proc)
            checked += 1
        time.sleep(0.5)
    out = proc.stdout.read()
    assert proc.returncode == 0, out + proc.stderr.read()
    assert checked >= 3, "the sweep's Ray processes were never seen"
    assert exposed == [], exposed
    assert "4/4 finished (4 trained now)" in out

    for command in (
        ["status", "store"],
        ["results", "store", "--format", "csv", "--out", "results.csv"],
    ):  # fit, plot and report on relative paths: tests/test_demo.py, on a curve that slopes
        done = scaling_bin(*command, cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr)
    assert "4/4 done" in scaling_bin("status", "store", cwd=tmp_path).stdout
    table = pd.read_csv(tmp_path / "results.csv")
    assert sorted(table["subset_size"].unique()) == [30, 60, 100, 160]

    before = trainings(tmp_path / "store", "rel")
    (tmp_path / "data").rename(tmp_path / "moved")
    again = scaling_bin("sweep", sweep, "--store", "store", "--set", "data.path=moved",
                        cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "4/4 finished (0 trained now)" in again.stdout
    assert trainings(tmp_path / "store", "rel") == before
    assert no_leftovers(tmp_path / "store") == []


@pytest.mark.slow
@pytest.mark.ray
def test_a_failed_run_fails_again_then_a_killed_one_is_retried_and_resumes(ray_head, tmp_path):
    at = ("--address", ray_head[0])  # the suite's head: this journey is about the store
    synth(tmp_path)
    # One run fails at step 3 on every launch: the re-launch must replace its failure.json.
    faulty = write_sweep(tmp_path, "faulty", [40], "data", fail_at_step=3).name
    for launch in range(2):
        out = scaling_bin("sweep", faulty, "--store", "store", *at, cwd=tmp_path)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "1 failed" in out.stdout and "InjectedFailure" in out.stdout
        assert ("1 retried" in out.stdout) == (launch == 1)
    [run] = store.scan(tmp_path / "store", "faulty")
    assert json.loads((run.path / "failure.json").read_text())["message"].startswith(
        "InjectedFailure"
    )

    # A run whose worker is killed, with no retries left, fails; launching again resumes it.
    slow = write_sweep(tmp_path, "killed", [120], "data", retries=0, max_steps=200,
                       early_stopping=0).name  # fmt: skip
    proc = scaling_bin("sweep", slow, "--store", "store", *at, cwd=tmp_path, wait=False)
    pid = wait_for_worker(tmp_path / "store" / "killed", min_evals=2)
    os.kill(pid, signal.SIGKILL)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1 and "1 failed" in out, out
    again = scaling_bin("sweep", slow, "--store", "store", *at, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1/1 finished (1 trained now, 1 retried)" in again.stdout
    [run] = store.scan(tmp_path / "store", "killed")
    starts = [json.loads(x)["start_step"] for x in (run.path / "trainings.jsonl").open()]
    assert run.status == "finished" and starts[0] == 0 and starts[1] >= 10  # resumed
    assert not (run.path / "failure.json").exists()
    assert no_leftovers(tmp_path / "store") == []


@pytest.mark.slow
@pytest.mark.ray
def test_a_diverged_run_is_kept_unless_asked_to_retry(ray_head, tmp_path):
    synth(tmp_path, exams=120, patients=80)
    sweep = write_sweep(tmp_path, "nan", [40], "data", **{"train.lr": "inf"}).name
    at = ("--address", ray_head[0])
    first = scaling_bin("sweep", sweep, "--store", "store", *at, cwd=tmp_path)
    assert first.returncode == 0 and "1 diverged" in first.stdout, first.stdout + first.stderr
    again = scaling_bin("sweep", sweep, "--store", "store", *at, cwd=tmp_path)
    assert "all 1 runs already finished or diverged" in again.stderr
    assert "(0 trained now), 0 failed, 1 diverged" in again.stdout
    retry = scaling_bin("sweep", sweep, "--store", "store", "--retry-diverged", *at, cwd=tmp_path)
    assert "1 retried" in retry.stdout and "1 diverged" in retry.stdout, retry.stdout
    [run] = store.scan(tmp_path / "store", "nan")
    assert run.status == "diverged" and store.count_trainings(run.path) == 2


def wait_for_worker(sweep_dir: Path, min_evals: int, timeout: float = 240) -> int:
    """The pid of the worker training a run of `sweep_dir`, once it has `min_evals` evals."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for lock in sweep_dir.glob("*/lock"):
            try:
                pid = json.loads(lock.read_text())["pid"]
            except (json.JSONDecodeError, FileNotFoundError, KeyError):
                continue
            if len(store.read_metrics(lock.parent)) >= min_evals and psutil.pid_exists(pid):
                return pid
        time.sleep(0.05)
    raise AssertionError(f"no worker of {sweep_dir} reached {min_evals} evaluations")


# ---------------------------------------------------------------------------
# Bad input: one line naming the file and the field, exit 2, nothing in the store


def _code(tmp: Path) -> Path:
    synth(tmp, "bad", exams=60, patients=40)
    return tmp / "bad"


def _edit_part(folder: Path, **datasets) -> None:
    with h5py.File(folder / "exams_part0.hdf5", "r+") as f:
        for name, value in datasets.items():
            del f[name]
            f[name] = value


def truncated(tmp):
    folder = _code(tmp)
    part = folder / "exams_part0.hdf5"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    return "exams_part0.hdf5", "truncated"


def wrong_shape(tmp):
    folder = _code(tmp)
    _edit_part(folder, tracings=np.zeros((60, 1024, 8), np.float32))
    return "exams_part0.hdf5", "'tracings' has shape"


def wrong_dtype(tmp):
    folder = _code(tmp)
    _edit_part(folder, tracings=np.zeros((60, 1024, 12), np.int16))
    return "exams_part0.hdf5", "dtype int16"


def nan_samples(tmp):
    folder = _code(tmp)
    with h5py.File(folder / "exams_part0.hdf5", "r+") as f:
        f["tracings"][7, 100, 3] = np.nan
    return "exams_part0.hdf5", "NaN"


def ids_do_not_match(tmp):
    folder = _code(tmp)
    for part in folder.glob("exams_part*.hdf5"):
        with h5py.File(part, "r+") as f:
            f["exam_id"][:] = f["exam_id"][:] + 10_000_000
    return "exams.csv", ("without a tracing", "no exam has both a row")


def _edit_table(folder: Path, edit) -> None:
    table = pd.read_csv(folder / "exams.csv")
    edit(table).to_csv(folder / "exams.csv", index=False)


def missing_class(tmp):
    folder = _code(tmp)
    _edit_table(folder, lambda t: t.drop(columns="AF"))
    return "exams.csv", "class column(s) AF not found"


def missing_patient_id(tmp):
    folder = _code(tmp)
    _edit_table(folder, lambda t: t.drop(columns="patient_id"))
    return "exams.csv", "no 'patient_id' column"


def empty(tmp):
    folder = _code(tmp)
    _edit_table(folder, lambda t: t.iloc[:0])
    return "exams.csv", "no exams"


def _cpsc(tmp: Path, layout: str) -> Path:
    from scaling.data.synthetic import write_cpsc_sample

    return write_cpsc_sample(tmp / "bad", n_records=12, layout=layout, seed=1)


def malformed_header(tmp):
    folder = _cpsc(tmp, "challenge2020")
    hea = sorted(folder.glob("*.hea"))[3]
    lines = hea.read_text().splitlines(keepends=True)
    hea.write_text("".join([lines[0].split()[0] + " 12 500Hz\n", *lines[1:]]))
    return hea.name, "record line"


def malformed_reference(tmp):
    folder = _cpsc(tmp, "original")
    table = pd.read_csv(folder / "REFERENCE.csv", dtype=str)
    table.loc[1, "First_label"] = "42"  # labels are 1 to 9
    table.to_csv(folder / "REFERENCE.csv", index=False)
    return "REFERENCE.csv", "First_label"


BAD_INPUTS = [
    truncated,
    wrong_shape,
    wrong_dtype,
    nan_samples,
    ids_do_not_match,
    missing_class,
    missing_patient_id,
    empty,
    malformed_header,
    malformed_reference,
]


@pytest.mark.parametrize("make", BAD_INPUTS, ids=[f.__name__ for f in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_nothing_in_the_store(tmp_path, make):
    file, field = make(tmp_path)
    kind = "cpsc" if "REFERENCE" in file or file.endswith(".hea") else "code"
    classes = [] if kind == "cpsc" else ["--classes", "1dAVb,RBBB,LBBB,SB,AF,ST"]
    check = scaling_bin("data", "check", "bad", *classes, cwd=tmp_path)
    assert check.returncode == 2, check.stdout + check.stderr
    fields = field if isinstance(field, tuple) else (field,)
    problems = check.stdout.split("problems:")[1]
    assert file in problems and any(f in problems for f in fields), check.stdout

    fixed = {"data.kind": kind, "data.path": "bad"}
    if kind == "cpsc":  # CPSC records are 500 Hz with their own nine classes
        fixed |= {"data.classes": "", "source_rate": 500.0}
    sweep = write_sweep(tmp_path, "bad_sweep", [20], **fixed).name
    out = scaling_bin("sweep", sweep, "--store", "store", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert file in lines[0] and any(f in lines[0] for f in fields), lines[0]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "store" / "bad_sweep").exists()


TUNED_ON_TEST = """
from scaling.sweep import Sweep

def get_sweep():
    return Sweep(name="tuned", experiment="demo", axes=({"subset_size": [20]},),
                 tune={"train.lr": [1e-3, 3e-3]}, select="test_loss")
"""

TUNED = TUNED_ON_TEST.replace("test_loss", "val_loss")

# (command typed in an empty folder, files to write first, what the one line must name)
USER_ERRORS = {
    "config value": (["run", "demo", "--set", "data.label_level=foo"], {}, "data.label_level"),
    "config range": (["run", "demo", "--set", "model.dropout=1.5"], {}, "ModelConfig.dropout"),
    "config key": (["run", "demo", "--set", "model.size=huge"], {}, "unknown config key"),
    "sweep file": (["sweep", "broken.py"], {"broken.py": "def get_sweep(:\n"}, "broken.py"),
    "tuning": (["sweep", "tuned.py"], {"tuned.py": TUNED_ON_TEST}, "never on test"),
    "output dir": (["demo", "--out", "plot.png/x"], {"plot.png": ""}, "plot.png"),
    "store": (["fit", "nowhere"], {}, "nowhere"),
    "plan": (["plan", "tuned.py", "--question", "why", "--budget", "1h"],
             {"tuned.py": TUNED_ON_TEST}, "unknown question"),
    "adaptive tuned": (["sweep", "tuned.py", "--adaptive", "--budget", "1h"],
                       {"tuned.py": TUNED}, "do not plan tuned sweeps"),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(USER_ERRORS))
def test_every_error_a_user_can_cause_is_one_line_and_exit_2(tmp_path, kind):
    args, files, named = USER_ERRORS[kind]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    out = scaling_bin(*args, cwd=tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and named in lines[0], lines[0]


def test_anything_else_is_reported_as_a_bug_with_its_traceback(capsys):
    from scaling.cli import EXIT_BUG, run_command

    def broken() -> int:
        return {}["missing"]

    assert run_command(broken) == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'missing'" in err
    assert err.strip().splitlines()[-1].startswith("error: this is a bug in scaling")


def test_a_relative_store_works_for_a_single_run(tmp_path):
    synth(tmp_path, exams=120, patients=80)
    overrides = [f"--set={k}={v}" for k, v in {**TINY, "max_steps": 10}.items()]
    out = scaling_bin("run", "demo", "--set", "data.path=data", *overrides, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    [run] = store.scan(tmp_path / "store", "runs")
    assert run.status == "finished" and (run.path / "ckpt" / "latest").is_dir()


def test_a_single_run_that_diverges_says_so_and_is_recorded(tmp_path):
    synth(tmp_path, exams=120, patients=80)
    overrides = [f"--set={k}={v}" for k, v in {**TINY, "max_steps": 10, "train.lr": "inf"}.items()]
    out = scaling_bin("run", "demo", "--set", "data.path=data", *overrides, cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "diverged: training loss is not finite at step 1" in out.stderr
    assert "bug" not in out.stderr and "Traceback" not in out.stderr
    [run] = store.scan(tmp_path / "store", "runs")
    assert run.status == "diverged"


def test_status_of_a_missing_store_names_where_it_looked(tmp_path):
    out = scaling_bin("status", "store", cwd=tmp_path)
    assert out.returncode == 2 and str(tmp_path / "store") in out.stderr


def test_sweep_file_written_in_the_working_folder_is_found_by_relative_name(tmp_path):
    sweep = write_sweep(tmp_path, "here", [20, 40], "nowhere").name
    out = scaling_bin("sweep", sweep, "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "sweep here (demo)" in out.stdout and "to run: 2 of 2" in out.stdout
