"""The chart's policy ConfigMap as the kubelet mounts it, for tests of both policy engines."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tests.charts.helm import one, render


def chart_policy_files(**set_json: Any) -> tuple[dict[str, str], list[str]]:
    """(path -> content) as the pods see them, and the OPA sidecar's arguments."""
    objs = render(set_json={"opa": {"enabled": True}, **set_json})
    data = one(objs, "ConfigMap")["data"]
    dep = one(objs, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in dep["volumes"] if v["name"] == "policies")
    files = {item["path"]: data[item["key"]] for item in volume["configMap"]["items"]}
    opa = next(c for c in dep["containers"] if c["name"] == "opa")
    return files, list(opa["args"])


class KubeletMount:
    """A ConfigMap volume as the kubelet's atomic writer lays it out: the files in a timestamped
    folder, ``..data`` pointing at it, one symlink per top-level entry through ``..data``; an
    update writes a new folder, swaps ``..data`` atomically and removes the old folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        self.files: dict[str, str] = {}
        root.mkdir(parents=True, exist_ok=True)

    def write(self, files: dict[str, str]) -> None:
        self.generation += 1
        ts = self.root / f"..2026_11_26_00_00_00.{self.generation}"
        for path, content in files.items():
            target = ts / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        tmp_link = self.root / "..data_tmp"
        tmp_link.symlink_to(ts.name)
        os.replace(tmp_link, self.root / "..data")  # the atomic swap
        for top in {p.split("/", 1)[0] for p in files}:
            link = self.root / top
            if not link.is_symlink():
                link.symlink_to(f"..data/{top}")
        if self.generation > 1:
            shutil.rmtree(self.root / f"..2026_11_26_00_00_00.{self.generation - 1}")
        self.files = dict(files)
