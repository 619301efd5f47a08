"""The YAML loader of config files: PyYAML's SafeLoader, stricter where it would mislead,
crash or hang.

- A key repeated in one mapping is an error (PyYAML silently keeps the last one).
- A key YAML reads as something else than a string (`1:`, `yes:`, `~:`, a date) is an
  error naming it, rather than a config error about a key path it cannot be part of.
- Nesting deeper than `MAX_DEPTH` is an error: PyYAML recurses once per level and would
  die of a RecursionError.
- A document whose aliases expand to more than `MAX_VALUES` values is an error: a
  kilobyte of nested aliases can stand for billions of values, and an alias inside the
  node it names for infinitely many, which the bridge would walk (environment expansion,
  validation) for ever or until a RecursionError.

Each raises a `yaml.MarkedYAMLError`, which `bridge.config` reports as one
`file:line:col: message` line.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml

MAX_DEPTH = 100
MAX_VALUES = 100_000


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping instead of keeping the last,
    keys that are not strings, and documents too deep or too large once aliases expand."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}) > MAX_VALUES:
            raise yaml.composer.ComposerError(
                None, None, f"aliases expand to more than {MAX_VALUES} values", node.start_mark
            )
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key_node, yaml.ScalarNode) and not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key_node.value!r} is not a string: quote it",
                    key_node.start_mark,
                )
            if not isinstance(key, str):
                continue  # SafeLoader itself rejects unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values in `node` with every alias expanded; an aliased node is counted once per
    use but measured once (`sizes`), so this takes time linear in the file. A node that
    holds an alias of itself expands for ever: more than `MAX_VALUES`."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_VALUES + 1  # what an alias of it inside it stands for
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = size
    return size
