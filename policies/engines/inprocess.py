"""The ``opa-inprocess`` engine: OPA's own Go evaluator, loaded into this process.

``libmodelgate_opa.so`` (built from :file:`policies/engines/opalib` by ``make tools``; in the
image at ``/usr/local/lib/modelgate``) is OPA's ``rego`` package behind five C functions. The
bundle is compiled once per (re)load into a prepared query; an evaluation is one call, with
the policy input as JSON, that releases the GIL while OPA evaluates (threads evaluate in
parallel). So the decisions are OPA's (the same release the ``opa`` engine's server runs), with
neither a server to run nor an HTTP hop per review.

Deadlines are hard: OPA's evaluator checks a cancellation flag between steps and the library
cancels it at the deadline, so a runaway rule stops there and the thread is free again
(:class:`EvaluationTimeout`). A Go panic is recovered inside the library and reported as
:class:`EvaluatorCrashed`. The size limits of :mod:`policies.limits` run before the input
reaches OPA, as for every engine.

The Go runtime starts when the library is loaded and does not survive ``fork``: load it after
forking (the webhook's workers build their engine after the fork); a forked child of a process
that loaded it refuses to use it instead of hanging.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from policies.bundle import Bundle
from policies.engines.base import (
    BundleError,
    EvaluationError,
    EvaluationTimeout,
    EvaluatorCrashed,
)
from policies.engines.common import ENTRYPOINT, ReloadingEngine, smoke_test

#: where the library is looked for when ``MODELGATE_OPA_LIBRARY`` does not name it: the
#: checkout's ``make tools`` output, then the image's location
LIBRARY_NAME = "libmodelgate_opa.so"
LIBRARY_ENV = "MODELGATE_OPA_LIBRARY"
_REPO_ROOT = Path(__file__).resolve().parents[2]
LIBRARY_CANDIDATES = (
    _REPO_ROOT / ".tools" / "lib" / LIBRARY_NAME,
    Path("/usr/local/lib/modelgate") / LIBRARY_NAME,
)

QUERY = "data." + ENTRYPOINT.replace("/", ".")

# result codes of the library (policies/engines/opalib/main.go)
_OK, _ERROR, _TIMEOUT, _NO_HANDLE, _PANIC = 0, 1, 2, 3, 4


class LibraryUnavailable(BundleError):
    """``libmodelgate_opa.so`` cannot be found or loaded."""


def library_path() -> Path:
    """The library this process would load (``MODELGATE_OPA_LIBRARY``, else the first
    candidate that exists); raises :class:`LibraryUnavailable` naming where it looked."""
    named = os.environ.get(LIBRARY_ENV, "").strip()
    if named:
        path = Path(named)
        if not path.is_file():
            raise LibraryUnavailable(f"{LIBRARY_ENV}={named}: no such file")
        return path
    for path in LIBRARY_CANDIDATES:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in LIBRARY_CANDIDATES)
    raise LibraryUnavailable(
        f"the opa-inprocess engine needs {LIBRARY_NAME} (looked in {looked}): run `make tools` "
        f"or set {LIBRARY_ENV}"
    )


class _Library:
    """The loaded library with typed entry points (one per process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = os.getpid()
        try:
            lib = ctypes.CDLL(str(path))  # CDLL: the GIL is released during every call
        except OSError as e:
            raise LibraryUnavailable(f"cannot load {path}: {e}") from e
        out = ctypes.POINTER(ctypes.c_void_p)
        length = ctypes.POINTER(ctypes.c_int)
        lib.mg_prepare.argtypes = [
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_longlong),
            out,
            length,
        ]
        lib.mg_prepare.restype = ctypes.c_int
        lib.mg_eval.argtypes = [
            ctypes.c_longlong,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_longlong,
            out,
            length,
        ]
        lib.mg_eval.restype = ctypes.c_int
        lib.mg_release.argtypes = [ctypes.c_longlong]
        lib.mg_release.restype = None
        lib.mg_free.argtypes = [ctypes.c_void_p]
        lib.mg_free.restype = None
        lib.mg_version.argtypes = []
        lib.mg_version.restype = ctypes.c_char_p
        self._lib = lib
        self.opa_version = (lib.mg_version() or b"").decode("ascii", "replace")

    def _check_process(self) -> None:
        if os.getpid() != self.pid:
            raise EvaluationError(
                f"{LIBRARY_NAME} was loaded before this process was forked (the Go runtime does "
                "not survive a fork): build the engine in the child"
            )

    def _take(self, out: ctypes.c_void_p, size: ctypes.c_int) -> bytes:
        if not out.value:
            return b""
        try:
            return ctypes.string_at(out.value, size.value)
        finally:
            self._lib.mg_free(out.value)

    def prepare(self, bundle: Bundle) -> int:
        """Compile ``bundle`` (its modules and served data); its handle."""
        self._check_process()
        modules_json = json.dumps(dict(bundle.modules), ensure_ascii=False).encode("utf-8")
        data_json = json.dumps(bundle.served_data(), ensure_ascii=False).encode("utf-8")
        handle = ctypes.c_longlong(0)
        out, size = ctypes.c_void_p(), ctypes.c_int(0)
        code = self._lib.mg_prepare(
            modules_json,
            len(modules_json),
            data_json,
            len(data_json),
            QUERY.encode("ascii"),
            ctypes.byref(handle),
            ctypes.byref(out),
            ctypes.byref(size),
        )
        message = self._take(out, size).decode("utf-8", "replace")
        if code != _OK:
            raise BundleError(f"policy bundle in {bundle.root} does not compile: {message}")
        return int(handle.value)

    def evaluate(self, handle: int, input_json: bytes, timeout: float) -> bytes:
        self._check_process()
        out, size = ctypes.c_void_p(), ctypes.c_int(0)
        code = self._lib.mg_eval(
            handle,
            input_json,
            len(input_json),
            max(1, int(timeout * 1_000_000)),
            ctypes.byref(out),
            ctypes.byref(size),
        )
        answer = self._take(out, size)
        if code == _OK:
            return answer
        message = answer.decode("utf-8", "replace")
        if code == _TIMEOUT:
            raise EvaluationTimeout(message)
        if code == _PANIC:
            raise EvaluatorCrashed(message)
        raise EvaluationError(f"OPA could not evaluate the policy: {message}")

    def release(self, handle: int) -> None:
        if os.getpid() == self.pid:
            self._lib.mg_release(handle)


_loaded: _Library | None = None
_load_lock = threading.Lock()


def load_library() -> _Library:
    """This process's library, loaded on first use (see :func:`library_path`)."""
    global _loaded
    with _load_lock:
        if _loaded is None:
            _loaded = _Library(library_path())
        return _loaded


class _Prepared:
    """One compiled bundle in the library (smoke-tested before it serves)."""

    def __init__(self, library: _Library, bundle: Bundle, timeout: float) -> None:
        self.library = library
        self.digest = bundle.digest
        self.handle = library.prepare(bundle)
        try:
            smoke_test(bundle, lambda policy_input: self.answer(policy_input, timeout))
        except BundleError:
            self.release()
            raise

    def answer(self, policy_input: Mapping[str, Any], timeout: float) -> Any:
        """The value of ``data.modelgate.admission`` for ``policy_input``."""
        try:
            input_json = json.dumps(policy_input, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise EvaluationError(f"policy input is not JSON-serialisable: {e}") from e
        answer = self.library.evaluate(self.handle, input_json.encode("utf-8"), timeout)
        try:
            return json.loads(answer)
        except ValueError as e:
            raise EvaluationError("OPA's answer is not JSON") from e

    def release(self) -> None:
        self.library.release(self.handle)


class InProcessOpaEngine(ReloadingEngine):
    """OPA's evaluator in this process (see the module doc). Thread-safe."""

    name = "opa-inprocess"

    def __init__(self, policy_dir: Path, *, timeout: float = 2.0) -> None:
        super().__init__(policy_dir)
        self.timeout = timeout
        self._prepared: _Prepared | None = None
        self._retired: _Prepared | None = None
        self.load_initial()

    @property
    def opa_version(self) -> str:
        """The OPA release compiled into the library ("" before it is loaded)."""
        return _loaded.opa_version if _loaded is not None else ""

    def _activate(self, bundle: Bundle) -> None:
        # the first compile of a bundle may take longer than one review's timeout
        prepared = _Prepared(load_library(), bundle, max(self.timeout, 10.0))
        # the bundle before the previous one is forgotten now; the previous one only at the
        # next reload, so an evaluation that picked up its handle just before this swap
        # still finds it
        retired, self._retired = self._retired, self._prepared
        self._prepared = prepared
        if retired is not None:
            retired.release()

    def ready(self) -> bool:
        return self._prepared is not None

    def _answer(self, policy_input: Mapping[str, Any], deadline: float) -> tuple[Any, str]:
        prepared = self._prepared
        if prepared is None:
            reason = self.last_error or "not loaded"
            raise EvaluationError(f"no policy bundle loaded from {self.policy_dir}: {reason}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise EvaluationTimeout(f"no time left for the evaluation (timeout {self.timeout}s)")
        return prepared.answer(policy_input, remaining), prepared.digest

    def close(self) -> None:
        super().close()
        for prepared in (self._prepared, self._retired):
            if prepared is not None:
                prepared.release()
        self._prepared = self._retired = None
