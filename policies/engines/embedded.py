"""The ``embedded`` engine: the bundle evaluated by rego-cpp (``regopy``), in evaluator
processes of its own.

rego-cpp cannot be interrupted and crashes on some inputs (a segmentation fault takes the whole
process with it), so evaluations never run in the serving process: a small pool of evaluator
processes (``python -m policies.engines.embedded``, :class:`_Evaluator`) each compiles the
bundle once (``Interpreter.build``) and then answers one input at a time over a pipe. An
evaluation past its deadline is stopped by killing its evaluator; a crashed or killed evaluator
is replaced in the background. Either way the caller gets an :class:`EvaluationError` at once
(:class:`EvaluationTimeout`, :class:`EvaluatorCrashed`), which the webhook answers with its
failure mode. A new bundle gets a new pool (compiled and smoke-tested before it serves); the old
one retires when its evaluations are done.

rego-cpp quirks the shipped policy is written around (see policies/modelgate/lib/lib.rego):
the input is passed as JSON text (``set_input_term``) so strings keep the escaped form
rego-cpp expects; messages are built with ``concat`` (its ``sprintf`` may quote ``%s``
arguments); rego-cpp only reports parse and well-formedness errors when compiling (an undefined
function is simply undefined at run time), so ``policy check`` with the opa engine, or
``opa check``, is the stricter gate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from regopy import Interpreter, RegoError

from policies.bundle import Bundle
from policies.engines.base import (
    BundleError,
    EvaluationError,
    EvaluationTimeout,
    EvaluatorCrashed,
)
from policies.engines.common import ENTRYPOINT, ReloadingEngine, smoke_test

log = logging.getLogger(__name__)


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


def compile_bundle(bundle: Bundle, entrypoints: tuple[str, ...] = (ENTRYPOINT,)) -> Any:
    """Compile the served modules and data of ``bundle``; BundleError with rego-cpp's message."""
    builder = Interpreter()
    try:
        builder.add_data_json(json.dumps(bundle.served_data(), sort_keys=True, ensure_ascii=False))
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


# --- the evaluator process -----------------------------------------------------------------


def _smoke(program: Any, bundle: Bundle) -> None:
    """A bundle that cannot answer for a trivial input, or without its digest, is refused."""
    smoke_test(bundle, lambda policy_input: _run(Interpreter(), program, json.dumps(policy_input)))


def _bundle_message(bundle: Bundle) -> bytes:
    return (
        json.dumps(
            {
                "root": str(bundle.root),
                "modules": dict(bundle.modules),
                "data": bundle.data,
                "digest": bundle.digest,
            },
            ensure_ascii=False,
        ).encode("utf-8")
        + b"\n"
    )


def _serve(stdin: IO[bytes], out: IO[bytes]) -> int:
    """The evaluator loop: the bundle on the first line, then one input per line, one JSON
    answer line each (``{"ok": true}`` / ``{"doc": ...}`` / ``{"error": "..."}``)."""

    def reply(message: Mapping[str, Any]) -> None:
        out.write(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")
        out.flush()

    init = json.loads(stdin.readline())
    bundle = Bundle(
        root=Path(init["root"]),
        modules=init["modules"],
        test_modules={},
        data=init["data"],
        data_files={},
        digest=init["digest"],
    )
    try:
        program = compile_bundle(bundle)
        _smoke(program, bundle)
    except BundleError as e:
        reply({"error": str(e)})
        return 1
    reply({"ok": True})
    interpreter = Interpreter()
    for line in stdin:
        try:
            reply({"doc": _run(interpreter, program, line.decode("utf-8"))})
        except EvaluationError as e:
            reply({"error": str(e)})
    return 0


def _main() -> int:
    # the protocol owns the real stdout; anything rego-cpp prints goes to stderr
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this ends
    return _serve(sys.stdin.buffer, out)


class _Evaluator:
    """One evaluator process and the pipe protocol to it (used by one thread at a time)."""

    def __init__(self, bundle: Bundle, start_timeout: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "policies.engines.embedded"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        self._buffer = b""
        self.evaluations = 0
        try:
            answer = self._exchange(_bundle_message(bundle), time.monotonic() + start_timeout)
        except EvaluationError as e:
            self.kill()
            raise BundleError(f"the rego-cpp evaluator did not start: {e}") from e
        if "error" in answer:
            self.kill()
            raise BundleError(str(answer["error"]))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EvaluationTimeout("the evaluator did not take its input in time")
            _, writable, _ = select.select([], [self._in], [], remaining)
            if not writable:
                continue
            try:
                view = view[os.write(self._in, view) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError) as e:
                raise EvaluatorCrashed(f"the evaluator died ({self._exit()})") from e

    def _read_line(self, deadline: float) -> bytes:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EvaluationTimeout("the evaluator did not answer in time")
            readable, _, _ = select.select([self._out], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self._out, 1 << 16)
            if not chunk:
                raise EvaluatorCrashed(f"the evaluator died ({self._exit()})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _exit(self) -> str:
        try:
            code = self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "no exit status"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def _exchange(self, message: bytes, deadline: float) -> dict[str, Any]:
        self._write(message, deadline)
        answer = json.loads(self._read_line(deadline))
        if not isinstance(answer, dict):
            raise EvaluationError("the evaluator answered something that is not an object")
        return answer

    def evaluate(self, input_json: bytes, deadline: float) -> Any:
        self.evaluations += 1
        answer = self._exchange(input_json + b"\n", deadline)
        if "error" in answer:
            raise EvaluationError(str(answer["error"]))
        return answer.get("doc")

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("evaluator %d did not exit after SIGKILL", self.proc.pid)


class _Pool:
    """The evaluators of one bundle version."""

    def __init__(self, bundle: Bundle, size: int, start_timeout: float = 60.0) -> None:
        self.bundle = bundle
        self.size = max(1, size)
        self.start_timeout = start_timeout
        self._idle: queue.Queue[_Evaluator] = queue.Queue()
        self._lock = threading.Lock()
        self._retired = False
        self._all: set[_Evaluator] = set()
        self.restarts = 0
        first = _Evaluator(bundle, start_timeout)  # a bundle that does not compile stops here
        self._add(first)
        for _ in range(self.size - 1):
            self._add(_Evaluator(bundle, start_timeout))

    @property
    def digest(self) -> str:
        return self.bundle.digest

    def pids(self) -> set[int]:
        with self._lock:
            return {e.pid for e in self._all}

    def _add(self, evaluator: _Evaluator) -> None:
        with self._lock:
            if self._retired:
                evaluator.kill()
                return
            self._all.add(evaluator)
        self._idle.put(evaluator)

    def _replace_later(self) -> None:
        def start() -> None:
            delay = 0.2
            while not self._retired:
                try:
                    self._add(_Evaluator(self.bundle, self.start_timeout))
                    return
                except BundleError as e:
                    log.error("could not restart a rego-cpp evaluator: %s", e)
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)

        threading.Thread(target=start, name="rego-evaluator-start", daemon=True).start()

    def evaluate(self, input_json: bytes, deadline: float) -> Any:
        try:
            evaluator = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty as e:
            raise EvaluationTimeout(
                f"none of the {self.size} rego-cpp evaluators was free before the deadline"
            ) from e
        try:
            doc = evaluator.evaluate(input_json, deadline)
        except (EvaluationTimeout, EvaluatorCrashed, OSError, ValueError) as e:
            self._discard(evaluator, e)
            raise
        except EvaluationError:
            self._idle.put(evaluator)  # rego-cpp reported an error and goes on
            raise
        if self._retired:
            self._discard(evaluator, None)
        else:
            self._idle.put(evaluator)
        return doc

    def _discard(self, evaluator: _Evaluator, error: BaseException | None) -> None:
        evaluator.kill()
        with self._lock:
            self._all.discard(evaluator)
        if error is not None:
            self.restarts += 1
            log.error("rego-cpp evaluator %d stopped (%s); starting another", evaluator.pid, error)
            self._replace_later()

    def retire(self) -> None:
        """Stop: idle evaluators now, busy ones when their evaluation returns."""
        with self._lock:
            self._retired = True
        while True:
            try:
                evaluator = self._idle.get_nowait()
            except queue.Empty:
                break
            self._discard(evaluator, None)


class EmbeddedEngine(ReloadingEngine):
    """rego-cpp in a pool of evaluator processes (see the module doc). Thread-safe."""

    name = "embedded"

    def __init__(self, policy_dir: Path, *, timeout: float = 2.0, evaluators: int = 2) -> None:
        super().__init__(policy_dir)
        self.timeout = timeout
        self.evaluators = max(1, evaluators)
        self._pool: _Pool | None = None
        self.load_initial()

    def _activate(self, bundle: Bundle) -> None:
        pool = _Pool(bundle, self.evaluators)  # compiled and smoke-tested before it serves
        old, self._pool = self._pool, pool
        if old is not None:
            old.retire()

    def ready(self) -> bool:
        return self._pool is not None

    @property
    def evaluator_pids(self) -> set[int]:
        pool = self._pool
        return pool.pids() if pool is not None else set()

    @property
    def evaluator_restarts(self) -> int:
        pool = self._pool
        return pool.restarts if pool is not None else 0

    def _answer(self, policy_input: Mapping[str, Any], deadline: float) -> tuple[Any, str]:
        try:
            input_json = json.dumps(
                _rego_cpp_safe(policy_input), ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise EvaluationError(f"policy input is not JSON-serialisable: {e}") from e
        pool = self._pool
        if pool is None:
            reason = self.last_error or "not loaded"
            raise EvaluationError(f"no policy bundle loaded from {self.policy_dir}: {reason}")
        return pool.evaluate(input_json, deadline), pool.digest

    def close(self) -> None:
        super().close()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.retire()


if __name__ == "__main__":
    sys.exit(_main())
