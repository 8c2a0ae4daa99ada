"""Settings from environment variables (``MODELGATE_*``) and an optional YAML file.

Precedence: explicit keyword arguments > environment > YAML file (``MODELGATE_CONFIG``) >
embedded defaults (SQLite in the working directory, the embedded Rego engine).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from policies.engines import ENGINE_NAMES

EngineName = Literal["embedded", "opa", "opa-inprocess"]
FailureMode = Literal["closed", "open"]
ApprovalSource = Literal["inventory", "annotation"]

DEFAULT_POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: the log line of the servers (and of their helper processes)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SettingsError(ValueError):
    """A setting has a value modelgate cannot use."""


@dataclass(frozen=True)
class Settings:
    """Runtime configuration shared by the webhook, the CLI and the auditor."""

    database_url: str = "sqlite:///modelgate.db"
    policy_engine: EngineName = "embedded"
    opa_url: str = "http://127.0.0.1:8181"
    policy_dir: Path = field(default=DEFAULT_POLICY_DIR)
    cluster_name: str = "default"
    failure_mode: FailureMode = "closed"
    policy_timeout_seconds: float = 2.0
    policy_reload_seconds: float = 2.0
    max_request_bytes: int = 3 * 1024 * 1024
    log_level: str = "INFO"
    spool_dir: Path | None = None
    auto_migrate: bool = True
    #: how often the auditor scans (the chart's CronJob: daily); runtime state older than
    #: this is shown as stale by the dashboard
    scan_interval_seconds: float = 86400.0
    #: Ed25519 private key (PEM) that signs log checkpoints (`modelgate log checkpoint`)
    log_signing_key_file: Path | None = None
    #: the public key checkpoints must be signed with (default: the signing key's)
    log_public_key_file: Path | None = None
    #: rego-cpp evaluator processes per serving process (embedded engine)
    evaluators: int = 2
    #: a connection that sends nothing for this long is closed (slow clients, idle keep-alive)
    read_timeout_seconds: float = 10.0
    #: a review that waited this long for a thread is answered at once as overloaded
    queue_seconds: float = 1.0
    #: with a spool: stay ready while the database is down and the spool is below the limit
    ready_without_database: bool = False
    spool_max_bytes: int = 256 * 1024 * 1024
    #: PEM CA bundle that signs the API server's client certificate (mutual TLS)
    client_ca: Path | None = None
    # --- identity, roles and sign-off (modelgate.identity, modelgate.approvals) ---------------
    #: static bearer tokens: CSV lines ``token,user,"group1,group2"`` (re-read on change)
    token_file: Path | None = None
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_username_claim: str = "email"
    oidc_groups_claim: str = "groups"
    #: Kubernetes TokenReview (``kube_auth``) and SubjectAccessReview (``kube_authz``)
    kube_auth: bool = False
    kube_authz: bool = False
    #: kubeconfig for the identity calls (in-cluster, then the default kubeconfig, when unset)
    kube_config: Path | None = None
    #: ``role=group|group,role=group`` (roles viewer < owner < approver < admin)
    role_groups: str = ""
    #: where admission reads sign-off: ``inventory`` (recorded approvals) or ``annotation``
    approval_source: ApprovalSource = "inventory"
    #: how often the webhook reloads its approval snapshot (staleness stays under 5 s by
    #: default; on PostgreSQL a notification reloads it at once)
    approval_refresh_seconds: float = 2.0
    #: dashboard browser sign-in (OIDC authorization code + PKCE at ``oidc_issuer``)
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    #: the callback URL registered with the IdP (default: ``/auth/callback`` on the host asked)
    oidc_redirect_url: str = ""
    #: signs the dashboard's session cookie (required for browser sign-in)
    session_secret: str = field(default="", repr=False)
    #: session cookie only over HTTPS (turn off only for plain-HTTP local use)
    session_cookie_secure: bool = True
    #: identity from an authenticating proxy's headers, only from ``trusted_proxies`` (CIDRs)
    trusted_proxy_headers: bool = False
    trusted_proxies: str = ""
    #: let unauthenticated callers read (viewer role) the dashboard and the API
    allow_anonymous: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_file = env.get("MODELGATE_CONFIG")
        if config_file:
            values.update(_load_yaml(Path(config_file)))
        for f in fields(cls):
            key = "MODELGATE_" + f.name.upper()
            if key in env and env[key] != "":
                values[f.name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls()._with(values)

    def _with(self, values: Mapping[str, Any]) -> Settings:
        known = {f.name: f for f in fields(self)}
        converted: dict[str, Any] = {}
        for name, raw in values.items():
            if name not in known:
                raise SettingsError(f"unknown setting {name!r}")
            converted[name] = _convert(name, raw)
        return replace(self, **converted)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise SettingsError(f"cannot read config file {path}: {e}") from e
    if not isinstance(loaded, dict):
        raise SettingsError(f"config file {path} must hold a mapping")
    return {str(k).replace("-", "_"): v for k, v in loaded.items()}


_BOOLEANS = (
    "auto_migrate",
    "ready_without_database",
    "kube_auth",
    "kube_authz",
    "session_cookie_secure",
    "trusted_proxy_headers",
    "allow_anonymous",
)


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {raw!r}")


_FLOATS = {
    "policy_timeout_seconds",
    "policy_reload_seconds",
    "read_timeout_seconds",
    "queue_seconds",
    "scan_interval_seconds",
    "approval_refresh_seconds",
}
_PATHS = {
    "policy_dir",
    "spool_dir",
    "client_ca",
    "log_signing_key_file",
    "log_public_key_file",
    "token_file",
    "kube_config",
}
_INTS = {"max_request_bytes", "evaluators", "spool_max_bytes"}


def _convert(name: str, raw: Any) -> Any:
    converted: float = 0.0
    try:
        if name in _PATHS:
            return Path(str(raw)) if raw is not None else None
        if name in _BOOLEANS:
            return _bool(raw)
        if name in _FLOATS:
            converted = float(raw)
            if converted != converted:  # NaN
                raise ValueError("not a number")
        if name in _INTS:
            converted = int(raw)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"setting {name} has an invalid value {raw!r}") from e
    if name == "policy_engine" and raw not in ENGINE_NAMES:
        raise SettingsError(
            f"MODELGATE_POLICY_ENGINE must be one of {', '.join(ENGINE_NAMES)}, not {raw!r}"
        )
    if name == "approval_source" and raw not in ("inventory", "annotation"):
        raise SettingsError(
            f"MODELGATE_APPROVAL_SOURCE must be 'inventory' or 'annotation', not {raw!r}"
        )
    if name == "failure_mode" and raw not in ("closed", "open"):
        raise SettingsError(f"MODELGATE_FAILURE_MODE must be 'closed' or 'open', not {raw!r}")
    if name == "log_level":
        level = str(raw).strip().upper()
        if level not in LOG_LEVELS:
            raise SettingsError(
                f"MODELGATE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {raw!r}"
            )
        return level
    if name in (_FLOATS | _INTS) - {"policy_reload_seconds"} and converted <= 0:
        raise SettingsError(f"MODELGATE_{name.upper()} must be positive, not {raw!r}")
    if name == "policy_reload_seconds" and converted < 0:
        raise SettingsError(f"MODELGATE_POLICY_RELOAD_SECONDS must be 0 or more, not {raw!r}")
    if name in _FLOATS | _INTS:
        return converted
    return raw if not isinstance(raw, str) else raw.strip()
