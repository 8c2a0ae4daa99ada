"""``modelgate approve | reject | revoke | exempt | approvals list``: sign-off through the
inventory API (``modelgate dashboard`` serves it under ``/api/v1``).

The commands never claim an identity: the API authenticates the caller from the bearer token
(``--token`` / ``MODELGATE_TOKEN``, or with ``--kube`` the current kubeconfig context's
token) and applies its roles and separation of duties. The server is ``--server`` /
``MODELGATE_API_URL``; an https server's certificate is checked against the system CAs or
``--ca-bundle``.

Exit status: 0 recorded (or listed); 1 the API refused (bad credentials, too little role,
separation of duties, unknown version, bad input); 2 usage; 3 the API does not answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import click
import requests

TIMEOUT_SECONDS = 15


class ApiError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Client:
    server: str
    token: str
    verify: str | bool = True

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.server.rstrip("/") + "/api/v1" + path
        try:
            resp = requests.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
                timeout=TIMEOUT_SECONDS,
                verify=self.verify,
            )
        except requests.RequestException as e:
            raise ApiError(f"the modelgate API at {self.server} does not answer: {e}", 3) from e
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            text = message or resp.text.strip()[:300] or resp.reason
            code = 3 if resp.status_code >= 500 else 1
            raise ApiError(f"HTTP {resp.status_code}: {text}", code)
        return data


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"modelgate: {message}", err=True)
    sys.exit(code)


def _client(
    server: str | None,
    token: str | None,
    kube: bool,
    kubeconfig: Path | None,
    context: str | None,
    ca_bundle: Path | None,
) -> Client:
    if not server:
        _fail("no API server: pass --server URL or set MODELGATE_API_URL", 2)
    if kube and token:
        _fail("give either --token (MODELGATE_TOKEN) or --kube, not both", 2)
    if kube:
        try:
            from modelgate.identity.kubernetes import KubeConfigError, kubeconfig_token
        except ImportError as e:
            _fail(str(e), 2)
        try:
            token = kubeconfig_token(kubeconfig, context)
        except KubeConfigError as e:
            _fail(str(e), 2)
    if not token:
        _fail("no credentials: pass --token, set MODELGATE_TOKEN, or use --kube", 2)
    return Client(server=server, token=token, verify=str(ca_bundle) if ca_bundle else True)


def api_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--server",
            envvar="MODELGATE_API_URL",
            metavar="URL",
            help="The modelgate API (modelgate dashboard), e.g. https://modelgate.example.com "
            "[env: MODELGATE_API_URL].",
        ),
        click.option(
            "--token",
            envvar="MODELGATE_TOKEN",
            metavar="TOKEN",
            help="Bearer token (static, OIDC or Kubernetes) [env: MODELGATE_TOKEN].",
        ),
        click.option(
            "--kube", is_flag=True, help="Authenticate with the current kubeconfig context's token."
        ),
        click.option(
            "--kubeconfig",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="With --kube: the kubeconfig (default: KUBECONFIG or ~/.kube/config).",
        ),
        click.option("--context", default=None, help="With --kube: the kubeconfig context."),
        click.option(
            "--ca-bundle",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="CA certificates for an https server.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _run(action: Callable[[Client], None], **conn: Any) -> None:
    client = _client(**conn)
    try:
        action(client)
    except ApiError as e:
        _fail(str(e), e.exit_code)


def _path(*parts: str) -> str:
    return "".join("/" + quote(p, safe="") for p in parts)


def _state_line(client: Client, model: str, version: str) -> str:
    detail = client.call("GET", _path("models", model, "versions", version))
    sign_off = detail.get("sign_off") or {}
    return f"{model} {version} is now {sign_off.get('state')}: {sign_off.get('reason')}"


def _decide(decision: str, model: str, version: str, body: dict[str, Any], conn: Any) -> None:
    def action(client: Client) -> None:
        record = client.call("POST", _path("models", model, "versions", version, "approvals"), body)
        verb = "approved" if decision == "approved" else "rejected"
        click.echo(f"{verb} {model} {version} (approval {record['id']}, by {record['approver']})")
        click.echo(_state_line(client, model, version))

    _run(action, **conn)


@click.command("approve")
@click.argument("name")
@click.argument("version")
@click.option("--reason", default="", help="Why (recorded and reported).")
@click.option("--evidence", multiple=True, metavar="URL", help="Evidence URL (repeatable).")
@click.option("--expires", metavar="YYYY-MM-DD", default=None, help="Last day it holds.")
@click.option("--cluster", "clusters", multiple=True, help="Scope: only in this cluster.")
@click.option("--namespace", "namespaces", multiple=True, help="Scope: only in this namespace.")
@api_options
def approve_command(
    name: str,
    version: str,
    reason: str,
    evidence: tuple[str, ...],
    expires: str | None,
    clusters: tuple[str, ...],
    namespaces: tuple[str, ...],
    **conn: Any,
) -> None:
    """Approve model NAME at VERSION (as the caller the API authenticates). Not allowed for
    the version's owner, registrant or deployers; tiers needing two approvers need two
    distinct ones."""
    body: dict[str, Any] = {"decision": "approved", "reason": reason, "evidence": list(evidence)}
    if expires:
        body["expires"] = expires
    if clusters or namespaces:
        body["scope"] = {"clusters": list(clusters), "namespaces": list(namespaces)}
    _decide("approved", name, version, body, conn)


@click.command("reject")
@click.argument("name")
@click.argument("version")
@click.option("--reason", required=True, help="Why (recorded and reported).")
@click.option("--evidence", multiple=True, metavar="URL", help="Evidence URL (repeatable).")
@api_options
def reject_command(
    name: str, version: str, reason: str, evidence: tuple[str, ...], **conn: Any
) -> None:
    """Reject model NAME at VERSION: it is denied at admission until approved again."""
    body = {"decision": "rejected", "reason": reason, "evidence": list(evidence)}
    _decide("rejected", name, version, body, conn)


@click.command("revoke")
@click.argument("record_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why (recorded and reported).")
@click.option(
    "--kind",
    type=click.Choice(["approval", "exemption", "certification"]),
    default="approval",
    show_default=True,
    help="What ID names.",
)
@api_options
def revoke_command(record_id: int, reason: str, kind: str, **conn: Any) -> None:
    """Revoke approval ID (or, with --kind, an exemption or a recorded certification)."""

    def action(client: Client) -> None:
        record = client.call("POST", f"/{kind}s/{record_id}/revoke", {"reason": reason})
        click.echo(f"revoked {kind} {record_id} of {record['model']} {record['version']}")
        click.echo(_state_line(client, str(record["model"]), str(record["version"])))

    _run(action, **conn)


@click.command("exempt")
@click.argument("name")
@click.argument("version")
@click.option("--reason", required=True, help="Why (recorded and reported).")
@click.option("--expires", required=True, metavar="YYYY-MM-DD", help="Last day it holds.")
@api_options
def exempt_command(name: str, version: str, reason: str, expires: str, **conn: Any) -> None:
    """Exempt model NAME at VERSION from approval until --expires."""

    def action(client: Client) -> None:
        record = client.call(
            "POST",
            _path("models", name, "versions", version, "exemptions"),
            {"reason": reason, "expires": expires},
        )
        click.echo(
            f"exempted {name} {version} until {record['expires']} (exemption {record['id']}, "
            f"by {record['granted_by']})"
        )

    _run(action, **conn)


def render_approvals(rows: list[dict[str, Any]]) -> str:
    headers = ("ID", "MODEL", "VERSION", "DECISION", "STATUS", "BY", "WHEN", "EXPIRES", "REASON")
    table = [
        (
            str(r["id"]),
            r["model"],
            r["version"],
            r["decision"],
            r["status"],
            r["approver"],
            str(r["created"])[:16].replace("T", " "),
            r.get("expires") or "-",
            (r.get("reason") or "-")[:60],
        )
        for r in rows
    ]
    widths = [max([len(h), *(len(row[i]) for row in table)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    if not rows:
        lines.append("(no approvals recorded)")
    return "\n".join(lines)


@click.group("approvals")
def approvals_group() -> None:
    """Recorded approvals."""


@approvals_group.command("list")
@click.argument("name", required=False)
@click.option("--output", "-o", type=click.Choice(["json", "table"]), default="table")
@api_options
def approvals_list(name: str | None, output: str, **conn: Any) -> None:
    """Approvals and rejections (of model NAME), newest first, with their status."""

    def action(client: Client) -> None:
        path = "/approvals" + (f"?model={quote(name, safe='')}" if name else "")
        rows = client.call("GET", path)
        if output == "json":
            click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        else:
            click.echo(render_approvals(rows))

    _run(action, **conn)
