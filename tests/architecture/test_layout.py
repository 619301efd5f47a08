"""The house rules a newcomer relies on to find where a change goes: no import cycles
(type-only imports included), sinks built on the core alone, small modules, and every
package's public names exported from its `__init__`."""

from __future__ import annotations

import importlib

import pytest

from tests.architecture.imports import ROOT, cycles, graph, modules

MAX_LINES = 450


def test_no_module_takes_part_in_an_import_cycle():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_sinks_import_nothing_of_the_bridge_but_its_core():
    outside = {
        (name, target)
        for name, targets in graph().items()
        if name.split(".")[0] == "sinks"
        for target in targets
        if target.split(".")[0] == "bridge" and not target.startswith("bridge.core")
    }
    assert outside == set()


def test_the_core_imports_only_itself():
    outside = {
        (name, target)
        for name, targets in graph().items()
        if name.startswith("bridge.core")
        for target in targets
        if not target.startswith("bridge.core") and target != "bridge"
    }
    assert outside == set()


def test_no_module_is_over_450_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in modules().values()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


PUBLIC_PACKAGES = [
    "bridge.config",
    "bridge.core",
    "bridge.delivery",
    "bridge.feed",
    "bridge.offsets",
    "bridge.ops",
    "sinks",
]


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_a_package_exports_exactly_its_public_names(package):
    """As httpx's test_exported_members: `__all__` lists every public name the package
    holds, and nothing it does not."""
    module = importlib.import_module(package)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, type(importlib))  # submodules
    }
    assert {name for name in module.__all__ if not name.startswith("__")} == public
