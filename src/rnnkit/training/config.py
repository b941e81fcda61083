"""Configs as dataclasses: loaded from a JSON/TOML file, overridden with dotted ``key=value``.

Every task describes its settings as (nested) dataclasses. This module turns them into plain
dicts for checkpoints and back, and applies overrides such as ``model.hidden_size=512`` or
``train.minutes=15`` from a file or the command line. Unknown keys are errors, not silently
ignored, because a misspelt option that does nothing is the worst kind of bug in a training run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit the config's dataclass."""


def config_to_dict(config) -> dict:
    """A JSON-able dict of a (nested) dataclass config."""
    return dataclasses.asdict(config)


def _field_types(cls) -> dict[str, Any]:
    # get_type_hints resolves the string annotations that `from __future__ import annotations`
    # leaves behind.
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def _strip_optional(kind):
    """``int | None`` -> (int, True); ``int`` -> (int, False)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(kind) if m is not type(None)]
        if len(members) == 1:
            return members[0], True
    return kind, False


#: the largest integer a setting may hold: past it torch and the checks that compare it with
#: a float (math.isfinite) fail with an overflow; a seed (0..2**64 - 1) needs the whole range
MAX_INTEGER = 2**64 - 1


def _shown(value) -> str:
    """``repr(value)``, cut short for an error message (a number of 5000 digits)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**60 else \
        f"a number of {len(str(abs(value)))} digits"
    return text if len(text) <= 80 else text[:77] + "..."


def _coerce(value, kind, key: str):
    """Check ``value`` (from JSON or a parsed override) against the field type ``kind``."""
    kind, optional = _strip_optional(kind)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key {key!r} cannot be null (it has no off setting)")
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} is a section; give a table of its keys, "
                              f"not {_shown(value)}")
        return config_from_dict(kind, value, prefix=f"{key}.")
    origin = typing.get_origin(kind) or (kind if kind in (list, tuple) else None)
    if origin is typing.Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise ConfigError(f"config key {key!r} must be one of {list(choices)}; got "
                              f"{_shown(value)}")
        return value
    if origin in (tuple, list):
        if origin is list and isinstance(value, str) and typing.get_args(kind) == (str,):
            value = [value]  # one name for a list of names (--set data.value_cols=sales)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list; got {_shown(value)}")
        item_kinds = typing.get_args(kind)
        if origin is tuple and item_kinds and item_kinds[-1] is not Ellipsis:
            if len(value) != len(item_kinds):
                raise ConfigError(f"config key {key!r} needs {len(item_kinds)} values; "
                                  f"got {len(value)}")
            return tuple(_coerce(v, k, key) for v, k in zip(value, item_kinds))
        item_kind = item_kinds[0] if item_kinds else Any
        items = [_coerce(v, item_kind, key) for v in value]
        return tuple(items) if origin is tuple else items
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false; got {_shown(value)}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer; got {_shown(value)}")
        if abs(value) > MAX_INTEGER:
            raise ConfigError(f"config key {key!r} must be at most 2**64 - 1 in size; got "
                              f"{_shown(value)}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number; got {_shown(value)}")
        try:
            return float(value)
        except OverflowError:  # an integer past float's range (1e308)
            raise ConfigError(f"config key {key!r} must be a number below 1e308; got "
                              f"{_shown(value)}") from None
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string; got {_shown(value)}")
        return value
    return value


def check_config_types(config, prefix: str = "") -> None:
    """Check every setting of the dataclass ``config`` (sections too) against its declared type,
    as a config file or ``--set`` is checked: a config built in Python is not. There, 2.5 rows
    per batch failed deep in slicing, ``normalize="no"`` normalized and ``True`` was taken as 1.
    NumPy numbers count as the Python numbers they hold."""
    kinds = _field_types(type(config))
    for name, kind in kinds.items():
        value = getattr(config, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_config_types(value, f"{prefix}{name}.")
            continue
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0 \
                and not isinstance(value, str):
            value = value.item()  # a NumPy (or one-value) number
        _coerce(value, kind, prefix + name)


def config_from_dict(cls: type[T], values: dict, *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``values``; missing keys keep their defaults."""
    if not isinstance(values, dict):  # None or a list failed with an AttributeError
        raise ConfigError(f"a config{' section ' + prefix.rstrip('.') if prefix else ''} must "
                          f"be a dict of settings (key: value); got {type(values).__name__}")
    text_keys = [key for key in values if not isinstance(key, str)]
    if text_keys:
        raise ConfigError(f"config keys are names; got the key {text_keys[0]!r}"
                          f"{' in ' + prefix.rstrip('.') if prefix else ''}")
    kinds = _field_types(cls)
    try:
        # Start from the class's own defaults, so that a nested section keeps the defaults its
        # parent chose (a task's TrainConfig) when only some of its keys are given.
        values = _merged(config_to_dict(cls()), values)
    except TypeError:  # a dataclass with required fields has no defaults to start from
        pass
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r}; valid keys here: "
            f"{', '.join(prefix + k for k in kinds)}"
        )
    return cls(**{name: _coerce(value, kinds[name], prefix + name)
                  for name, value in values.items()})


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.hidden_size=512"`` -> (["model", "hidden_size"], 512).

    The value is read as JSON when it parses (numbers, true/false, null, lists, quoted strings)
    and as a bare string otherwise, so ``cell=gru`` and ``cell="gru"`` both work.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key=value, e.g. train.minutes=15")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:  # not JSON: the text itself
        value = raw.strip()
    except ValueError:  # a number past Python's 4300 digits
        raise ConfigError(f"{key.strip()}={raw[:20]}... has {len(raw.strip())} characters; no "
                          f"setting takes a number that long") from None
    return key.strip().split("."), value


def _set_nested(values: dict, path: list[str], value) -> None:
    for part in path[:-1]:
        values = values.setdefault(part, {})
        if not isinstance(values, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {part!r} is not a section")
    if isinstance(value, dict) and isinstance(values.get(path[-1]), dict):
        _merge(values[path[-1]], value)  # a table for a section sets the keys it names
    else:
        values[path[-1]] = value


class _RepeatedKey(ValueError):
    """A key given twice in one JSON object (valid JSON, but one of the two would not count)."""


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    """One JSON object as a dict, a _RepeatedKey on a key given twice: json keeps the last
    value without a word, so of two settings one would silently not count (TOML refuses it)."""
    values = {}
    for key, value in pairs:
        if key in values:
            raise _RepeatedKey(key)
        values[key] = value
    return values


def read_config_file(path: str | os.PathLike) -> dict:
    """A JSON or TOML (``.toml``, any case) config file as a dict; other suffixes are read as
    JSON."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder; name a .json or .toml file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    suffix = path.suffix.lower()  # any other suffix is read as JSON
    try:
        # utf-8-sig: a byte-order mark, as some Windows editors write, is no setting
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text ({error.reason} at byte "
                          f"{error.start})") from None
    try:
        if suffix == ".toml":
            import tomllib  # Python >= 3.11

            return tomllib.loads(text)
        values = json.loads(text, object_pairs_hook=_refuse_duplicate_keys) if text.strip() else None
    except ImportError:
        raise ConfigError("TOML config files need Python >= 3.11; use a .json file") from None
    except _RepeatedKey as repeated:
        raise ConfigError(f"config file {str(path)!r} gives the key {repeated.args[0]!r} twice "
                          f"in one table; keep one") from None
    except ValueError as error:
        language = "TOML" if suffix == ".toml" else "JSON"
        hint = "" if suffix in (".json", ".toml") else " (a .toml file is read as TOML)"
        raise ConfigError(f"config file {str(path)!r} is not valid {language}: {error}{hint}") \
            from None
    if values is None:
        raise ConfigError(f"config file {str(path)!r} is empty; write {{}} for no settings")
    if not isinstance(values, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a table of keys")
    return values


def resolve_config(cls: type[T], *, base: dict | None = None, file: str | None = None,
                   overrides: list[str] = ()) -> T:
    """``cls`` defaults, then ``base`` (e.g. from a checkpoint), then a file, then overrides."""
    if isinstance(overrides, (str, bytes)):  # iterated as characters: "override 'l' ..."
        raise ConfigError(f"overrides must be a list of key=value texts, such as "
                          f"[{overrides!r}]; got one text")
    values = json.loads(json.dumps(base)) if base else {}
    if file is not None:
        from_file = read_config_file(file)
        _check_sections(cls, from_file, f"config file {str(file)!r}: ")
        if Path(file).suffix.lower() == ".toml":
            _toml_nulls(cls, from_file)
        # the file's keys and types on their own: an override of the same key would replace a
        # wrong value unseen, and the file would be accepted today and refused tomorrow
        try:
            config_from_dict(cls, from_file)
        except ConfigError as error:
            raise ConfigError(f"config file {str(file)!r}: {error}") from None
        _merge(values, from_file)
    for text in overrides:
        path, value = parse_override(text)
        kind = _kind_at(cls, path)
        if kind is not None:
            value = _typed_override(text.partition("=")[2], value, kind, ".".join(path))
        _set_nested(values, path, value)
    return config_from_dict(cls, values)


def _check_sections(cls, values: dict, source: str, prefix: str = "") -> None:
    """Each key of ``values`` that names a section of ``cls`` holds a table (checked before
    overrides land in it, so the error names the file, not a key the user typed)."""
    kinds = _field_types(cls)
    for key, value in values.items():
        kind, _ = _strip_optional(kinds.get(key))
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}{prefix + key!r} is a section; give a table of its "
                                  f"keys, not {_shown(value)}")
            _check_sections(kind, value, source, f"{prefix}{key}.")


def _toml_nulls(cls, values: dict) -> None:
    """TOML has no null: "none" or "null" (any case) there turns an optional setting off, as
    ``--set key=none`` does, in place. (A JSON file writes null.)"""
    kinds = _field_types(cls)
    for key, value in values.items():
        kind, optional = _strip_optional(kinds.get(key))
        if isinstance(value, dict) and dataclasses.is_dataclass(kind):
            _toml_nulls(kind, value)
        elif optional and isinstance(value, str) and value.strip().lower() in ("none", "null"):
            values[key] = None


def _kind_at(cls, path: list[str]):
    """The type of the field ``path`` names in dataclass ``cls``, or None if it names none
    (config_from_dict then reports the unknown key)."""
    kind = cls
    for part in path:
        kind, _ = _strip_optional(kind)
        if not dataclasses.is_dataclass(kind) or part not in _field_types(kind):
            return None
        kind = _field_types(kind)[part]
    return kind


def _typed_override(raw: str, parsed, kind, key: str):
    """An override's text read as its field's type, where JSON alone misreads the command
    line: ``.1`` and ``5.`` are numbers, ``None`` is null and ``True`` true, ``2024`` given to a
    text field is text, and an unquoted ``[a,b]`` for a list is an error, not one odd name."""
    kind, optional = _strip_optional(kind)
    text = raw.strip()
    if text in ("None", "none") and optional:
        return None
    if kind is str and not isinstance(parsed, str) and parsed is not None:
        return text  # a number or true/false where text belongs: the text as typed
    if kind is bool and text in ("True", "False"):  # Python's spelling
        return text == "True"
    if kind is float and isinstance(parsed, str):
        try:
            return float(text)
        except ValueError:
            return parsed  # config_from_dict names the key and the bad value
    origin = typing.get_origin(kind) or (kind if kind in (list, tuple) else None)
    if (origin is list and typing.get_args(kind) == (str,) and parsed is not None
            and not isinstance(parsed, (str, list))):
        return [text]  # one name that reads as a number or true/false: --set value_cols=2020
    if (origin is list and typing.get_args(kind) == (str,) and isinstance(parsed, list)
            and any(isinstance(item, (int, float)) for item in parsed)):
        # names that read as numbers inside a list ([2020, 2021]): each as typed, not 2020.0
        as_typed = json.loads(text, parse_int=str, parse_float=str, parse_constant=str)
        return [{True: "true", False: "false"}.get(item, item) if isinstance(item, bool)
                else item for item in as_typed]
    if origin in (list, tuple) and isinstance(parsed, str) and text.startswith("["):
        items = [item.strip() for item in text.strip("[]").split(",") if item.strip()]
        if typing.get_args(kind) and all(k is float for k in typing.get_args(kind)
                                         if k is not Ellipsis):
            try:  # numbers JSON refuses, as for one value: [.05,0.5,.95]
                return [float(item) for item in items]
            except ValueError:
                raise ConfigError(f"{key}={raw} is not a list of numbers; write e.g. "
                                  f"{key}=[0.1,0.5,0.9]") from None
        raise ConfigError(f"{key}={raw} is not a JSON list; quote each item, e.g. "
                          f'{key}=["a","b"] (or give one name alone)')
    return parsed


def _merged(base: dict, update: dict) -> dict:
    result = json.loads(json.dumps(base))
    _merge(result, update)
    return result


def _merge(into: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def make_paths_absolute(section, *names: str, builtin=()) -> None:
    """Replace each field ``names`` of ``section`` (a config dataclass) that names an existing
    file or folder by its absolute path, in place: the resolved config is saved with every
    checkpoint, and a relative path there would break evaluating or resuming the run from
    another folder. Names in ``builtin`` (the task's built-in datasets, any case) take their
    own spelling there, and None stays: the loaders take a built-in name before a file of that
    name, and so must the saved config (a file called ``kjv`` in the working folder used to
    replace the corpus)."""
    builtin = {name.lower(): name for name in builtin}
    for name in names:
        value = getattr(section, name)
        if value == "":  # Path("") is the working folder: every file there would be read
            raise ValueError(f"data.{name} is empty; name a file, a folder or a built-in "
                             f"dataset (or leave it out)")
        if isinstance(value, str) and value.lower() in builtin:
            # one spelling, so that a run started as KJV resumes as kjv
            setattr(section, name, builtin[value.lower()])
        elif isinstance(value, str) and value and Path(value).exists():
            setattr(section, name, str(Path(value).resolve()))


#: Upper bounds of a model's sizes. No machine holds a weight wider than MAX_WIDTH (and past
#: 2**63 torch fails deep inside with an overflow, not an out-of-memory error); a stack or
#: ensemble of more than MAX_COUNT members, each built in Python, would run for hours before
#: memory ran out.
MAX_WIDTH = 2**31 - 1
MAX_COUNT = 1024


def check_model_sizes(section, widths: tuple[str, ...] = (),
                      counts: tuple[str, ...] = ()) -> None:
    """Each field ``widths`` (hidden_size, ...) of ``section``, a task's model settings, in
    1..MAX_WIDTH and each field ``counts`` (layers, ensemble members) in 1..MAX_COUNT, or a
    one-line ValueError naming the setting (model.<field>)."""
    for name in (*widths, *counts):
        value = getattr(section, name)
        if value < 1:
            raise ValueError(f"model.{name} must be >= 1; got {value}")
        limit = MAX_WIDTH if name in widths else MAX_COUNT
        if value > limit:
            raise ValueError(f"model.{name} must be at most {limit:,}; got {value:,}")
