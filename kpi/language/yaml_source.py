"""YAML loading that remembers where every value came from.

Definition errors must name the file and line, so we keep a map from each value's path
(``("kpis", 3, "numerator", "expr")``) to its line while we parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass
class LocatedYaml:
    """A parsed YAML document plus the line (1-based) of every mapping key and list item."""

    path: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    # (location, line) of keys written twice in one mapping; the second value was ignored.
    duplicates: list[tuple[Path_, int]] = field(default_factory=list)

    def line_of(self, location: Path_) -> int | None:
        """The line of ``location``, or of its nearest ancestor that has one."""
        loc = tuple(location)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)


# One loader turns scalar nodes into Python values; it never reads a stream itself.
_SCALARS = yaml.SafeLoader("")
# libyaml's parser when PyYAML has it (it keeps the same marks), ~10x faster than Python's.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlSyntaxError(ValueError):
    """The file is not valid YAML; the message names the file and line."""

    def __init__(self, path: Path, line: int | None, problem: str):
        self.path, self.line, self.problem = path, line, problem
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")


def load_located_yaml(path: Path) -> LocatedYaml:
    """Parse ``path`` and record the line of every value."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(path, line, f"invalid YAML: {problem}") from exc
    doc = LocatedYaml(path, None)
    if node is not None:
        doc.data = _construct(node, (), doc, _Aliases())
    return doc


# Values an alias may bring in, all aliases of a file together. A definition has no need for
# more; a "billion laughs" file (aliases of aliases) would otherwise be expanded into memory
# until the process dies.
MAX_ALIAS_VALUES = 10_000


@dataclass
class _Aliases:
    seen: set[int] = field(default_factory=set)  # nodes built once: a second visit is an alias
    expanded: int = 0  # values built through aliases so far
    use: Path_ | None = None  # where the outermost alias being expanded is used


def _construct(node: yaml.Node, location: Path_, doc: LocatedYaml, aliases: _Aliases) -> Any:
    outermost = False
    if id(node) in aliases.seen and aliases.use is None:
        aliases.use, outermost = location, True
    aliases.seen.add(id(node))
    if aliases.use is not None:
        aliases.expanded += 1
        if aliases.expanded > MAX_ALIAS_VALUES:
            use = aliases.use
            # The alias node is the anchored node itself, so its mark is the anchor's line:
            # name the line of the key (or list) the alias is written under instead.
            line = doc.lines.get(use) if use and isinstance(use[-1], str) else None
            line = line or doc.line_of(use[:-1])
            where = ".".join(str(p) for p in use) or "(document)"
            raise YamlSyntaxError(
                doc.path,
                line,
                f"{where}: YAML aliases expand to more than {MAX_ALIAS_VALUES:,} values "
                "(aliases of aliases?); write the values out or use fewer aliases",
            )
    try:
        return _build(node, location, doc, aliases)
    finally:
        if outermost:
            aliases.use = None


def _build(node: yaml.Node, location: Path_, doc: LocatedYaml, aliases: _Aliases) -> Any:
    doc.lines.setdefault(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _SCALARS.construct_object(key_node)
            child = (*location, key)
            line = key_node.start_mark.line + 1
            if key in result:
                # Plain YAML keeps the last value silently; a definition must not.
                doc.duplicates.append((child, line))
                continue
            doc.lines[child] = line
            result[key] = _construct(value_node, child, doc, aliases)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*location, i), doc, aliases) for i, item in enumerate(node.value)]
    return _SCALARS.construct_object(node)
