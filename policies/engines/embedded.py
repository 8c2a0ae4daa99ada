"""The ``embedded`` engine: the bundle evaluated in-process by rego-cpp (``regopy``).

Each bundle version is compiled once (``Interpreter.build``) into a regopy ``Bundle``; an
evaluation only sets the input and runs the compiled entrypoint (about a millisecond). One
interpreter serves all threads behind a lock: regopy calls release the GIL and an interpreter
is not safe to share concurrently.

rego-cpp quirks the shipped policy is written around (see policies/modelgate/lib/lib.rego):
the input is passed as JSON text (``set_input_term``) so strings keep the escaped form
rego-cpp expects; messages are built with ``concat`` (its ``sprintf`` may quote ``%s``
arguments); rego-cpp only reports parse and well-formedness errors when compiling (an undefined
function is simply undefined at run time), so ``policy check`` with the opa engine, or
``opa check``, is the stricter gate.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regopy import Interpreter, RegoError

from policies.bundle import Bundle
from policies.engines.base import BundleError, EvaluationError, PolicyResult
from policies.engines.common import ENTRYPOINT, ReloadingEngine, decode_result

_SMOKE_INPUT: dict[str, Any] = {
    "mode": "evaluate",
    "now": "2000-01-01T00:00:00Z",
    "today": "2000-01-01",
    "request": {},
    "workload": {
        "api_version": "v1",
        "kind": "ConfigMap",
        "name": "smoke",
        "namespace": "default",
        "labels": {},
        "annotations": {},
        "templates": [],
        "containers": [],
        "images": [],
        "storage_uris": [],
        "metadata": {},
        "metadata_sources": {},
        "model_label": False,
        "controlled": False,
        "owner_references": [],
    },
    "namespace": {"name": "default", "labels": {}},
    "enforcement": None,
}


_ERROR_RE = re.compile(r"\(error \d+:([^|\s()]+)\|(\d+)\|\d+\s*\(errormsg \d+:([^)]*)\)")


def _clean(message: str, sources: Mapping[str, str] | None = None) -> str:
    """rego-cpp's error S-expression as ``file:line:col: message`` lines."""
    text = str(message)
    found = _ERROR_RE.findall(text)
    if not found:
        lines = [line.rstrip() for line in text.splitlines()]
        return "\n".join(line for line in lines if line.strip())[:4000]
    out: list[str] = []
    for file, offset, msg in found:
        where = file
        source = (sources or {}).get(file)
        if source is not None:
            before = source.encode("utf-8")[: int(offset)].decode("utf-8", "replace")
            line = before.count("\n") + 1
            col = len(before) - (before.rfind("\n") + 1) + 1
            where = f"{file}:{line}:{col}"
        out.append(f"{where}: {msg.strip()}")
    return "; ".join(out)


#: what a metadata value that rego-cpp cannot parse as JSON is replaced with: invalid JSON,
#: never echoed in messages (it has a quote), no blanks or commas (so it is judged like the
#: original by the free-text rules)
_UNPARSEABLE = '{"modelgate:invalid-json-escape'
#: metadata fields the policy parses as JSON
_JSON_FIELDS = ("metrics", "certifications")
#: the blanks RE2's ``\\s`` matches (lib.trimmed removes them at both ends of a value)
_BLANKS = "\t\n\f\r "
_BLANK_CONTROL_RE = re.compile(r"[\t\n\f\r]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_NEEDS_CARE_RE = re.compile(r"[\x00-\x1f\x7f\\]")


def _plain_text(value: str) -> str:
    """A free-text metadata value as rego-cpp can judge it like OPA judges the original.

    rego-cpp sees strings in their JSON-escaped form: a tab is the two characters of ``\\t``
    (so ``\\s`` does not match it) and a backslash that is not a JSON escape aborts
    ``trim_space``/``json.is_valid``. So: blanks at both ends are removed (as lib.trimmed
    does), a blank control character inside becomes a space and a quote (still a blank, still
    not echoed), any other control character and every backslash become a quote (not a blank,
    not echoed, valid or invalid for every rule exactly like the original)."""
    value = value.strip(_BLANKS)
    value = _BLANK_CONTROL_RE.sub(' "', value)
    return _CONTROL_RE.sub('"', value).replace("\\", '"')


def _json_strings(doc: Any) -> Any:
    """Every string of a parsed JSON annotation as rego-cpp can judge it: a blank one stays
    blank, otherwise control characters and backslashes become quotes (never echoed)."""
    if isinstance(doc, str):
        if doc.strip(_BLANKS) == "":
            return ""
        return _CONTROL_RE.sub('"', doc).replace("\\", '"')
    if isinstance(doc, list):
        return [_json_strings(v) for v in doc]
    if isinstance(doc, dict):
        return {_json_strings(k): _json_strings(v) for k, v in doc.items()}
    return doc


def _json_text(value: str) -> str:
    """A JSON metadata value (metrics, certifications) as rego-cpp can judge it like OPA."""
    value = value.strip(_BLANKS)
    try:
        return json.dumps(_json_strings(json.loads(value)), ensure_ascii=False)
    except ValueError:
        pass
    text = _plain_text(value)  # not JSON: shown like the original, if it is shown at all
    try:
        json.loads(text)
    except ValueError:
        return text
    return _UNPARSEABLE  # quotes for backslashes made it JSON: keep it invalid


def _needs_fixing(key: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if key in _JSON_FIELDS:
        return "\\u" in value or _NEEDS_CARE_RE.search(value) is not None
    return _NEEDS_CARE_RE.search(value) is not None


def _rego_cpp_safe(policy_input: Mapping[str, Any]) -> Mapping[str, Any]:
    """The policy input with metadata values rego-cpp would misjudge or abort on rewritten so
    that it decides like OPA on the originals (free text: :func:`_plain_text`; JSON fields:
    :func:`_json_text`). Anything else is passed unchanged."""
    workload = policy_input.get("workload")
    if not isinstance(workload, Mapping):
        return policy_input
    metadata = workload.get("metadata")
    if not isinstance(metadata, Mapping):
        return policy_input
    if not any(_needs_fixing(k, v) for k, v in metadata.items()):
        return policy_input
    fixed: dict[str, Any] = {}
    for key, value in metadata.items():
        if _needs_fixing(key, value):
            value = _plain_text(value) if key not in _JSON_FIELDS else _json_text(value)
        fixed[key] = value
    return {**policy_input, "workload": {**workload, "metadata": fixed}}


@dataclass
class _Compiled:
    bundle: Bundle
    program: Any  # regopy.Bundle
    interpreter: Interpreter


def compile_bundle(bundle: Bundle, entrypoints: tuple[str, ...] = (ENTRYPOINT,)) -> Any:
    """Compile the served modules and data of ``bundle``; BundleError with rego-cpp's message."""
    builder = Interpreter()
    try:
        builder.add_data_json(bundle.data_json())
        for relpath, source in sorted(bundle.modules.items()):
            builder.add_module(relpath, source)
        program = builder.build(None, list(entrypoints))
    except RegoError as e:
        message = _clean(str(e), bundle.modules)
        raise BundleError(f"policy bundle in {bundle.root} does not compile: {message}") from e
    if not program.ok():
        raise BundleError(f"policy bundle in {bundle.root} does not compile")
    return program


def _run(interpreter: Interpreter, program: Any, input_json: str) -> Any:
    try:
        interpreter.set_input_term(input_json)
        output = interpreter.query_bundle_entrypoint(program, ENTRYPOINT)
    except RegoError as e:
        raise EvaluationError(f"rego-cpp evaluation failed: {_clean(str(e))}") from e
    except json.JSONDecodeError as e:
        raise EvaluationError(f"rego-cpp returned a result that is not JSON: {e}") from e
    if not output.ok():
        raise EvaluationError(f"rego-cpp evaluation failed: {_clean(str(output))}")
    results = output.results
    if not results:
        return None
    expressions = results[0].expressions
    return expressions[0] if expressions else None


class EmbeddedEngine(ReloadingEngine):
    """In-process Rego via rego-cpp. Thread-safe; compile once per bundle version."""

    name = "embedded"

    def __init__(self, policy_dir: Path) -> None:
        super().__init__(policy_dir)
        self._compiled: _Compiled | None = None
        self._eval_lock = threading.Lock()
        self.load_initial()

    def _activate(self, bundle: Bundle) -> None:
        program = compile_bundle(bundle)
        interpreter = Interpreter()
        # smoke run: a bundle that cannot even answer for a trivial input is rejected here
        try:
            decode_result(_run(interpreter, program, json.dumps(_SMOKE_INPUT)), bundle.digest)
        except EvaluationError as e:
            raise BundleError(f"policy bundle in {bundle.root} gives no usable answer: {e}") from e
        with self._eval_lock:
            self._compiled = _Compiled(bundle=bundle, program=program, interpreter=interpreter)

    def ready(self) -> bool:
        return self._compiled is not None

    def evaluate(self, policy_input: Mapping[str, Any]) -> PolicyResult:
        try:
            input_json = json.dumps(
                _rego_cpp_safe(policy_input), ensure_ascii=False, allow_nan=False
            )
        except (TypeError, ValueError) as e:
            raise EvaluationError(f"policy input is not JSON-serialisable: {e}") from e
        with self._eval_lock:
            compiled = self._compiled
            if compiled is None:
                reason = self.last_error or "not loaded"
                raise EvaluationError(f"no policy bundle loaded from {self.policy_dir}: {reason}")
            doc = _run(compiled.interpreter, compiled.program, input_json)
        return decode_result(doc, compiled.bundle.digest)
