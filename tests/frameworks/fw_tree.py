"""Span-tree helpers for the framework tests."""

from __future__ import annotations

from typing import Any, Dict, List, Optional


class Node:
    """A span (from ``span_start``) or an LLM call, with its children."""

    def __init__(self, event: Dict[str, Any]) -> None:
        self.event = event
        data = event["data"]
        if event["kind"] == "llm_call":
            self.kind = "llm_call"
            self.name = str(data.get("model") or data.get("provider"))
        else:
            self.kind = data["span_kind"]
            self.name = data["name"]
        self.span_id: str = event["span_id"]
        self.parent_span_id: Optional[str] = event.get("parent_span_id")
        self.trace_id: Optional[str] = event.get("trace_id")
        self.children: List[Node] = []
        self.parent: Optional[Node] = None
        self.end: Optional[Dict[str, Any]] = None

    @property
    def data(self) -> Dict[str, Any]:
        return dict(self.event["data"])

    @property
    def status(self) -> Optional[str]:
        if self.kind == "llm_call":
            return str(self.event["data"]["status"])
        return None if self.end is None else str(self.end["data"]["status"])

    def __repr__(self) -> str:
        return f"<{self.kind}:{self.name}>"


class Tree:
    """The trees in a list of wire events; ``str(tree)`` is one ``kind:name`` line per node."""

    def __init__(self, events: List[Dict[str, Any]]) -> None:
        self.events = events
        self.nodes: Dict[str, Node] = {}
        order: List[Node] = []
        for ev in events:
            if ev["kind"] in ("span_start", "llm_call"):
                node = Node(ev)
                assert node.span_id not in self.nodes, f"span id used twice: {ev}"
                self.nodes[node.span_id] = node
                order.append(node)
        for ev in events:
            if ev["kind"] == "span_end":
                node = self.nodes[ev["span_id"]]
                assert node.end is None, f"span ended twice: {node}"
                node.end = ev
        self.roots: List[Node] = []
        for node in order:
            parent = self.nodes.get(node.parent_span_id or "")
            if parent is None:
                assert node.parent_span_id is None, f"{node} has a parent that was never opened"
                self.roots.append(node)
            else:
                assert node.trace_id == parent.trace_id, f"{node} is in another trace than its parent"
                node.parent = parent
                parent.children.append(node)

    def find(self, kind: Optional[str] = None, name: Optional[str] = None) -> List[Node]:
        return [
            n
            for n in self.nodes.values()
            if (kind is None or n.kind == kind) and (name is None or n.name == name)
        ]

    def one(self, kind: Optional[str] = None, name: Optional[str] = None) -> Node:
        found = self.find(kind, name)
        assert len(found) == 1, f"expected one {kind}:{name}, found {found}\n{self}"
        return found[0]

    def llm_calls(self) -> List[Node]:
        return self.find("llm_call")

    def all_ended(self) -> bool:
        return all(n.end is not None for n in self.nodes.values() if n.kind != "llm_call")

    def __str__(self) -> str:
        lines: List[str] = []

        def walk(node: Node, depth: int) -> None:
            suffix = "" if node.status in (None, "success") else f" ({node.status})"
            lines.append("  " * depth + f"{node.kind}:{node.name}{suffix}")
            for child in node.children:
                walk(child, depth + 1)

        for root in self.roots:
            walk(root, 0)
        return "\n".join(lines)
