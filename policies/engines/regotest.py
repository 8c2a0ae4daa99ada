"""Running the bundle's Rego unit tests with rego-cpp, for machines without an ``opa`` binary.

``opa test`` is the reference runner (``make tools`` installs it). Without it every ``test_*``
rule is evaluated by rego-cpp in a worker process: rego-cpp 1.5 can abort the whole process
on some constructs (notably ``with input as`` around rules that call functions), so a crash
fails only the test being evaluated, and the worker restarts with the next one.

Worker protocol: ``python -m policies.engines.regotest POLICY_DIR START`` prints one JSON line
per test, starting at index START of :func:`discover_tests`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from policies.bundle import Bundle, load_bundle

_PACKAGE_RE = re.compile(r"^package\s+([A-Za-z0-9_.]+)", re.MULTILINE)
_TEST_RULE_RE = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)

REPO_TOOLS_BIN = Path(__file__).resolve().parent.parent.parent / ".tools" / "bin"


def find_opa() -> str | None:
    """The opa binary, the reference test runner: the repository's .tools/bin first, then
    PATH."""
    candidate = REPO_TOOLS_BIN / "opa"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("opa")


CRASH_HINT = (
    "rego-cpp crashed evaluating this test (a known rego-cpp limitation); "
    "install opa with `make tools` to run the tests with the reference runner"
)


@dataclass(frozen=True)
class RegoTestResult:
    name: str  # data.<package>.<rule>
    passed: bool
    error: str = ""
    crashed: bool = False  # rego-cpp aborted: the test could not be run at all


def discover_tests(bundle: Bundle) -> list[tuple[str, str]]:
    """(test module, ``data.<package>.<rule>``) of every ``test_*`` rule, in file order."""
    refs: list[tuple[str, str]] = []
    for relpath, source in sorted(bundle.test_modules.items()):
        match = _PACKAGE_RE.search(source)
        if match is None:
            continue
        for rule in dict.fromkeys(_TEST_RULE_RE.findall(source)):
            refs.append((relpath, f"data.{match.group(1)}.{rule}"))
    return refs


def _worker(policy_dir: Path, start: int) -> int:
    """Each test module is compiled with the served modules and the helper test modules
    (those without tests), so a module rego-cpp cannot handle fails only its own tests."""
    from regopy import Interpreter, RegoError

    bundle = load_bundle(policy_dir)
    tests = discover_tests(bundle)
    with_tests = {relpath for relpath, _ref in tests}
    helpers = {rel: src for rel, src in bundle.test_modules.items() if rel not in with_tests}
    interpreters: dict[str, Interpreter] = {}
    for index in range(start, len(tests)):
        relpath, ref = tests[index]
        passed, error = False, ""
        try:
            interpreter = interpreters.get(relpath)
            if interpreter is None:
                interpreter = Interpreter()
                interpreter.add_data_json(bundle.data_json())
                modules = {**bundle.modules, **helpers, relpath: bundle.test_modules[relpath]}
                for rel, source in sorted(modules.items()):
                    interpreter.add_module(rel, source)
                interpreter.set_input_term("{}")
                interpreters[relpath] = interpreter
            output = interpreter.query(f"x = {ref}")
            if output.ok():
                value = output.results[0].bindings.get("x") if output.results else None
                passed = value is True
                error = "" if passed else "undefined (a condition did not hold)"
            else:
                error = str(output)
        except (RegoError, ValueError) as e:
            error = str(e)
        print(json.dumps({"i": index, "passed": passed, "error": error[:2000]}), flush=True)
    return 0


def run_rego_tests(policy_dir: Path, timeout: float = 120.0) -> list[RegoTestResult]:
    """Run every test; a test that crashes rego-cpp is a failure with :data:`CRASH_HINT`."""
    bundle = load_bundle(policy_dir)
    tests = discover_tests(bundle)
    results: dict[int, RegoTestResult] = {}
    start = 0
    while start < len(tests):
        proc = subprocess.run(
            [sys.executable, "-m", "policies.engines.regotest", str(policy_dir), str(start)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        last = start - 1
        for line in proc.stdout.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            i = int(row["i"])
            results[i] = RegoTestResult(tests[i][1], bool(row["passed"]), str(row["error"]))
            last = i
        if proc.returncode == 0 and last >= len(tests) - 1:
            break
        crashed = last + 1
        if crashed < len(tests):
            results[crashed] = RegoTestResult(tests[crashed][1], False, CRASH_HINT, crashed=True)
        start = crashed + 1
    return [results[i] for i in sorted(results)]


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1]), int(sys.argv[2])))
