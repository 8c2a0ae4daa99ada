"""The ``opa`` engine: a real OPA server (sidecar or shared) through ``opa-python-client``.

The bundle's served modules and data are pushed through OPA's REST API (``PUT
/v1/policies/<id>``, ``PUT /v1/data/<path>``) whenever the bundle's digest changes; decisions
come from ``POST /v1/data/modelgate/admission``. Policy ids are prefixed with
``modelgate/`` so a shared OPA can hold other policies too; modules that disappear from the
directory are deleted from the server. A module OPA refuses (parse or compile error) fails the
whole update: the modules already replaced are rolled back, so the previous bundle keeps
serving, and :class:`BundleError` carries OPA's message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from opa_client import OpaClient
from opa_client.errors import RegoParseError

from policies.bundle import Bundle
from policies.engines.base import BundleError, EvaluationError, EvaluationTimeout, PolicyResult
from policies.engines.common import (
    ENTRYPOINT,
    BundleUnavailable,
    ReloadingEngine,
    decode_result,
)

log = logging.getLogger(__name__)

POLICY_ID_PREFIX = "modelgate"


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
        self._push_lock = threading.Lock()
        self._pushed: Bundle | None = None
        self.load_initial()

    # -- pushing -------------------------------------------------------------------------

    def _put_module(self, relpath: str, source: str) -> None:
        self._client.update_policy_from_string(source, _policy_id(relpath), rego_compat=False)

    def _push(self, bundle: Bundle, previous: Bundle | None) -> None:
        old_modules = dict(previous.modules) if previous is not None else {}
        # every module, not only the changed ones: a shared OPA may have been changed by others
        changed = dict(bundle.modules)
        done: list[str] = []
        try:
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

    def _activate(self, bundle: Bundle) -> None:
        with self._push_lock:
            self._push(bundle, self._pushed)
            self._pushed = bundle

    # -- evaluating ----------------------------------------------------------------------

    def ready(self) -> bool:
        if self.bundle is None:
            return False
        try:
            return bool(self._client.check_health())
        except Exception:
            return False

    def _query(self, policy_input: Mapping[str, Any]) -> Any:
        try:
            response = self._client.query_rule(dict(policy_input), ENTRYPOINT.replace("/", "."))
        except requests.Timeout as e:
            raise EvaluationTimeout(
                f"OPA at {self.opa_url} did not answer within {self.timeout}s"
            ) from e
        except requests.HTTPError as e:
            raise EvaluationError(f"OPA at {self.opa_url} refused the query: {e}") from e
        except (requests.RequestException, ValueError) as e:
            raise EvaluationError(f"OPA at {self.opa_url} is unreachable: {e}") from e
        if not isinstance(response, Mapping):
            raise EvaluationError("OPA answered with something that is not a JSON object")
        return response.get("result")

    def evaluate(self, policy_input: Mapping[str, Any]) -> PolicyResult:
        bundle = self.bundle
        if bundle is None:
            raise EvaluationError(
                f"no policy bundle loaded from {self.policy_dir}: {self.last_error or 'not loaded'}"
            )
        doc = self._query(policy_input)
        if doc is None:
            # OPA restarted and lost what we pushed: push again, once
            log.warning("OPA at %s lost the modelgate policies; pushing them again", self.opa_url)
            try:
                with self._push_lock:
                    self._push(bundle, None)
                    self._pushed = bundle
            except BundleError as e:
                raise EvaluationError(str(e)) from e
            doc = self._query(policy_input)
        return decode_result(doc, bundle.digest)

    def close(self) -> None:
        super().close()
        try:
            self._client.close_connection()
        except Exception:
            log.debug("closing the OPA client failed", exc_info=True)
