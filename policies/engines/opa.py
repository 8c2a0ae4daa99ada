"""The ``opa`` engine: a real OPA server (sidecar or shared) through ``opa-python-client``.

The bundle's served modules and data are pushed through OPA's REST API (``PUT
/v1/policies/<id>``, ``PUT /v1/data/<path>``) whenever the bundle's digest changes; decisions
come from ``POST /v1/data/modelgate/admission`` over one keep-alive connection per thread
(:mod:`policies.engines.http1`, no per-request client setup), each within the evaluation's
deadline: a connection that times out is closed, which makes OPA cancel the query.

Every answer must carry the digest of the bundle this process pushed
(``data.modelgate.bundle.digest``, pushed last and set to ``"pushing"`` first): an OPA that
restarted empty, lost data, or is in the middle of a push never yields an unchecked allow.
The first caller to notice pushes the bundle again; the others get :class:`StaleBundle`
("could not evaluate") meanwhile. Policy ids are prefixed with
``modelgate/`` so a shared OPA can hold other policies too; modules that disappear from the
directory are deleted from the server. A module OPA refuses (parse or compile error) fails the
whole update: the modules already replaced are rolled back, so the previous bundle keeps
serving, and :class:`BundleError` carries OPA's message.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opa_client import OpaClient
from opa_client.errors import RegoParseError

from policies.bundle import MARKER_PATH, Bundle
from policies.engines import http1
from policies.engines.base import BundleError, EvaluationError, EvaluationTimeout, StaleBundle
from policies.engines.common import ENTRYPOINT, BundleUnavailable, ReloadingEngine

log = logging.getLogger(__name__)

POLICY_ID_PREFIX = "modelgate"
QUERY_PATH = "/v1/data/" + ENTRYPOINT
#: seconds ``ready()`` waits for OPA (the webhook's /readyz must answer within its probe budget)
READY_TIMEOUT = 0.5


def _policy_id(relpath: str) -> str:
    return f"{POLICY_ID_PREFIX}/{relpath}"


def _rego_error_text(e: RegoParseError) -> str:
    parts = [str(e.message or "")]
    for err in e.errors or []:
        if not isinstance(err, Mapping):
            continue
        loc = err.get("location") or {}
        where = f"{loc.get('file', '')}:{loc.get('row', '?')}" if isinstance(loc, Mapping) else ""
        parts.append(f"{where}: {err.get('message', '')}".strip(": "))
    return "; ".join(p for p in parts if p)


def parse_opa_url(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EvaluationError(f"MODELGATE_OPA_URL must be an http(s) URL, not {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port, parts.scheme == "https"


class OpaEngine(ReloadingEngine):
    """Evaluates through an OPA server; pushes the bundle to it when the directory changes."""

    name = "opa"

    def __init__(self, policy_dir: Path, opa_url: str, timeout: float = 2.0) -> None:
        super().__init__(policy_dir)
        host, port, ssl = parse_opa_url(opa_url)
        self.opa_url = opa_url.rstrip("/")
        self.timeout = timeout
        self._client = OpaClient(host=host, port=port, ssl=ssl, timeout=timeout, retries=0)
        self._local = threading.local()
        self._repushing = threading.Lock()
        self._push_lock = threading.Lock()
        self._pushed: Bundle | None = None
        self.load_initial()

    # -- pushing -------------------------------------------------------------------------

    def _put_module(self, relpath: str, source: str) -> None:
        # (modules go through opa-python-client; queries through _request)
        self._client.update_policy_from_string(source, _policy_id(relpath), rego_compat=False)

    def _push(self, bundle: Bundle, previous: Bundle | None) -> None:
        old_modules = dict(previous.modules) if previous is not None else {}
        # every module, not only the changed ones: a shared OPA may have been changed by others
        changed = dict(bundle.modules)
        done: list[str] = []
        marker = "/".join(MARKER_PATH)
        try:
            # answers stop being trusted first (no digest matches "pushing"), and become
            # trusted again only when everything is in place: the digest goes last
            self._client.update_or_create_data({"digest": "pushing"}, marker)
            # data first: policies may refer to it
            for segments, doc in bundle.data_files.items():
                path = "/".join(segments)
                if not isinstance(doc, dict):
                    raise BundleError(f"policy data at data.{'.'.join(segments)} must be a mapping")
                self._client.update_or_create_data(doc, path)
            # modules may depend on each other: retry until no progress (OPA compiles each PUT
            # together with what is already loaded)
            pending = dict(sorted(changed.items()))
            while pending:
                errors: dict[str, str] = {}
                put_before = len(done)
                for rel, src in list(pending.items()):
                    try:
                        self._put_module(rel, src)
                    except RegoParseError as e:
                        errors[rel] = _rego_error_text(e)
                        continue
                    done.append(rel)
                    del pending[rel]
                if errors and len(done) == put_before:
                    detail = "; ".join(f"{rel}: {msg}" for rel, msg in errors.items())
                    raise BundleError(f"OPA rejected the policy bundle in {bundle.root}: {detail}")
            for rel in sorted(set(old_modules) - set(bundle.modules)):
                self._client.delete_policy(_policy_id(rel))
            if previous is not None:
                for segments in set(previous.data_files) - set(bundle.data_files):
                    self._client.delete_data("/".join(segments))
            self._client.update_or_create_data({"digest": bundle.digest}, marker)
        except BundleError:
            self._rollback(done, old_modules, previous)
            raise
        except Exception as e:
            self._rollback(done, old_modules, previous)
            raise BundleUnavailable(
                f"cannot push the policy bundle to OPA at {self.opa_url}: {e}"
            ) from e

    def _rollback(self, done: list[str], old: Mapping[str, str], previous: Bundle | None) -> None:
        """Best effort: put back the previous modules, delete the new ones (several passes,
        since OPA refuses to delete a module others still depend on)."""
        todo = list(reversed(done))
        for _ in range(len(todo) + 1):
            failed: list[str] = []
            for rel in todo:
                try:
                    if rel in old:
                        self._put_module(rel, old[rel])
                    else:
                        self._client.delete_policy(_policy_id(rel))
                except Exception:
                    failed.append(rel)
            if not failed or len(failed) == len(todo):
                todo = failed
                break
            todo = failed
        if todo:
            log.error("rolling back the OPA policy update left %s in place", ", ".join(todo))
        if previous is not None:
            for segments, doc in previous.data_files.items():
                try:
                    if isinstance(doc, dict):
                        self._client.update_or_create_data(doc, "/".join(segments))
                except Exception:
                    log.exception("restoring policy data at %s failed", "/".join(segments))
            if not todo:  # the previous bundle serves complete again: trust its answers
                try:
                    self._client.update_or_create_data(
                        {"digest": previous.digest}, "/".join(MARKER_PATH)
                    )
                except Exception:
                    log.exception("restoring the bundle digest marker failed")

    def _activate(self, bundle: Bundle) -> None:
        with self._push_lock:
            self._push(bundle, self._pushed)
            self._pushed = bundle

    # -- evaluating ----------------------------------------------------------------------

    def _connection(self) -> http1.Connection:
        """This thread's keep-alive connection to OPA (made once, reused for every query)."""
        conn: http1.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "url", None) != self.opa_url:
            host, port, tls = parse_opa_url(self.opa_url)
            conn = http1.Connection(host, port, tls=tls)
            self._local.conn, self._local.url = conn, self.opa_url
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def _request(
        self, method: str, path: str, body: bytes | None, deadline: float
    ) -> tuple[int, bytes]:
        """One HTTP exchange within ``deadline`` on the thread's connection (one retry on a
        fresh connection when a reused one turns out closed by OPA)."""
        for attempt in (1, 2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EvaluationTimeout(
                    f"OPA at {self.opa_url} did not answer within {self.timeout}s"
                )
            conn = self._connection()
            reused = conn.sock is not None
            try:
                response = conn.request(method, path, body, "application/json", remaining)
                if response.will_close:
                    self._drop_connection()
                return response.status, response.body
            except TimeoutError as e:
                # closing the connection makes OPA cancel the query
                self._drop_connection()
                raise EvaluationTimeout(
                    f"OPA at {self.opa_url} did not answer within {self.timeout}s"
                ) from e
            except OSError as e:
                self._drop_connection()
                if attempt == 1 and reused:
                    continue
                raise EvaluationError(f"OPA at {self.opa_url} is unreachable: {e}") from e
        raise AssertionError("unreachable")

    def ready(self) -> bool:
        """A bundle is loaded and OPA serves it (its digest marker answers), checked within
        :data:`READY_TIMEOUT` seconds; a lost bundle is pushed again in the background."""
        bundle = self.bundle
        if bundle is None:
            return False
        path = "/v1/data/" + "/".join(MARKER_PATH) + "/digest"
        try:
            status, data = self._request(
                "GET", path, None, time.monotonic() + min(self.timeout, READY_TIMEOUT)
            )
            served = json.loads(data).get("result") if status == 200 else None
        except (EvaluationError, ValueError, AttributeError):
            return False
        if served != bundle.digest:
            self._repush_in_background(bundle)
            return False
        return True

    def _query(self, policy_input: Mapping[str, Any], deadline: float) -> Any:
        try:
            body = json.dumps({"input": policy_input}, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise EvaluationError(f"policy input is not JSON-serialisable: {e}") from e
        status, data = self._request("POST", QUERY_PATH, body.encode("utf-8"), deadline)
        if status != 200:
            detail = data[:300].decode("utf-8", "replace")
            raise EvaluationError(f"OPA at {self.opa_url} refused the query ({status}): {detail}")
        try:
            response = json.loads(data)
        except ValueError as e:
            raise EvaluationError(
                f"OPA at {self.opa_url} answered something that is not JSON"
            ) from e
        if not isinstance(response, Mapping):
            raise EvaluationError("OPA answered with something that is not a JSON object")
        return response.get("result")

    def _repush(self, bundle: Bundle) -> None:
        """Push ``bundle`` again (OPA restarted empty); one push at a time."""
        with self._push_lock:
            log.warning(
                "OPA at %s does not serve the modelgate bundle; pushing it again", self.opa_url
            )
            self._push(bundle, None)
            self._pushed = bundle

    def _repush_in_background(self, bundle: Bundle) -> None:
        if self._repushing.acquire(blocking=False):

            def run() -> None:
                try:
                    self._repush(bundle)
                except BundleError as e:
                    log.error("pushing the policy bundle again failed: %s", e)
                finally:
                    self._repushing.release()

            threading.Thread(target=run, name="opa-repush", daemon=True).start()

    def _answer(self, policy_input: Mapping[str, Any], deadline: float) -> tuple[Any, str]:
        bundle = self.bundle
        if bundle is None:
            raise EvaluationError(
                f"no policy bundle loaded from {self.policy_dir}: {self.last_error or 'not loaded'}"
            )
        doc = self._query(policy_input, deadline)
        served = doc.get("bundle_digest") if isinstance(doc, Mapping) else None
        if served == bundle.digest:
            return doc, bundle.digest
        # OPA lost the bundle (restarted), or another process is pushing: never trust this
        # answer. One caller pushes again and, if time allows, asks once more; the others
        # are "could not evaluate" meanwhile.
        if not self._repushing.acquire(blocking=False):
            raise StaleBundle(
                f"OPA at {self.opa_url} does not serve the current policy bundle (being pushed "
                "again)"
            )
        try:
            self._repush(bundle)
        except BundleError as e:
            raise StaleBundle(f"OPA at {self.opa_url} lost the policy bundle: {e}") from e
        finally:
            self._repushing.release()
        return self._query(policy_input, deadline), bundle.digest

    def close(self) -> None:
        super().close()
        self._drop_connection()
        try:
            self._client.close_connection()
        except Exception:
            log.debug("closing the OPA client failed", exc_info=True)
