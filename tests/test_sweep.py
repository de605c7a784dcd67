"""Sweep files: loading, expansion (product and zip), run ids, and bad sweeps."""

import textwrap

import pytest

from scaling.config import RunConfig, run_id
from scaling.sweep import Sweep, SweepError, expand, load_sweep, log_spaced, replace_axes


def _sweep(**kw) -> Sweep:
    return Sweep(name="t", experiment="demo", **kw)


def test_product_of_axes_and_zip_within_an_axis():
    sweep = _sweep(axes=({"subset_size": [10, 20, 40]}, {"data_seed": [0, 1], "init_seed": [5, 6]}))
    runs = expand(sweep, base=RunConfig())
    assert len(runs) == 6
    pairs = {(r.config.data.data_seed, r.config.train.init_seed) for r in runs}
    assert pairs == {(0, 5), (1, 6)}
    assert {r.config.data.subset_size for r in runs} == {10, 20, 40}
    assert all(r.run_id == run_id(r.config) for r in runs)
    assert len({r.run_id for r in runs}) == 6


def test_expansion_is_deterministic():
    sweep = _sweep(axes=({"subset_size": [10, 20]},))
    assert [r.run_id for r in expand(sweep, base=RunConfig())] == [
        r.run_id for r in expand(sweep, base=RunConfig())
    ]


@pytest.mark.parametrize(
    ("axes", "match"),
    [
        (({"subset_sise": [1, 2]},), "did you mean 'subset_size'"),
        (({"subset_size": []},), "no values"),
        (({},), "empty axis"),
        (({"data_seed": [0, 1], "init_seed": [0]},), "equal lengths"),
    ],
)
def test_bad_axes_fail_before_anything_runs(axes, match):
    with pytest.raises(SweepError, match=match):
        expand(_sweep(axes=axes), base=RunConfig())


def test_overriding_an_axis_is_refused():
    with pytest.raises(SweepError, match="is an axis"):
        expand(_sweep(axes=({"subset_size": [1, 2]},)), {"subset_size": 3}, base=RunConfig())


def test_unknown_resource_profile():
    with pytest.raises(SweepError, match="no resource profile 'gpu'"):
        expand(_sweep(axes=({"subset_size": [1]},), profile="gpu"), base=RunConfig())


def test_replace_axes():
    sweep = replace_axes(_sweep(axes=({"subset_size": [1, 2]},)), {"subset_size": ["5", "6", "7"]})
    assert [r.config.data.subset_size for r in expand(sweep, base=RunConfig())] == [5, 6, 7]
    with pytest.raises(SweepError, match="not an axis"):
        replace_axes(sweep, {"init_seed": [1]})
    zipped = _sweep(axes=({"data_seed": [0, 1], "init_seed": [0, 1]},))
    with pytest.raises(SweepError, match="zipped: give all of its keys"):
        replace_axes(zipped, {"data_seed": [3]})
    runs = expand(
        replace_axes(zipped, {"data_seed": [3, 4], "init_seed": [5, 6]}), base=RunConfig()
    )
    assert [(r.config.data.data_seed, r.config.train.init_seed) for r in runs] == [(3, 5), (4, 6)]


def test_sweep_file_with_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def get_sweep(:\n    pass\n")
    with pytest.raises(SweepError, match=r"bad.py:1: syntax error"):
        load_sweep(str(bad))


def test_sweep_file_without_get_sweep(tmp_path):
    f = tmp_path / "empty.py"
    f.write_text("X = 1\n")
    with pytest.raises(SweepError, match="does not define get_sweep"):
        load_sweep(str(f))


def test_sweep_file_returning_the_wrong_type(tmp_path):
    f = tmp_path / "wrong.py"
    f.write_text(textwrap.dedent("def get_sweep():\n    return 3\n"))
    with pytest.raises(SweepError, match="not Sweep"):
        load_sweep(str(f))


def test_unknown_sweep_name_lists_available():
    with pytest.raises(SweepError, match=r"available: .*demo"):
        load_sweep("no_such_sweep")


def test_log_spaced():
    sizes = log_spaced(1000, 1_000_000, 4)
    assert sizes == [1000, 10000, 100000, 1000000]
    with pytest.raises(SweepError):
        log_spaced(10, 5, 3)
