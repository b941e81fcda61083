"""Dataclass configs: dict/file/override loading, precedence, and one-line errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from one_line import one_line_message
from rnnkit.training.config import (
    ConfigError, config_from_dict, config_to_dict, parse_override, resolve_config,
)


@dataclass
class Optim:
    lr: float = 1e-3
    steps: int = 100
    name: str = "adam"


@dataclass
class Cfg:
    size: int = 4
    rate: float = 0.5
    flag: bool = False
    cell: str = "lstm"
    limit: int | None = None
    dims: tuple[int, ...] = (1, 2)
    pair: tuple[int, float] = (3, 0.25)
    # The parent picks defaults that differ from Optim's own.
    optim: Optim = field(default_factory=lambda: Optim(lr=0.5, steps=7, name="sgd"))


# --- config_from_dict / config_to_dict ---------------------------------------------------------

def test_empty_dict_gives_defaults():
    assert config_from_dict(Cfg, {}) == Cfg()


def test_each_field_type_is_set():
    values = {"size": 9, "rate": 2, "flag": True, "cell": "gru", "limit": 5,
              "dims": [4, 5, 6], "pair": [1, 2.5]}
    cfg = config_from_dict(Cfg, values)
    assert cfg == Cfg(size=9, rate=2.0, flag=True, cell="gru", limit=5, dims=(4, 5, 6),
                      pair=(1, 2.5))
    assert isinstance(cfg.rate, float) and isinstance(cfg.dims, tuple)


def test_optional_field_accepts_null():
    assert config_from_dict(Cfg, {"limit": None}).limit is None


def test_nested_override_keeps_parents_other_nested_defaults():
    cfg = config_from_dict(Cfg, {"optim": {"steps": 11}})
    assert cfg.optim == Optim(lr=0.5, steps=11, name="sgd")


def test_config_to_dict_round_trips():
    cfg = Cfg(size=3, flag=True, limit=8, dims=(7,), optim=Optim(lr=0.1, steps=2, name="x"))
    assert config_from_dict(Cfg, config_to_dict(cfg)) == cfg


def test_config_to_dict_round_trips_through_json():
    cfg = Cfg(dims=(9, 8), pair=(4, 1.5))
    assert config_from_dict(Cfg, json.loads(json.dumps(config_to_dict(cfg)))) == cfg


# --- parse_override ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("a=3", 3),
    ("a=-2.5", -2.5),
    ("a=1e-3", 1e-3),
    ("a=true", True),
    ("a=false", False),
    ("a=null", None),
    ("a=gru", "gru"),
    ('a="gru"', "gru"),
    ('a="12"', "12"),
    ("a=[1, 2, 3]", [1, 2, 3]),
    ('a=["x", "y"]', ["x", "y"]),
    ("a=b=c", "b=c"),
])
def test_parse_override_values(text, expected):
    key, value = parse_override(text)
    assert key == ["a"]
    assert value == expected and type(value) is type(expected)


def test_parse_override_splits_dotted_key():
    assert parse_override("optim.lr=0.25") == (["optim", "lr"], 0.25)


@pytest.mark.parametrize("text", ["no_equals_sign", "=5", "  =5"])
def test_malformed_override_raises(text):
    with pytest.raises(ConfigError) as excinfo:
        parse_override(text)
    one_line_message(excinfo, "key=value")


# --- files and precedence ---------------------------------------------------------------------

def test_json_file_loads(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"size": 6, "optim": {"name": "rms"}}))
    cfg = resolve_config(Cfg, file=str(path))
    assert cfg.size == 6
    assert cfg.optim == Optim(lr=0.5, steps=7, name="rms")


def test_toml_file_loads(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('size = 6\nflag = true\ndims = [3, 4]\n\n[optim]\nlr = 0.125\n')
    cfg = resolve_config(Cfg, file=str(path))
    assert (cfg.size, cfg.flag, cfg.dims) == (6, True, (3, 4))
    assert cfg.optim == Optim(lr=0.125, steps=7, name="sgd")


def test_precedence_defaults_base_file_overrides(tmp_path):
    path = tmp_path / "c.json"
    # size: base -> file -> override; rate: base -> file; cell: base only; flag: default.
    path.write_text(json.dumps({"size": 2, "rate": 0.75, "optim": {"lr": 0.01}}))
    base = {"size": 1, "rate": 0.1, "cell": "gru", "optim": {"steps": 3}}
    cfg = resolve_config(Cfg, base=base, file=str(path),
                         overrides=["size=3", "optim.name=adamw"])
    assert cfg == Cfg(size=3, rate=0.75, cell="gru", flag=False,
                      optim=Optim(lr=0.01, steps=3, name="adamw"))


def test_resolve_config_does_not_mutate_base():
    base = {"optim": {"steps": 3}}
    resolve_config(Cfg, base=base, overrides=["optim.steps=4"])
    assert base == {"optim": {"steps": 3}}


@dataclass
class Columns:
    names: list[str] = field(default_factory=lambda: ["y"])
    label: str | None = None
    levels: list[float] = field(default_factory=lambda: [0.5])


@pytest.mark.parametrize("override, field_name, expected", [
    ("rate=.1", "rate", 0.1),        # JSON has no ".1" or "5."; it was refused as text
    ("rate=5.", "rate", 5.0),
    ("limit=None", "limit", None),   # what check() messages say; it was refused
    ("flag=True", "flag", True),
    ("cell=2024", "cell", "2024"),   # a text field given a number-like value: the text
    ("cell=true", "cell", "true"),
])
def test_overrides_read_as_their_fields_type(override, field_name, expected):
    value = getattr(resolve_config(Cfg, overrides=[override]), field_name)
    assert value == expected and type(value) is type(expected)


def test_an_unquoted_list_override_is_an_error_not_a_name():
    """data.value_cols=[a,b] became the one column name '[a,b]'."""
    assert resolve_config(Columns, overrides=['names=["a","b"]']).names == ["a", "b"]
    assert resolve_config(Columns, overrides=["names=sales"]).names == ["sales"]
    assert resolve_config(Columns, overrides=["label=None"]).label is None
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(Columns, overrides=["names=[a,b]"])
    one_line_message(excinfo, "names=[a,b] is not a JSON list", 'names=["a","b"]')
    # a list of numbers takes them as a single number would be (.05): the quoting advice
    # was wrong for it
    assert resolve_config(Columns, overrides=["levels=[.05,0.5,.95]"]).levels == [0.05, 0.5, 0.95]
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(Columns, overrides=["levels=[a,0.5]"])
    one_line_message(excinfo, "is not a list of numbers", "levels=[0.1,0.5,0.9]")


def test_override_can_set_optional_to_null():
    assert resolve_config(Cfg, base={"limit": 4}, overrides=["limit=null"]).limit is None


# --- errors ------------------------------------------------------------------------------------

def test_unknown_key_raises():
    with pytest.raises(ConfigError) as excinfo:
        config_from_dict(Cfg, {"sise": 3})
    one_line_message(excinfo, "sise")


def test_unknown_nested_key_names_dotted_key():
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(Cfg, overrides=["optim.lrr=0.1"])
    one_line_message(excinfo, "optim.lrr")


@pytest.mark.parametrize("key, value", [
    ("size", "3"),  # string for int
    ("size", True),  # bool for int
    ("size", 3.0),  # float for int
    ("rate", "fast"),  # string for float
    ("rate", False),  # bool for float
    ("flag", 1),  # int for bool
    ("cell", 5),  # int for str
    ("dims", 3),  # scalar for a list
    ("pair", [1]),  # wrong tuple length
])
def test_wrong_type_raises_naming_key(key, value):
    with pytest.raises(ConfigError) as excinfo:
        config_from_dict(Cfg, {key: value})
    one_line_message(excinfo, repr(key))


def test_wrong_type_in_nested_section_names_dotted_key():
    with pytest.raises(ConfigError) as excinfo:
        config_from_dict(Cfg, {"optim": {"steps": "many"}})
    one_line_message(excinfo, "optim.steps")


def test_null_for_non_optional_raises():
    with pytest.raises(ConfigError) as excinfo:
        config_from_dict(Cfg, {"size": None})
    one_line_message(excinfo, "'size'", "null")


def test_scalar_for_section_raises():
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(Cfg, overrides=["optim=3"])
    one_line_message(excinfo, "'optim'")


def test_missing_file_raises(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(Cfg, file=str(missing))
    one_line_message(excinfo, "nope.json", "does not exist")


def test_invalid_json_file_raises(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"size": 3,,}')
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(Cfg, file=str(path))
    one_line_message(excinfo, "bad.json", "JSON")


@pytest.mark.parametrize("text", ['{"size": 3, "size": 5}',
                                  '{"optim": {"lr": 0.1, "steps": 2, "lr": 0.2}}'])
def test_a_key_given_twice_in_a_json_file_is_refused(tmp_path, text):
    """json.loads keeps the last of two values silently; TOML refuses the same file. Oracle:
    each value alone is accepted."""
    path = tmp_path / "twice.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(Cfg, file=str(path))
    one_line_message(excinfo, "twice.json", "gives the key", "twice in one table; keep one")
    assert "not valid JSON" not in str(excinfo.value)  # it is valid JSON, one value too many
    path.write_text('{"size": 3, "optim": {"lr": 0.2}}')
    assert resolve_config(Cfg, file=str(path)) == Cfg(size=3, optim=Optim(lr=0.2, steps=7,
                                                                          name="sgd"))


def test_invalid_toml_file_raises(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("size = = 3\n")
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(Cfg, file=str(path))
    one_line_message(excinfo, "bad.toml", "TOML")


def test_file_that_is_not_utf8_raises_naming_it(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"name": "caf\u00e9"}'.encode("latin-1"))
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(Cfg, file=str(path))
    one_line_message(excinfo, "latin1.json", "not UTF-8")


def test_file_holding_a_list_raises(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(Cfg, file=str(path))
    one_line_message(excinfo, "list.json")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@dataclass
class Lists:
    anything: list = field(default_factory=list)
    names: list[str] | None = None


def test_a_list_field_refuses_a_scalar_and_takes_one_name_for_a_list_of_names():
    """A field typed as bare ``list`` was not checked, so --set model.quantiles=5 became a
    TypeError deep in the task instead of a one-line config error."""
    for key, value in (("anything", 5), ("names", 5)):
        with pytest.raises(ConfigError) as info:
            config_from_dict(Lists, {key: value})
        one_line_message(info, f"config key '{key}' must be a list; got 5")
    with pytest.raises(ConfigError, match="'names' must be a string; got 5"):
        config_from_dict(Lists, {"names": ["a", 5]})
    assert config_from_dict(Lists, {"names": "sales", "anything": [1, "x"]}) == \
        Lists(anything=[1, "x"], names=["sales"])


def test_a_table_for_a_section_sets_only_the_keys_it_names():
    """``--set 'model={"dropout": 0.1}'`` replaced the whole section, silently dropping
    --hidden (and, on resume, the saved limits). Oracle: the same keys set one by one."""
    whole = resolve_config(Cfg, overrides=["size=8", "optim.steps=9", 'optim={"lr": 0.25}'])
    single = resolve_config(Cfg, overrides=["size=8", "optim.steps=9", "optim.lr=0.25"])
    assert whole == single and whole.optim == Optim(lr=0.25, steps=9, name="sgd")
    base = config_to_dict(Cfg(optim=Optim(steps=3, name="sgd")))
    assert resolve_config(Cfg, base=base, overrides=['optim={"lr": 0.5}']).optim == \
        Optim(lr=0.5, steps=3, name="sgd")


@pytest.mark.parametrize("override, message", [
    ("rate=1" + "0" * 400, "config key 'rate' must be a number below 1e308; got a number of "
                           "401 digits"),
    ("size=1" + "0" * 400, "config key 'size' must be at most 2**64 - 1 in size; got a number "
                           "of 401 digits"),
    ("size=1" + "0" * 5000, "size=10000000000000000000... has 5001 characters; no setting "
                            "takes a number that long"),
])
def test_a_number_too_large_for_any_setting_is_one_line_naming_the_key(override, message):
    """These were tracebacks: float() overflowing, math.isfinite() in the trainer's checks,
    and Python's 4300-digit limit on int()."""
    with pytest.raises(ConfigError) as info:
        resolve_config(Cfg, overrides=[override])
    one_line_message(info, message)


def test_the_largest_integer_a_setting_takes_is_a_seeds():
    assert resolve_config(Cfg, overrides=[f"size={2**64 - 1}"]).size == 2**64 - 1


def test_a_toml_file_turns_an_optional_setting_off_with_none(tmp_path):
    """TOML has no null, and "none" was refused as not a number, so a TOML file could not turn
    clipping off or lift a time limit. Oracle: the JSON file with null."""
    (tmp_path / "c.toml").write_text('limit = "none"\ncell = "none"\n')
    (tmp_path / "c.json").write_text('{"limit": null, "cell": "none"}')
    from_toml = resolve_config(Cfg, base={"limit": 5}, file=str(tmp_path / "c.toml"))
    assert from_toml == resolve_config(Cfg, base={"limit": 5}, file=str(tmp_path / "c.json"))
    assert from_toml.limit is None and from_toml.cell == "none"  # a setting with no off value
    # an optional text setting too, as --set names=none does
    (tmp_path / "names.toml").write_text('names = " NULL "\n')  # any case, as in --set
    assert resolve_config(Lists, base={"names": ["a"]}, file=str(tmp_path / "names.toml")) == \
        resolve_config(Lists, base={"names": ["a"]}, overrides=["names=none"]) == Lists()
    # JSON has null: there "none" stays the text it was before (one name)
    (tmp_path / "names.json").write_text('{"names": "none"}')
    assert resolve_config(Lists, file=str(tmp_path / "names.json")).names == ["none"]


def test_one_name_that_reads_as_a_number_is_a_list_of_one_name():
    """--set names=sales gave ["sales"] but --set names=2020 was refused as "not a list".
    Oracle: the same name quoted."""
    for name in ("2020", "1e3", "true"):
        assert resolve_config(Lists, overrides=[f"names={name}"]).names == \
            resolve_config(Lists, overrides=[f'names=["{name}"]']).names == [name]


def test_names_that_read_as_numbers_inside_a_list_are_the_names_as_typed():
    """--set names=[2020,2021] was refused ("must be a string; got 2020"). Oracle: the same
    names quoted."""
    assert resolve_config(Lists, overrides=["names=[2020, 1.50, 1e3, true]"]).names == \
        resolve_config(Lists, overrides=['names=["2020", "1.50", "1e3", "true"]']).names == \
        ["2020", "1.50", "1e3", "true"]
    with pytest.raises(ConfigError) as info:  # a null is no name
        resolve_config(Lists, overrides=["names=[2020, null]"])
    one_line_message(info, "'names' cannot be null")


def test_text_set_with_spaces_around_it_is_the_text():
    """Keys and numbers were trimmed, text was not (``data.corpus = kjv`` looked for ' kjv').
    Oracle: the same override without the spaces."""
    assert resolve_config(Cfg, overrides=["cell = gru", "optim.name= 2024 "]) == \
        resolve_config(Cfg, overrides=["cell=gru", "optim.name=2024"])


def test_config_files_a_folder_a_bom_and_an_empty_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        resolve_config(Cfg, file=str(tmp_path))
    one_line_message(info, "is a folder; name a .json or .toml file")
    # a byte-order mark, as Windows editors write one: the same as the file without it
    for name, text in (("c.json", '{"size": 9}'), ("c.toml", "size = 9\n")):
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert resolve_config(Cfg, file=str(tmp_path / name)) == Cfg(size=9)
    (tmp_path / "empty.json").write_text("\n")
    with pytest.raises(ConfigError) as info:
        resolve_config(Cfg, file=str(tmp_path / "empty.json"))
    one_line_message(info, "empty.json' is empty; write {} for no settings")


def test_a_file_giving_a_value_for_a_section_is_named_before_overrides_land_in_it(tmp_path):
    """``{"optim": 5}`` with ``--set optim.steps=2`` blamed the override ("'optim' is not a
    section"), a key the user typed right, and did not name the file."""
    (tmp_path / "c.json").write_text('{"optim": 5}')
    with pytest.raises(ConfigError) as info:
        resolve_config(Cfg, file=str(tmp_path / "c.json"), overrides=["optim.steps=2"])
    one_line_message(info, "config file '", "c.json': 'optim' is a section; give a table of "
                                             "its keys, not 5")


def test_a_wrong_type_in_a_config_file_is_refused_even_where_an_override_replaces_it(tmp_path):
    """hidden_size = "big" in the file passed when --hidden (an override) set the same key.
    Oracle: the same file without the override, refused for that key."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"model": {"hidden_size": "big"}}))
    for overrides in ([], ["model.hidden_size=8"]):
        with pytest.raises(ConfigError, match=r"model\.hidden_size' must be an integer; got "
                                              r"'big'") as refused:
            resolve_config(_lm_config(), file=str(path), overrides=overrides)
        assert str(path) in str(refused.value)


def _lm_config():
    from rnnkit.tasks.lm.task import LMConfig

    return LMConfig


@pytest.mark.parametrize("values, message", [
    (None, "a config must be a dict of settings (key: value); got NoneType"),
    ([1], "a config must be a dict of settings (key: value); got list"),
    ({1: 2}, "config keys are names; got the key 1"),
])
def test_a_config_that_is_not_a_dict_of_named_settings_is_refused(values, message):
    """AttributeErrors and "can only concatenate str" before (probe, 2026-12-08). Oracle: a
    dict of the same kind of settings builds."""
    from rnnkit.training import TrainConfig

    assert config_from_dict(TrainConfig, {"max_steps": 2}).max_steps == 2
    with pytest.raises(ConfigError) as info:
        config_from_dict(TrainConfig, values)
    assert str(info.value) == message


def test_overrides_given_as_one_text_are_refused_not_split_into_characters():
    """It said "override 'l' must look like key=value". Oracle: the same text in a list."""
    from rnnkit.training import TrainConfig

    assert resolve_config(TrainConfig, overrides=["learning_rate=0.5"]).learning_rate == 0.5
    with pytest.raises(ConfigError, match=r"overrides must be a list of key=value texts, such "
                                          r"as \['learning_rate=0.5'\]; got one text"):
        resolve_config(TrainConfig, overrides="learning_rate=0.5")
