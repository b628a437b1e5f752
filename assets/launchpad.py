"""Each asset's stage config as its Dagster config: the Launchpad shows the profile's values, a run may edit them.

``config_schema(spec, profile)`` derives the schema from the stage's pydantic config class
(``StageSpec.load_config_class``): a nested config class becomes a nested shape, a ``Literal`` of
strings an enum (a drop-down in the Launchpad), ``list``/``tuple`` an array, ``dict`` a map (str or
int keys), ``Any`` any value. Every leaf's ``default_value`` is the profile's effective value,
``stage_config(spec, profile)`` dumped as JSON (the profile section over the class defaults, ``{home}``
substituted: the code location and its runs share FACTORY_HOME), so the Launchpad scaffolds the
profile's config and a user edits e.g. ``base_checkpoint.train.steps``. Inside a list of configs
(``dpo.runs``) an element's fields default to the class's own values.

Why explicit ``dg.Field``s and not a generated ``dg.Config`` subclass: Dagster's Pythonic config
needs every nested class to be a ``dg.Config`` and has no tuples, so each stage config class would be
re-created as a second pydantic model with the profile's values poked in as defaults, and its
validated instance dumped again. Fields carry the defaults and descriptions as they are, and the
run's config reaches the asset as a plain dict that the stage's own class validates (one validator).

Dagster fills every field a run config leaves out with its default and refuses an unknown key
(naming its path) before the run starts; the asset hands the complete config to
``factory.stages.with_stage_config``, which replaces the stage's section for that materialization
and validates values (bounds, cross-field checks) with the stage's class. An unedited run therefore
has exactly the profile's config, key and artifact; an edited one gets a new key and artifact, and
the asset's ref moves to it until the next materialization with the profile's values moves it back.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

import dagster as dg
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from factory.config import Profile
from factory.stages import StageSpec, stage_config

_SCALARS: dict[Any, Any] = {bool: dg.Bool, int: dg.Int, float: dg.Float, str: dg.String}
_REQUIRED = object()  # a field with no default: the run config must give it (inside a list of configs)


def config_schema(spec: StageSpec, profile: Profile) -> dict[str, dg.Field]:
    """The asset's config schema: the stage's config class, the profile's values as defaults."""
    config = stage_config(spec, profile)
    return _fields(type(config), config.model_dump(mode="json"), spec.config_section)


def _fields(model: type[BaseModel], values: dict[str, Any] | None, path: str) -> dict[str, dg.Field]:
    """One field per field of ``model``. Defaults: ``values`` (a JSON dump of an instance), else the class's own."""
    fields = {}
    for key, info in _dumped_fields(model).items():
        if values is not None:
            default = values[key]
        elif info.is_required():
            default = _REQUIRED
        else:
            default = TypeAdapter(info.annotation).dump_python(info.get_default(call_default_factory=True), mode="json")
        fields[key] = _field(info.annotation, default, info.description, f"{path}.{key}")
    return fields


def _field(annotation: Any, default: Any, description: str | None, path: str) -> dg.Field:
    if _is_config_class(annotation):
        # The nested shape's own fields carry the defaults (a shape whose fields all have one is optional).
        return dg.Field(dg.Shape(_fields(annotation, None if default is _REQUIRED else default, path)),
                        description=description)
    config_type = _config_type(annotation, path)
    if default is _REQUIRED:
        return dg.Field(config_type, description=description)
    return dg.Field(config_type, default_value=_dagster_value(annotation, default), description=description)


def _config_type(annotation: Any, path: str) -> Any:
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if annotation is Any:
        return dg.Any
    if _is_config_class(annotation):
        return dg.Shape(_fields(annotation, None, path))
    if origin is Literal and all(isinstance(a, str) for a in args):
        # Named by its values (as Dagster names a Literal of its Pythonic config): equal names, equal enums.
        return dg.Enum(f"Literal{list(args)}", [dg.EnumValue(a) for a in args])
    if origin is list or (origin is tuple and len(set(args) - {Ellipsis}) == 1):
        return dg.Array(_config_type(args[0], f"{path}[]"))  # a tuple's length is the stage class's to check
    if origin is dict and args[0] in (str, int):
        return dg.Map(args[0], _config_type(args[1], f"{path}.*"))
    raise TypeError(f"{path}: no Launchpad config type for {annotation!r} (bool, int, float, str, Any, a config "
                    "class, a Literal of strings, or a list, tuple or str/int-keyed dict of these)")


def _dagster_value(annotation: Any, value: Any) -> Any:
    """A JSON-dumped value as its Dagster type holds it: int map keys back from JSON's strings."""
    origin, args = get_origin(annotation), get_args(annotation)
    if _is_config_class(annotation):
        fields = _dumped_fields(annotation)
        return {key: _dagster_value(fields[key].annotation, v) for key, v in value.items()}
    if origin in (list, tuple):
        return [_dagster_value(args[0], v) for v in value]
    if origin is dict:
        return {args[0](k): _dagster_value(args[1], v) for k, v in value.items()}
    return value


def _dumped_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A config class's fields by the names its JSON dump gives them (an alias such as ``async``)."""
    by_alias = model.model_config.get("serialize_by_alias")
    return {(info.serialization_alias if by_alias and info.serialization_alias else name): info
            for name, info in model.model_fields.items()}


def _is_config_class(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
