"""How a setting is declared: its one default, what it means, and the values it may take.

A typed config is a dataclass.  A field made with :func:`setting` is a *setting*: ``silk_ros.settings`` lists it in
the settings table, from which the node declares its ROS parameters (with descriptors), ``--set`` overrides and
params files are read, and ``config/*.yaml`` are checked.  A plain field is an option of the library only (SiLK's
fp16, ORB's pyramid...), never read from a file.  This module sits below every package that declares settings.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

__all__ = ["ConfigError", "setting", "setting_fields", "section_fields", "coerce_numbers"]

#: metadata key of a setting's description, range, choices and read-only flag
SETTING = "silk_ros.setting"


class ConfigError(ValueError):
    """A setting that is unknown, of the wrong type or out of range."""


def setting(
    default: Any,
    description: str,
    *,
    range: tuple[float, float] | None = None,  # noqa: A002 - the word a reader expects
    choices: tuple[str, ...] | None = None,
    read_only: bool = True,
) -> Any:
    """A dataclass field that is a setting.  ``range`` and ``choices`` are what a user may set (the node's
    descriptors; the configs validate what they need beyond that); ``read_only``: a running node cannot change it."""
    metadata = {SETTING: {"description": description, "range": range, "choices": choices, "read_only": read_only}}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def setting_fields(config_type: type) -> list[dataclasses.Field]:
    """The fields of ``config_type`` declared with :func:`setting`, in order."""
    return [f for f in dataclasses.fields(config_type) if SETTING in f.metadata]


def section_fields(config_type: type) -> list[dataclasses.Field]:
    """The fields of ``config_type`` that hold a nested typed config (extractor, matching, ...)."""
    return [f for f in dataclasses.fields(config_type) if f.default_factory is not dataclasses.MISSING
            and dataclasses.is_dataclass(f.default_factory())]


def coerce_numbers(config: Any) -> None:
    """YAML 1.1 reads ``1.0e6`` as a string and ROS parameters may give ints for floats: convert every numeric
    setting to its default's type in place (frozen dataclasses too), or say which one is not a number."""
    for f in setting_fields(type(config)):
        value, default = getattr(config, f.name), f.default
        if isinstance(default, bool) or not isinstance(default, (int, float)) or isinstance(value, bool):
            continue
        try:
            number = float(value) if isinstance(default, float) else int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{f.name} must be a number, got {value!r}") from None
        object.__setattr__(config, f.name, number)
