"""``make demo``: the webhook over TLS on the embedded defaults, fed the sample manifests.

Steps: make a throwaway dev CA and server certificate, create a SQLite inventory
(``modelgate db upgrade``), start ``modelgate serve`` on a free 127.0.0.1 port, wait for
``/readyz``, POST one AdmissionReview per object in ``examples/manifests`` (objects in a
namespace labelled ``modelgate.dev/enforcement=warn`` go to ``/validate/warn``, as the Helm
chart routes them), print every decision with its messages, stop the server and print the
inventory (``modelgate models list --output table``). Everything lives in a temporary
directory that is removed afterwards (``--keep`` keeps it).
"""

from __future__ import annotations

import os
import re
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
        PYTHONUNBUFFERED="1",
    )
    return env


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


def _wait_ready(base: str, ca: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    import requests

    deadline = time.monotonic() + 60
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"modelgate serve exited with {proc.returncode}:\n{_tail(log)}")
        try:
            resp = requests.get(f"{base}/readyz", verify=str(ca), timeout=2)
        except requests.RequestException as e:
            last = str(e)
        else:
            if resp.status_code == 200:
                return
            last = resp.text
        time.sleep(0.2)
    raise DemoError(f"the webhook did not become ready within 60s ({last}):\n{_tail(log)}")


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

    port = _free_port()
    base = f"https://127.0.0.1:{port}"
    log = workdir / "webhook.log"
    click.echo(f"3. starting modelgate serve on {base} (embedded Rego, SQLite)")
    with log.open("wb") as log_file:
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
    try:
        _wait_ready(base, certs.ca_cert, proc, log)
        click.echo("   ready.\n")
        click.echo("4. sending the sample manifests from examples/manifests as AdmissionReviews\n")
        modes = _namespace_modes(manifests)
        session = requests.Session()
        ca = str(certs.ca_cert)  # per request: REQUESTS_CA_BUNDLE would override session.verify
        for m in manifests:
            obj = m.obj
            kind = str(obj["kind"])
            if kind not in SUPPORTED_KINDS:  # namespaces, the samples' suite file
                continue
            meta = obj.get("metadata") or {}
            namespace = str(meta.get("namespace") or "default")
            mode = modes.get(namespace, "enforce")
            if mode == "off":
                click.echo(
                    f"- NOT SENT {kind} {namespace}/{meta.get('name')}: namespace {namespace} is "
                    f"labelled {ENFORCEMENT_LABEL}=off, so the webhook configuration excludes it\n"
                )
                continue
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
            label = f"{kind} {namespace}/{meta.get('name')} ({source})"
            print_decision(label, route, resp.json()["response"])
            click.echo("")
    finally:
        proc.send_signal(signal.SIGTERM)  # graceful: the recorder flushes before exiting
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    click.echo("5. the inventory (modelgate models list --output table)\n")
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
    return 0


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
