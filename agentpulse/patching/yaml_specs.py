"""Patch specs from a YAML (or JSON) file: instrument your own client with no Python.

``agentpulse.init(patch_specs=["llm.yaml"])`` (or ``AGENTPULSE_PATCH_SPECS=llm.yaml``,
comma-separated) reads each file at ``init()``; a bad file fails ``init()`` with
a ``PatchSpecError`` (a ``ConfigError``) naming the file, the entry and the field.

A file is a list of entries, or a mapping with a ``specs:`` list::

    specs:
      - module: acme.llm            # import name of the module defining the target
        target: AcmeClient.complete # Class.method or function
        provider: acme
        operation: chat             # optional, default chat
        is_async: false             # optional
        stream: never               # optional: never | kwarg | always
        model: kwargs.model
        input_tokens: result.usage.prompt_tokens
        output_tokens: result.usage.completion_tokens
        finish_reason: result.choices.0.finish_reason

Field values are dotted paths whose first word says where to read:
``args`` (positional arguments after ``self``; ``args.0``), ``kwargs``,
``self`` (the instance), ``result`` (the return value) and, for streams,
``chunk`` (each chunk; the last value seen wins, and a ``chunk`` path given
for ``output`` is joined as text). A segment is an attribute, a mapping key or
a list index. Fields: ``model``, ``response_model``, ``input_tokens`` (all
billed input, cache included), ``output_tokens`` (reasoning included),
``cache_read_tokens``, ``cache_write_tokens``, ``reasoning_tokens``,
``finish_reason``, ``temperature``, ``max_tokens``, ``cost_usd`` (a cost your
client reports), ``input`` and ``output`` (recorded only with
``capture_messages=True``).
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from pydantic import ValidationError

from ..config import Config, ConfigError
from .spec import PatchSpec, StreamState

__all__ = ["PatchSpecError", "load_spec_file", "load_user_specs"]

_ROOTS = ("args", "kwargs", "self", "result", "chunk")
_SEGMENT = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_\-]*|\d+)$")

#: Field -> how its value is kept: "int", "float", "str" or "any".
FIELDS: Dict[str, str] = {
    "model": "str",
    "response_model": "str",
    "input_tokens": "int",
    "output_tokens": "int",
    "cache_read_tokens": "int",
    "cache_write_tokens": "int",
    "reasoning_tokens": "int",
    "finish_reason": "str",
    "temperature": "float",
    "max_tokens": "int",
    "cost_usd": "float",
    "input": "any",
    "output": "any",
}
_SETTINGS = (
    "module",
    "target",
    "provider",
    "operation",
    "library",
    "is_async",
    "stream",
    "stream_kwarg",
    "distribution",
    "min_version",
    "max_version",
)
_REQUIRED = ("module", "target", "provider")

Path_ = Tuple[str, Tuple[Union[str, int], ...]]


class PatchSpecError(ConfigError):
    """A patch spec file cannot be used. ``file``, ``entry`` (0-based index, or None for
    the file as a whole), ``target`` and ``field`` say where; the message says why.

    Example::

        try:
            agentpulse.init(patch_specs=["llm.yaml"])
        except agentpulse.ConfigError as exc:
            print(exc)   # ... llm.yaml, entry 0 (target 'Client.complete'), field 'input_tokens': ...
    """

    def __init__(
        self,
        file: Union[str, Path],
        problem: str,
        *,
        entry: Optional[int] = None,
        target: Optional[str] = None,
        field: Optional[str] = None,
    ) -> None:
        self.file = str(file)
        self.entry = entry
        self.target = target
        self.field = field
        self.problem = problem
        where = [f"file {self.file}"]
        if entry is not None:
            where.append(f"entry {entry}" + (f" (target {target!r})" if target else ""))
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__("patch_specs", self.file, "a valid patch spec: " + ", ".join(where) + f": {problem}")


# -- reading paths --------------------------------------------------------------------


def _parse_path(text: Any) -> Path_:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a dotted path such as `result.usage.prompt_tokens`")
    parts = text.strip().split(".")
    root = parts[0]
    if root not in _ROOTS:
        raise ValueError(f"a path starting with one of {', '.join(_ROOTS)} (got {text!r})")
    segs: List[Union[str, int]] = []
    for seg in parts[1:]:
        if not _SEGMENT.match(seg):
            raise ValueError(f"a path of names and indexes (bad segment {seg!r} in {text!r})")
        segs.append(int(seg) if seg.isdigit() else seg)
    if root == "args" and (not segs or not isinstance(segs[0], int)):
        raise ValueError(f"`args.<index>`, e.g. `args.0` (got {text!r})")
    return root, tuple(segs)


def _resolve(obj: Any, segs: Sequence[Union[str, int]]) -> Any:
    for seg in segs:
        if obj is None:
            return None
        if isinstance(seg, int):
            if isinstance(obj, (list, tuple)):
                obj = obj[seg] if -len(obj) <= seg < len(obj) else None
                continue
            if isinstance(obj, Mapping):
                obj = obj.get(seg, obj.get(str(seg)))
                continue
            obj = getattr(obj, str(seg), None)
        elif isinstance(obj, Mapping):
            obj = obj.get(seg)
        else:
            obj = getattr(obj, seg, None)
    return obj


def _keep(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "int":
        if type(value) is int and value >= 0:
            return value
        if type(value) is float and value.is_integer() and value >= 0:
            return int(value)
        return None
    if kind == "float":
        return float(value) if type(value) in (int, float) else None
    if kind == "str":
        return value if type(value) is str and value else None
    return value


def _fields_from(paths: List[Tuple[str, Tuple[Union[str, int], ...]]], obj: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, segs in paths:
        v = _keep(FIELDS[name], _resolve(obj, segs))
        if v is not None:
            out[name] = v
    if "cost_usd" in out:
        out["cost_source"] = "provider"
    return out


class _PathStreamState(StreamState):
    """A stream read through ``chunk.*`` paths: last value wins; ``output`` is joined."""

    def __init__(self, paths: List[Tuple[str, Tuple[Union[str, int], ...]]]) -> None:
        self.paths = [(n, s) for n, s in paths if n != "output"]
        self.text_path = next((s for n, s in paths if n == "output"), None)
        self.values: Dict[str, Any] = {}
        self.parts: List[str] = []

    def record(self, chunk: Any) -> bool:
        for name, segs in self.paths:
            v = _keep(FIELDS[name], _resolve(chunk, segs))
            if v is not None:
                self.values[name] = v
        if self.text_path is None:
            return True
        text = _resolve(chunk, self.text_path)
        if isinstance(text, str) and text:
            self.parts.append(text)
            return True
        return False

    def result(self) -> Dict[str, Any]:
        out = dict(self.values)
        if "cost_usd" in out:
            out["cost_source"] = "provider"
        if self.parts:
            out["output"] = "".join(self.parts)
        return out


# -- building specs -------------------------------------------------------------------


def _build(entry: Mapping[str, Any], file: str, index: int) -> PatchSpec:
    target = entry.get("target") if isinstance(entry.get("target"), str) else None
    for key in entry:
        if key not in FIELDS and key not in _SETTINGS:
            close = difflib.get_close_matches(str(key), [*_SETTINGS, *FIELDS], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PatchSpecError(file, f"unknown key{hint}", entry=index, target=target, field=str(key))
    for key in _REQUIRED:
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise PatchSpecError(file, "required, a non-empty string", entry=index, target=target, field=key)
    stream = entry.get("stream", "never")
    if stream not in ("never", "kwarg", "always"):
        raise PatchSpecError(file, "one of never, kwarg, always", entry=index, target=target, field="stream")
    by_root: Dict[str, List[Tuple[str, Tuple[Union[str, int], ...]]]] = {r: [] for r in _ROOTS}
    for name in FIELDS:
        if name not in entry:
            continue
        try:
            root, segs = _parse_path(entry[name])
        except ValueError as exc:
            raise PatchSpecError(file, str(exc), entry=index, target=target, field=name) from None
        if root == "chunk" and stream == "never":
            raise PatchSpecError(
                file,
                "a `chunk.` path needs `stream: kwarg` or `stream: always`",
                entry=index,
                target=target,
                field=name,
            )
        by_root[root].append((name, segs))
    inst_paths = by_root["self"]
    res_paths = by_root["result"]
    chunk_paths = by_root["chunk"]
    in_path = next(((r, s) for r in ("args", "kwargs") for n, s in by_root[r] if n == "input"), None)
    res_fields = [(n, s) for n, s in res_paths if n != "output"]
    out_path = next((s for n, s in res_paths if n == "output"), None)
    kw_only = [(n, s) for n, s in by_root["kwargs"] if n != "input"]
    arg_only = [(n, s) for n, s in by_root["args"] if n != "input"]

    def extract_request(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        out = _fields_from(arg_only, args)
        out.update(_fields_from(kw_only, kwargs))
        return out

    def extract_input(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        if in_path is None:
            return None
        root, segs = in_path
        return _resolve(args if root == "args" else kwargs, segs)

    def extract_response(result: Any) -> Dict[str, Any]:
        return _fields_from(res_fields, result)

    def extract_output(result: Any) -> Any:
        return _resolve(result, out_path) if out_path is not None else None

    def extract_instance(instance: Any) -> Dict[str, Any]:
        return _fields_from(inst_paths, instance)

    def stream_state(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> StreamState:
        return _PathStreamState(chunk_paths)

    settings: Dict[str, Any] = {k: entry[k] for k in _SETTINGS if k in entry}
    settings.setdefault("library", str(entry["module"]).split(".")[0])
    if kw_only or arg_only:
        settings["extract_request"] = extract_request
    if res_fields:
        settings["extract_response"] = extract_response
    if inst_paths:
        settings["extract_instance"] = extract_instance
    if in_path is not None:
        settings["extract_input"] = extract_input
    if out_path is not None:
        settings["extract_output"] = extract_output
    if stream != "never":
        settings["stream_state"] = stream_state
    try:
        return PatchSpec(**settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = str(err["loc"][0]) if err["loc"] else None
        msg = str(err.get("msg", "invalid")).replace("Value error, ", "")
        raise PatchSpecError(file, msg, entry=index, target=target, field=loc) from None


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PatchSpecError(path, f"cannot be read ({exc.strerror or exc})") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise PatchSpecError(path, f"is not valid JSON ({exc})") from None
    try:
        import yaml
    except ImportError:
        raise PatchSpecError(
            path, "reading YAML needs PyYAML (pip install 'agentpulse[yaml]'), or give a .json file"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PatchSpecError(path, f"is not valid YAML ({exc})".replace("\n", " ")) from None


def load_spec_file(path: Union[str, Path]) -> List[PatchSpec]:
    """Read and validate one file of patch specs. Raises ``PatchSpecError``."""
    p = Path(path).expanduser()
    data = _read(p)
    if isinstance(data, Mapping) and "specs" in data:
        extra = [k for k in data if k != "specs"]
        if extra:
            raise PatchSpecError(p, f"unknown top-level key {extra[0]!r} (only `specs`)")
        data = data["specs"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise PatchSpecError(p, "must hold a list of entries (or `specs:` with a list)")
    specs: List[PatchSpec] = []
    seen: Dict[str, int] = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, Mapping):
            raise PatchSpecError(p, "must be a mapping of keys to values", entry=i)
        spec = _build(entry, str(p), i)
        if spec.key in seen:
            raise PatchSpecError(
                p, f"the same target as entry {seen[spec.key]}", entry=i, target=spec.target, field="target"
            )
        seen[spec.key] = i
        specs.append(spec)
    return specs


_cache: Dict[Tuple[str, int, int], List[PatchSpec]] = {}


def load_user_specs(config: Config) -> List[PatchSpec]:
    """Every spec of ``config.patch_specs``, validated (cached per file version).

    Raises ``PatchSpecError`` (a ``ConfigError``) for the first bad file.
    """
    out: List[PatchSpec] = []
    for path in config.patch_specs:
        p = Path(path).expanduser()
        try:
            st = p.stat()
            key: Optional[Tuple[str, int, int]] = (str(p.resolve()), st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key is not None and key in _cache:
            out.extend(_cache[key])
            continue
        specs = load_spec_file(p)
        if key is not None:
            _cache[key] = specs
        out.extend(specs)
    return out
