"""Print (or, with --write, refresh in README.md) the chart's values table from the `# --`
comments of values.yaml. tests/charts/test_chart_files.py checks README.md is current."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent
START, END = "<!-- values:start -->", "<!-- values:end -->"


def table(values_text: str) -> str:
    values = yaml.safe_load(values_text)
    rows: list[str] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in values_text.splitlines():
        s = line.strip()
        if s.startswith("# --"):
            comment = [s[4:].strip()]
            continue
        if s.startswith("#") and comment:
            comment.append(s[1:].strip())
            continue
        if not s or s.startswith("#"):
            continue
        m = re.match(r"^(\s*)([A-Za-z_][\w.-]*):", line)
        if not m or s.startswith("-"):
            comment = []
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        if comment:
            key = ".".join(k for _, k in stack)
            node: Any = values
            for k in key.split("."):
                node = node[k]
            default = yaml.safe_dump(node, default_flow_style=True, width=10**6).strip()
            default = default.removesuffix("...").strip().replace("|", "\\|")
            if len(default) > 60:
                default = "see values.yaml"
            text = " ".join(comment).replace("|", "\\|")  # a table cell: escape the pipes
            rows.append(f"| `{key}` | `{default}` | {text} |")
        comment = []
    return "\n".join(["| Key | Default | Description |", "|---|---|---|", *rows])


def render_readme(readme: str, values_text: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table(values_text)}\n{END}{tail}"


def main() -> int:
    values_text = (CHART / "values.yaml").read_text(encoding="utf-8")
    if "--write" in sys.argv:
        readme = CHART / "README.md"
        readme.write_text(render_readme(readme.read_text(encoding="utf-8"), values_text))
    else:
        print(table(values_text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
