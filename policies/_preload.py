"""Load rego-cpp's native library before anything else does.

regopy (the embedded engine) must be loaded before greenlet, which SQLAlchemy imports: when
greenlet's extension is loaded first, every embedded evaluation leaks about 200 KB (measured:
~209 MiB per 1,000 evaluations; ``tests/policies/test_memory.py`` guards it). ``modelgate``'s
package ``__init__`` imports this module, so every process (CLI, webhook, auditor, tests) loads
regopy first. This module must import nothing from modelgate.
"""

import contextlib

with contextlib.suppress(ImportError):  # regopy missing: the engine factory reports it
    import regopy  # noqa: F401
