"""A msgspec ValidationError about the settings, as one line naming the key, where it came from and the value."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

import msgspec
from msgspec import inspect as mi

_AT = re.compile(r"(?s)(.*?)(?: - at `\$([^`]*)`)?")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_SETTING = re.compile(r"[^.\[]+\.[^.\[]+")  # 'limits.safelist' of 'limits.safelist[2]'
_MISSING = object()
_KIND_NAMES: dict[type, str] = {
    mi.IntType: "an integer",
    mi.FloatType: "a number",
    mi.StrType: "a string",
    mi.BoolType: "true or false",
    mi.VarTupleType: "a list",
    mi.StructType: "a table",
}


def explain(
    exc: msgspec.ValidationError, schema: mi.StructType, raw: object, origin: Mapping[str, str], at: str = ""
) -> str:
    """'Expected `int`, got `str` - at `$.server.port`' -> "server.port (from --port): expected an integer, got 'x'".

    `raw` is what was decoded (to show the value), `origin` which variable or flag set a 'section.key',
    `at` the path of `raw` within the schema when only a part was decoded. An error raised by a
    `__post_init__` names its field with `field` and says what is wrong with `reason`."""
    match = _AT.fullmatch(str(exc))
    assert match is not None  # the pattern matches any text
    message, path = match[1], at + (match[2] or "")
    field, reason = getattr(exc.__cause__, "field", None), getattr(exc.__cause__, "reason", None)
    if isinstance(field, str) and isinstance(reason, str):
        path, message = f"{path}.{field}", reason
    elif unknown := re.fullmatch(r"Object contains unknown field `(.*)`", message):
        table = _type_at(schema, path)
        known = [f.encode_name for f in table.fields] if isinstance(table, mi.StructType) else []
        near = difflib.get_close_matches(unknown[1], known, n=1, cutoff=0.6)
        hint = f"did you mean {near[0]}?" if near else f"known: {', '.join(known)}"
        message = f"unknown {'key' if path else 'section'} ({hint})"
        path = f"{path}.{unknown[1]}"
    elif missing := re.fullmatch(r"Object missing required field `(.*)`", message):
        message = f"missing required key {missing[1]!r}"
    else:
        message = _reworded(message, _type_at(schema, path), _value_at(raw, path))
    key = path.lstrip(".")
    setting = _SETTING.match(key)
    where = origin.get(setting[0]) if setting else None
    return f"{key}{f' (from {where})' if where else ''}: {message}"


def _reworded(message: str, kind: mi.Type | None, value: object) -> str:
    """msgspec's words about a value, in ours, with the value shown."""
    if value is _MISSING or kind is None:
        return message.replace("`", "")
    if not message.startswith(("Expected `", "Invalid enum value")):
        return message  # a dec_hook's, already naming the value
    if isinstance(kind, mi.LiteralType):
        return f"must be one of {', '.join(map(str, kind.values))}, got {show(value)}"
    if ", got `" in message:
        return f"expected {kind_name(kind)}, got {show(value)}"
    low, high = getattr(kind, "ge", None), getattr(kind, "le", None)
    if low is not None and high is not None:
        return f"must be between {_number(low)} and {_number(high)}, got {show(value)}"
    if low is not None:
        return f"must be at least {_number(low)}, got {show(value)}"
    if high is not None:
        return f"must be at most {_number(high)}, got {show(value)}"
    return message.replace("`", "")


def _type_at(schema: mi.StructType, path: str) -> mi.Type | None:
    kind: mi.Type | None = schema
    for name, index in _STEP.findall(path):
        kind = unwrap(kind)[0] if kind is not None else None
        if name and isinstance(kind, mi.StructType):
            kind = next((f.type for f in kind.fields if f.encode_name == name), None)
        elif index and isinstance(kind, mi.VarTupleType):
            kind = kind.item_type
        else:
            return None
    return unwrap(kind)[0] if kind is not None else None


def _value_at(raw: object, path: str) -> object:
    for name, index in _STEP.findall(path):
        if name and isinstance(raw, dict) and name in raw:
            raw = raw[name]
        elif index and isinstance(raw, list) and int(index) < len(raw):
            raw = raw[int(index)]
        else:
            return _MISSING
    return raw


def unwrap(kind: mi.Type) -> tuple[mi.Type, str]:
    """A field's type without its Meta, and the Meta's description ('' when none)."""
    if isinstance(kind, mi.Metadata):
        return kind.type, str((kind.extra_json_schema or {}).get("description", ""))
    return kind, ""


def kind_name(kind: mi.Type | None) -> str:
    """'an integer', 'a list', ... for an error message."""
    if isinstance(kind, mi.UnionType):  # `str | None`: None is the default, never written
        kind = next((k for k in kind.types if not isinstance(k, mi.NoneType)), kind)
    return _KIND_NAMES.get(type(kind), "a value of another type")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def show(value: object) -> str:
    """A value as an error message shows it: TOML's true/false, a string quoted, a long one cut."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."
