"""Text formats of a :class:`~effdsl.viz.view.View`: Graphviz DOT and Mermaid."""

from __future__ import annotations

from effdsl.viz.view import Node, View, palette


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label_text(node: Node) -> list[str]:
    return ["  ".join(part for part in pair if part) for pair in node.lines]


def dot(v: View) -> str:
    """Graphviz source: a cluster per stage, residual edges dashed."""
    out = [f"digraph {_dot_str(v.name)} {{",
           f"  graph [rankdir=TB, fontname=\"Helvetica\", labelloc=t, nodesep=0.3, ranksep=0.3, "
           f"label={_dot_str(chr(10).join((f'{v.name} ({v.caption}), {v.level} level',) + v.totals))}];",
           '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize=10];',
           '  edge [color="#57606a", arrowsize=0.7];']

    def node_line(node: Node, indent: str) -> str:
        _, accent = palette(node.slot, len(v.groups) - 2 if v.groups else len(v.nodes) - 2)
        return (f"{indent}{_dot_str(node.id)} [label={_dot_str(chr(10).join(_label_text(node)))}, "
                f"color=\"{accent}\"];")

    if v.groups:
        for i, group in enumerate(v.groups):
            tint, accent = palette(group.slot, len(v.groups) - 2)
            out.append(f"  subgraph cluster_{i} {{")
            out.append(f"    graph [label={_dot_str(f'{group.title} · {group.caption}')}, "
                       f"style=\"rounded,filled\", fillcolor=\"{tint}\", color=\"{accent}\"];")
            out += [node_line(v.node(node_id), "    ") for node_id in group.nodes]
            out.append("  }")
    else:
        out += [node_line(node, "  ") for node in v.nodes]
    for edge in v.edges:
        attrs = ' [style=dashed, color="#bc4c00", label="+", fontcolor="#bc4c00"]' if edge.kind == "residual" else ""
        out.append(f"  {_dot_str(edge.src)} -> {_dot_str(edge.dst)}{attrs};")
    out.append("}")
    return "\n".join(out) + "\n"


def _mmd_str(text: str) -> str:
    return '"' + text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;") + '"'


def mermaid(v: View) -> str:
    """Mermaid flowchart (renders in GitHub markdown): a subgraph per stage, residuals dotted."""
    ids = {node.id: f"n{i}" for i, node in enumerate(v.nodes)}
    out = [f"%% effdsl viz: {v.name} ({v.caption}), {v.level} level", "%% " + " · ".join(v.totals), "flowchart TB"]

    def node_line(node: Node, indent: str) -> str:
        text = "<br/>".join(t.replace("<", "‹").replace(">", "›") for t in _label_text(node))
        return f'{indent}{ids[node.id]}["{text.replace(chr(34), "#quot;")}"]'

    if v.groups:
        for i, group in enumerate(v.groups):
            out.append(f"  subgraph s{i}[{_mmd_str(f'{group.title} · {group.caption}')}]")
            out += [node_line(v.node(node_id), "    ") for node_id in group.nodes]
            out.append("  end")
    else:
        out += [node_line(node, "  ") for node in v.nodes]
    for edge in v.edges:
        arrow = " -.->|+| " if edge.kind == "residual" else " --> "
        out.append(f"  {ids[edge.src]}{arrow}{ids[edge.dst]}")
    return "\n".join(out) + "\n"
