"""Kubernetes resource quantities, parsed and formatted in one place.

A quantity is a decimal number with an optional SI (``m``, ``k``, ``M``, ``G`` …) or binary
(``Ki``, ``Mi``, ``Gi`` …) suffix, or a plain number: ``"500m"`` is 0.5 (CPU cores), ``"4Gi"``
is 4 * 2**30 (bytes), ``"1.5"`` is 1.5. The auditor parses what discovery reads with these
functions, and the capacity figures (:mod:`modelgate.capacity`) parse what the auditor stored
with the same ones, so a quantity means the same thing everywhere.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

#: extended resources that are GPUs (any other resource named ``…/gpu`` counts too)
GPU_RESOURCES: tuple[str, ...] = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915")

_SUFFIXES: dict[str, Decimal] = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^\s*([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]{0,2})\s*$")


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource quantity as a number (``"500m"`` -> 0.5); ``None`` if malformed."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    m = _QUANTITY.match(str(value))
    if not m or m.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(m.group(1)) * _SUFFIXES[m.group(2)]
    except InvalidOperation:
        return None


def format_quantity(resource: str, amount: Decimal) -> str:
    """A readable quantity: CPU in millicores, memory in Mi/Gi, anything else as a number."""
    if resource == "cpu":
        milli = int((amount * 1000).to_integral_value())
        return f"{milli // 1000}" if milli % 1000 == 0 else f"{milli}m"
    if resource in ("memory", "ephemeral-storage"):
        b = int(amount)
        for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if b >= size and b % size == 0:
                return f"{b // size}{unit}"
        if b >= 2**20:
            return f"{(Decimal(b) / 2**20).quantize(Decimal('0.1'))}Mi"
        return str(b)
    return str(amount.normalize()) if amount == amount.to_integral_value() else str(amount)


def is_gpu_resource(name: str) -> bool:
    """Whether the extended resource ``name`` is a GPU (``nvidia.com/gpu``, ``amd.com/gpu``, …)."""
    return name in GPU_RESOURCES or name.endswith("/gpu")


def cores(value: Any) -> float | None:
    """A CPU quantity in cores (``"250m"`` -> 0.25)."""
    q = parse_quantity(value)
    return float(q) if q is not None else None


def bytes_of(value: Any) -> int | None:
    """A memory quantity in bytes (``"1Gi"`` -> 1073741824)."""
    q = parse_quantity(value)
    return int(q) if q is not None else None
