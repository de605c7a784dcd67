"""Config keys, overrides, serialisation and run identity."""

import pytest

from scaling.config import (
    ConfigError,
    RunConfig,
    canonical,
    flatten,
    from_dict,
    identity,
    override,
    parse_overrides,
    resolve_key,
    run_id,
    to_dict,
    validate,
)


def test_keys_resolve_by_path_and_unique_leaf():
    assert resolve_key("train.lr") == "train.lr"
    assert resolve_key("subset_size") == "data.subset_size"
    assert resolve_key("init_seed") == "train.init_seed"


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"did you mean 'train\.lr'"):
        resolve_key("train.lrr")
    with pytest.raises(ConfigError, match="subset_size"):
        override(RunConfig(), {"subset_sise": 10})


def test_ambiguous_leaf_needs_its_path():
    with pytest.raises(ConfigError, match="unknown config key 'batch_size'"):
        resolve_key("batch_size")
    assert override(RunConfig(), {"eval.batch_size": 7}).eval.batch_size == 7


def test_override_coerces_command_line_strings():
    cfg = override(
        RunConfig(),
        parse_overrides(
            ["train.lr=3e-4", "subset_size=1000", "leads=DI,DII", "class_weighting=true"]
        ),
    )
    assert cfg.train.lr == 3e-4 and cfg.data.subset_size == 1000
    assert cfg.data.leads == ("DI", "DII") and cfg.train.class_weighting is True


@pytest.mark.parametrize(
    ("key", "value"), [("subset_size", "ten"), ("subset_size", 1.5), ("class_weighting", "maybe")]
)
def test_mistyped_value_is_an_error_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        override(RunConfig(), {key: value})


def test_malformed_override_string():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.lr"])


def test_round_trip_and_hash_stability():
    cfg = override(RunConfig(), {"subset_size": 500, "train.lr": 1e-4})
    assert from_dict(to_dict(cfg)) == cfg
    assert run_id(from_dict(to_dict(cfg))) == run_id(cfg)
    assert run_id(cfg) != run_id(override(cfg, {"subset_size": 501}))


def test_from_dict_rejects_unknown_fields():
    d = to_dict(RunConfig())
    d["train"]["lr_typo"] = 1
    with pytest.raises(ConfigError, match="lr_typo"):
        from_dict(d)


def test_flatten_uses_the_same_names_as_the_sweep():
    flat = flatten(override(RunConfig(), {"subset_size": 42}))
    assert flat["subset_size"] == 42
    assert "train.batch_size" in flat and "eval.batch_size" in flat


def test_run_id_ignores_fields_left_at_their_defaults():
    cfg = override(RunConfig(), {"subset_size": 500})
    assert identity(cfg) == {"data.subset_size": 500}
    explicit = override(cfg, {"train.lr": RunConfig().train.lr})  # set, but to the default
    assert run_id(explicit) == run_id(cfg)


def test_run_id_is_that_of_the_canonical_config():
    a = override(RunConfig(), {"mode": "scratch", "pretrained": "pre:subset_size=1"})
    b = override(RunConfig(), {"mode": "scratch"})
    assert run_id(a) == run_id(b)
    assert canonical(a) == b


def test_string_fields_take_only_their_choices():
    with pytest.raises(ConfigError, match=r"'transfer\.mode' must be one of"):
        override(RunConfig(), {"mode": "finetuning"})
    with pytest.raises(ConfigError, match=r"'data\.kind' must be one of code, ptbxl, cpsc"):
        validate(RunConfig(data=RunConfig().data.__class__(kind="mitbih")))


def test_the_data_enters_the_run_id_by_its_fingerprint_not_its_path(tmp_path):
    from scaling.config import override, run_id
    from scaling.data import write_code_dataset
    from scaling.sweep import locate_data

    write_code_dataset(tmp_path / "a", n_exams=20, n_patients=10, length=64, seed=0)
    write_code_dataset(tmp_path / "b", n_exams=20, n_patients=10, length=64, seed=0)
    write_code_dataset(tmp_path / "c", n_exams=20, n_patients=10, length=64, seed=1)
    at = {
        name: locate_data(override(RunConfig(), {"data.path": name}), tmp_path)
        for name in ("a", "b", "c", "./b/")
    }
    assert at["a"].data.path == str(tmp_path / "a") and at["a"].data.fingerprint
    assert run_id(at["a"]) == run_id(at["b"]) == run_id(at["./b/"])  # the same content
    assert run_id(at["c"]) != run_id(at["a"])  # other labels and signals
    missing = locate_data(override(RunConfig(), {"data.path": "none"}), tmp_path)
    assert missing.data.fingerprint == ""  # not there yet: identified by its path
    assert run_id(missing) != run_id(
        locate_data(override(RunConfig(), {"data.path": "n"}), tmp_path)
    )
