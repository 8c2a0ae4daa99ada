"""The ``modelgate`` command line. Sub-commands live beside the code they drive and are
imported lazily, so ``modelgate --help`` stays fast and each package keeps its boundaries."""

from __future__ import annotations

import importlib
from typing import Any

import click

from modelgate import __version__

# command name -> "module:attribute"
_COMMANDS: dict[str, str] = {
    "evaluate": "modelgate.evaluate:evaluate_command",
    "serve": "webhook.serve:serve_command",
    "db": "modelgate.inventory.cli:db_group",
    "models": "modelgate.inventory.cli:models_group",
    "policy": "modelgate.policy_cli:policy_group",
    "audit": "auditor.cli:audit_command",
    "report": "auditor.cli:report_command",
    "dashboard": "dashboard.serve:dashboard_command",
    "log": "modelgate.log_cli:log_group",
    "approve": "modelgate.approvals_cli:approve_command",
    "reject": "modelgate.approvals_cli:reject_command",
    "revoke": "modelgate.approvals_cli:revoke_command",
    "exempt": "modelgate.approvals_cli:exempt_command",
    "approvals": "modelgate.approvals_cli:approvals_group",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module_name, attr = _COMMANDS[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as e:
                if e.name and module_name.startswith(e.name):
                    return None
                raise
            cmd: Any = getattr(module, attr)
            assert isinstance(cmd, click.Command)
            return cmd
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="modelgate")
def main() -> None:
    """modelgate: admission and audit of ML models on Kubernetes."""


if __name__ == "__main__":
    main()
