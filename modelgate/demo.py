"""``make demo``: the webhook over TLS on the embedded defaults, fed the sample manifests,
and the sign-off loop: approval recorded through the authenticated API, checked at admission.

Steps: make a throwaway dev CA and server certificate, create a SQLite inventory
(``modelgate db upgrade``), generate a static token file (an approver, and the fraud model's
owner, who is in the approver group too), start ``modelgate serve`` (recorded sign-off:
``MODELGATE_APPROVAL_SOURCE=inventory``, the default) and ``modelgate dashboard`` (the
inventory API) on free 127.0.0.1 ports, POST one AdmissionReview per object in
``examples/manifests`` (objects in a namespace labelled ``modelgate.dev/enforcement=warn`` go
to ``/validate/warn``, as the Helm chart routes them) and print every decision: the models are
denied as not approved and wait for review. Then the owner tries ``modelgate approve`` on
their own model (refused: separation of duties), the approver approves it, and the same
deployment is sent again (admitted, the decision naming the approval). Last the inventory
(``modelgate models list``) and the approvals (``modelgate approvals list``). Everything
lives in a temporary directory that is removed afterwards (``--keep`` keeps it).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from modelgate import ENFORCEMENT_LABEL
from modelgate.evaluate import InputError, Manifest, load_manifests
from modelgate.workload import SUPPORTED_KINDS

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples" / "manifests"
CLUSTER_NAME = "demo"
#: the model the sign-off loop approves (examples/manifests/01-compliant-deployment.yaml)
LOOP_MODEL, LOOP_VERSION, LOOP_OWNER = "fraud-detector", "1.4.2", "fraud-ml@example.com"
APPROVER = "risk-officer@example.com"
ROLE_GROUPS = "viewer=auditors,owner=ml-eng,approver=model-risk"


class DemoError(RuntimeError):
    """The demo could not run (the message says why)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _modelgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelgate.cli", *args]


def _env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    env.update(
        MODELGATE_DATABASE_URL=f"sqlite:///{workdir / 'inventory.db'}",
        MODELGATE_POLICY_ENGINE="embedded",
        MODELGATE_CLUSTER_NAME=CLUSTER_NAME,
        MODELGATE_SPOOL_DIR=str(workdir / "spool"),
        MODELGATE_LOG_LEVEL="WARNING",
        MODELGATE_APPROVAL_SOURCE="inventory",
        MODELGATE_APPROVAL_REFRESH_SECONDS="0.5",
        MODELGATE_TOKEN_FILE=str(workdir / "tokens.csv"),
        MODELGATE_ROLE_GROUPS=ROLE_GROUPS,
        PYTHONUNBUFFERED="1",
    )
    return env


def write_demo_tokens(path: Path) -> dict[str, str]:
    """A static token file with fresh random tokens: user -> token."""
    from modelgate.identity.tokens import write_token_file

    users = {
        APPROVER: ["model-risk"],
        LOOP_OWNER: ["ml-eng", "model-risk"],  # owns the model, and is an approver too
        "auditor@example.com": ["auditors"],
    }
    tokens = {user: secrets.token_urlsafe(24) for user in users}
    write_token_file(path, [(tokens[u], u, groups) for u, groups in users.items()])
    return tokens


def admission_review(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The AdmissionReview the API server would send for ``kubectl apply`` of ``obj``."""
    kind = str(obj["kind"])
    group, _, version = str(obj.get("apiVersion") or "v1").rpartition("/")
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
            "name": str(meta.get("name") or ""),
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "demo@example.com", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
        },
    }


def _namespace_modes(manifests: Sequence[Manifest]) -> dict[str, str]:
    modes: dict[str, str] = {}
    for m in manifests:
        if m.obj.get("kind") == "Namespace":
            meta = m.obj.get("metadata") or {}
            labels = meta.get("labels") or {}
            modes[str(meta.get("name"))] = str(labels.get(ENFORCEMENT_LABEL) or "enforce")
    return modes


def _wait_ready(
    base: str, ca: Path | None, proc: subprocess.Popen[bytes], log: Path, what: str = "webhook"
) -> None:
    import requests

    deadline = time.monotonic() + 60
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the {what} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            resp = requests.get(f"{base}/readyz", verify=str(ca) if ca else True, timeout=2)
        except requests.RequestException as e:
            last = str(e)
        else:
            if resp.status_code == 200:
                return
            last = resp.text
        time.sleep(0.2)
    raise DemoError(f"the {what} did not become ready within 60s ({last}):\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _problems(message: str) -> list[str]:
    """Split 'modelgate denied X: 2 problems: (1) a (2) b' into ['a', 'b']."""
    _, sep, listed = message.partition(" problems: ")
    if not sep:
        _, sep, listed = message.partition(" problem: ")
    if not sep:
        return [message]
    return [p.strip() for p in re.split(r"\(\d+\) ", listed) if p.strip()]


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent + "  ")


def print_decision(label: str, route: str, response: dict[str, Any]) -> None:
    allowed = bool(response.get("allowed"))
    warnings = list(response.get("warnings") or [])
    verdict = "DENIED " if not allowed else ("WARNED " if warnings else "ALLOWED")
    mark = "✘" if not allowed else ("!" if warnings else "✔")
    click.echo(f"{mark} {verdict} {label}  [{route}]")
    if not allowed:
        message = str((response.get("status") or {}).get("message") or "")
        click.echo(_wrap(message.split(": ")[0] + ":", "    "))
        for p in _problems(message):
            click.echo(_wrap(f"- {p}", "      "))
    for w in warnings:
        click.echo(_wrap(f"warning: {w}", "    "))


def run_demo(workdir: Path, examples: Path = EXAMPLES) -> int:
    import requests

    from modelgate.devcerts import write_dev_certificates

    try:
        manifests = load_manifests([str(examples)])
    except InputError as e:
        raise DemoError(f"cannot read the sample manifests: {e}") from e
    env = _env(workdir)
    click.echo(f"modelgate demo (work directory {workdir})")
    click.echo("1. creating a self-signed dev CA and server certificate for 127.0.0.1")
    certs = write_dev_certificates(workdir / "tls", ("localhost", "127.0.0.1"))
    click.echo("2. creating the SQLite inventory (modelgate db upgrade)")
    upgrade = subprocess.run(
        _modelgate("db", "upgrade"), env=env, cwd=workdir, capture_output=True, text=True
    )
    if upgrade.returncode != 0:
        raise DemoError(f"modelgate db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")

    click.echo("3. generating a static token file (MODELGATE_TOKEN_FILE) for the API:")
    tokens = write_demo_tokens(workdir / "tokens.csv")
    click.echo(f"   {APPROVER} (model-risk: approver), {LOOP_OWNER} (ml-eng and model-risk: ")
    click.echo("   owner of fraud-detector, approver too), auditor@example.com (auditors: viewer)")

    port, api_port = _free_port(), _free_port()
    base, api = f"https://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}"
    log, api_log = workdir / "webhook.log", workdir / "dashboard.log"
    click.echo(f"4. starting modelgate serve on {base} (embedded Rego, SQLite, recorded sign-off)")
    click.echo(f"   and modelgate dashboard (the inventory API) on {api}")
    with log.open("wb") as log_file, api_log.open("wb") as api_file:
        proc = subprocess.Popen(
            _modelgate(
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--tls-cert",
                str(certs.cert),
                "--tls-key",
                str(certs.key),
                "--workers",
                "1",
                "--threads",
                "4",
            ),
            env=env,
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        dashboard = subprocess.Popen(
            _modelgate(
                "dashboard", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"
            ),
            env=env,
            cwd=workdir,
            stdout=api_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(base, certs.ca_cert, proc, log)
        _wait_ready(api, None, dashboard, api_log, "dashboard")
        click.echo("   ready.\n")
        click.echo("5. sending the sample manifests from examples/manifests as AdmissionReviews")
        click.echo(
            "   (the compliance-status annotation is not trusted: nothing is approved yet)\n"
        )
        modes = _namespace_modes(manifests)
        session = requests.Session()
        ca = str(certs.ca_cert)  # per request: REQUESTS_CA_BUNDLE would override session.verify

        def send(m: Manifest, label_suffix: str = "") -> dict[str, Any] | None:
            obj = m.obj
            kind = str(obj["kind"])
            meta = obj.get("metadata") or {}
            namespace = str(meta.get("namespace") or "default")
            mode = modes.get(namespace, "enforce")
            if mode == "off":
                click.echo(
                    f"- NOT SENT {kind} {namespace}/{meta.get('name')}: namespace {namespace} is "
                    f"labelled {ENFORCEMENT_LABEL}=off, so the webhook configuration excludes it\n"
                )
                return None
            route = "/validate/warn" if mode == "warn" else "/validate"
            try:
                resp = session.post(
                    f"{base}{route}",
                    json=admission_review(obj, namespace),
                    verify=ca,
                    timeout=10,
                )
            except requests.RequestException as e:
                raise DemoError(f"POST {route} failed: {e}\n{_tail(log)}") from e
            if resp.status_code != 200:
                raise DemoError(f"{route} answered {resp.status_code}: {resp.text}")
            source = Path(m.source.split(" (document")[0]).name
            label = f"{kind} {namespace}/{meta.get('name')} ({source}){label_suffix}"
            response: dict[str, Any] = resp.json()["response"]
            print_decision(label, route, response)
            click.echo("")
            return response

        loop_manifest: Manifest | None = None
        for m in manifests:
            if str(m.obj["kind"]) not in SUPPORTED_KINDS:  # namespaces, the samples' suite file
                continue
            annotations = (m.obj.get("metadata") or {}).get("annotations") or {}
            if (
                annotations.get("modelgate.dev/model-name") == LOOP_MODEL
                and annotations.get("modelgate.dev/model-version") == LOOP_VERSION
            ):
                loop_manifest = m
            send(m)
        if loop_manifest is None:
            raise DemoError(f"no sample manifest of {LOOP_MODEL} {LOOP_VERSION}")

        time.sleep(1.0)  # the recorder writes the denials (and registrations) in the background
        reviews = _api_get(api, "/api/v1/reviews", tokens["auditor@example.com"])
        click.echo(
            f"6. waiting for review (GET /api/v1/reviews as auditor@example.com): {len(reviews)}"
        )
        for r in reviews:
            click.echo(
                f"   - {r['model']} {r['version']} (owner {r['owner']}): {r['sign_off']['state']}"
            )
        click.echo("")

        click.echo(f"7. the owner {LOOP_OWNER} approves their own model (refused):")
        _cli(
            env,
            workdir,
            "approve",
            LOOP_MODEL,
            LOOP_VERSION,
            "--reason",
            "looks fine to me",
            server=api,
            token=tokens[LOOP_OWNER],
        )
        click.echo(f"8. the approver {APPROVER} approves it with their token from the token file:")
        approved = _cli(
            env,
            workdir,
            "approve",
            LOOP_MODEL,
            LOOP_VERSION,
            "--reason",
            "validation report reviewed",
            "--evidence",
            "https://models.example.com/fraud-detector/1.4.2/validation",
            server=api,
            token=tokens[APPROVER],
        )
        if approved != 0:
            raise DemoError("the approver's approval was not recorded")
        time.sleep(1.5)  # the webhook's approval snapshot refreshes every 0.5 s
        click.echo("9. the same deployment again:\n")
        response = send(loop_manifest, " again")
        if not response or not response.get("allowed"):
            raise DemoError("the approved deployment was not admitted")
    finally:
        for p in (proc, dashboard):  # graceful: the recorder flushes before exiting
            p.send_signal(signal.SIGTERM)
        for p in (proc, dashboard):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    click.echo("10. the inventory (modelgate models list --output table)\n")
    listing = subprocess.run(
        _modelgate("models", "list", "--output", "table"),
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if listing.returncode != 0:
        raise DemoError(f"modelgate models list failed:\n{listing.stdout}{listing.stderr}")
    click.echo(listing.stdout)
    admitted = _last_admission(workdir, LOOP_MODEL)
    click.echo(f"    the decision that admitted {LOOP_MODEL} {LOOP_VERSION} names: {admitted}")
    return 0


def _api_get(api: str, path: str, token: str) -> Any:
    import requests

    resp = requests.get(api + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    if resp.status_code != 200:
        raise DemoError(f"GET {path} answered {resp.status_code}: {resp.text}")
    return resp.json()


def _cli(env: dict[str, str], workdir: Path, *args: str, server: str, token: str) -> int:
    """Run a modelgate sign-off command as the holder of ``token``; print what it says."""
    shown = " ".join(args)
    click.echo(f"   $ modelgate {shown} --server {server} --token <token>")
    proc = subprocess.run(
        _modelgate(*args, "--server", server),
        env={**env, "MODELGATE_TOKEN": token},
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    for line in (proc.stdout + proc.stderr).strip().splitlines():
        click.echo(_wrap(line, "     "))
    click.echo(f"     (exit {proc.returncode})\n")
    return proc.returncode


def _last_admission(workdir: Path, model: str) -> str:
    """The approvals recorded with the newest allowed decision of ``model``."""
    from modelgate.inventory import queries
    from modelgate.inventory.db import Database

    db = Database(f"sqlite:///{workdir / 'inventory.db'}")
    try:
        rows = queries.decisions(db, model=model, allowed=True, limit=1)
    finally:
        db.dispose()
    return json.dumps(rows[0]["approvals"]) if rows else "(no admission recorded)"


@click.command()
@click.option("--keep", is_flag=True, help="Keep the work directory (certificates, database).")
@click.option(
    "--examples",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=EXAMPLES,
    show_default=True,
)
def main(keep: bool, examples: Path) -> None:
    """Run the modelgate demo."""
    tmp = Path(tempfile.mkdtemp(prefix="modelgate-demo-"))
    try:
        code = run_demo(tmp, examples)
    except DemoError as e:
        click.echo(f"demo failed: {e}", err=True)
        code = 1
    finally:
        if keep:
            click.echo(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
