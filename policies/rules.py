"""The rules a bundle applies, as its Rego says: the ``# METADATA`` block of each package
(``title`` and ``description``, OPA's annotation format), one entry per package, for the
audit report's statement of method.

A package whose METADATA sets ``custom: {rule: false}`` (shared helpers) is not a rule;
test modules are never rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from policies.bundle import Bundle

_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)


@dataclass(frozen=True)
class Rule:
    package: str
    title: str
    description: str  # one line
    path: str  # the module's path in the bundle


def _metadata_before(text: str, start: int) -> dict[str, object] | None:
    """The METADATA comment block that ends right before ``start`` (the package line)."""
    lines = text[:start].rstrip("\n").splitlines()
    block: list[str] = []
    for line in reversed(lines):
        if not line.startswith("#"):
            break
        block.append(line)
    block.reverse()
    for i, line in enumerate(block):
        if line.strip() == "# METADATA":
            body = "\n".join(
                entry[2:] if entry.startswith("# ") else entry[1:] for entry in block[i + 1 :]
            )
            try:
                loaded = yaml.safe_load(body)
            except yaml.YAMLError:
                return None
            return loaded if isinstance(loaded, dict) else None
    return None


def bundle_rules(bundle: Bundle) -> list[Rule]:
    """Every rule package of ``bundle`` with its title and description, by package name."""
    out: list[Rule] = []
    for path, text in sorted(bundle.modules.items()):
        match = _PACKAGE.search(text)
        if match is None:
            continue
        meta = _metadata_before(text, match.start())
        if not meta or not meta.get("title"):
            continue
        custom = meta.get("custom")
        if isinstance(custom, dict) and custom.get("rule") is False:
            continue
        description = " ".join(str(meta.get("description") or "").split())
        out.append(Rule(match.group(1), str(meta["title"]).strip(), description, path))
    return sorted(out, key=lambda r: r.package)
