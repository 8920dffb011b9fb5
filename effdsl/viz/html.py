"""The HTML picture: one self-contained page (inline CSS and script, nothing fetched).

The page stacks the stem, the stages and the head top to bottom, each a box with the
stage's scaled numbers. A stage opens on click to show its blocks, left to right (a
residual block under an orange bracket ending in ``⊕``); a block opens to list its
operators. Hovering any box shows its details in the side panel (operator or block
type, shapes, channels, params, MACs, the spec line); clicking pins them there.

``level`` sets what is open at first: ``stage`` nothing, ``block`` every stage,
``op`` every stage and block. The page carries all three levels either way.
"""

from __future__ import annotations

import json
from html import escape

from effdsl.ir.graph import CompiledGraph
from effdsl.viz.view import RESIDUAL, Node, View, caption_of, palette, view

_CSS = """
:root { --ink: #1f2328; --muted: #57606a; --line: #8c959f; --res: {residual}; --panel: 310px; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.35 'Segoe UI', Helvetica, Arial, 'DejaVu Sans', sans-serif; color: var(--ink);
  background: #ffffff; }
header { padding: 14px 18px 8px; border-bottom: 1px solid #d0d7de; }
h1 { font-size: 20px; margin: 0 0 4px; }
h1 .caption { color: var(--muted); font-weight: normal; }
header p { margin: 2px 0; color: var(--muted); }
.tools { margin-top: 8px; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.tools button { font: inherit; padding: 3px 10px; border: 1px solid #d0d7de; border-radius: 6px; background: #f6f8fa;
  cursor: pointer; }
.tools .hint { color: var(--muted); }
.legend-res { color: var(--res); font-weight: bold; }
main { display: grid; grid-template-columns: minmax(0, 1fr) var(--panel); gap: 16px; padding: 14px 18px; }
#net { display: flex; flex-direction: column; gap: 22px; }
.stage { position: relative; display: flex; flex-direction: column; align-items: flex-start; gap: 4px; padding: 10px;
  border-radius: 10px;
  background: var(--tint); border: 1px solid color-mix(in srgb, var(--accent) 35%%, transparent); }
.stage + .stage::before { content: ""; position: absolute; left: 140px; top: -23px; height: 22px;
  border-left: 2px solid var(--line); }
.stage + .stage::after { content: ""; position: absolute; left: 136px; top: -7px; border: 5px solid transparent;
  border-top: 6px solid var(--line); }
.node { cursor: pointer; }
.node:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
.box { background: #ffffff; border: 1.3px solid var(--accent); border-left: 5px solid var(--accent);
  border-radius: 6px; padding: 5px 9px 6px; }
.stage-box { width: 290px; }
.box.selected { box-shadow: 0 0 0 3px color-mix(in srgb, var(--accent) 35%%, transparent); }
.label .l1 { display: flex; justify-content: space-between; gap: 8px; }
.label .l1 b { white-space: nowrap; }
.label .tag { color: var(--accent); white-space: nowrap; }
.label .l { color: var(--muted); display: flex; justify-content: space-between; gap: 8px; white-space: nowrap; }
.stage-box .chev::before { content: "▸"; display: inline-block; width: 1.1em; color: var(--accent); }
.stage.open > .stage-box .chev::before { content: "▾"; }
.stage-body { display: none; flex-wrap: wrap; align-items: flex-start; gap: 26px 44px; font-size: 12px;
  padding: 16px 4px 4px 46px; position: relative; width: 100%%; }
.stage.open > .stage-body { display: flex; }
.stage-body::before { content: ""; position: absolute; left: 12px; top: 0; height: 42px; width: 28px;
  border-left: 2px solid var(--line); border-bottom: 2px solid var(--line); border-bottom-left-radius: 6px; }
.block { position: relative; width: 244px; }
.block .label { padding: 0; }
.block + .block::before { content: ""; position: absolute; left: -46px; top: 24px; width: 40px;
  border-top: 2px solid var(--line); }
.block + .block::after { content: ""; position: absolute; left: -11px; top: 20px; border: 5px solid transparent;
  border-left: 6px solid var(--line); }
.block.residual .bracket { position: absolute; left: -16px; right: -15px; top: -13px; height: 37px;
  border: 2px solid var(--res); border-bottom: none; border-radius: 8px 8px 0 0; pointer-events: none; }
.block.residual .plus { position: absolute; right: -25px; top: 16px; width: 18px; height: 18px; line-height: 14px;
  text-align: center; border: 2px solid var(--res); border-radius: 50%%; background: #ffffff; color: var(--res);
  font-weight: bold; pointer-events: none; z-index: 1; }
.ops { display: none; list-style: none; margin: 6px 0 0; padding: 4px 0 0; border-top: 1px dashed #d0d7de;
  font-size: 11.5px; }
.block.open > .ops, .stage.open > .stage-body > .ops { display: block; }
.stage-body > .ops { margin: 0; border: none; background: #ffffff; border-radius: 6px; padding: 4px 8px;
  border: 1px solid var(--accent); }
.op { display: flex; justify-content: space-between; gap: 8px; padding: 1px 3px; border-radius: 3px;
  white-space: nowrap; }
.op:hover, .op.selected { background: color-mix(in srgb, var(--accent) 15%%, transparent); }
.op .k { color: var(--muted); }
aside { position: sticky; top: 12px; align-self: start; max-height: calc(100vh - 24px); overflow: auto;
  border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 12px; background: #f6f8fa; }
aside h2 { font-size: 15px; margin: 0; word-break: break-all; }
aside .kind { color: var(--muted); margin: 2px 0 8px; }
aside table { border-collapse: collapse; width: 100%%; }
aside th { text-align: left; color: var(--muted); font-weight: normal; padding: 2px 8px 2px 0; vertical-align: top;
  white-space: nowrap; }
aside td { padding: 2px 0; font-variant-numeric: tabular-nums; word-break: break-word; }
aside td.code { font-family: ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 12px; }
""".replace("{residual}", RESIDUAL)

_JS = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("viz-data").textContent);
  var panel = document.getElementById("details");
  var pinned = "network";
  function show(key) {
    var d = data[key] || data.network;
    panel.querySelector("h2").textContent = d.id;
    panel.querySelector(".kind").textContent = d.kind;
    var body = panel.querySelector("tbody");
    while (body.firstChild) { body.removeChild(body.firstChild); }
    d.facts.forEach(function (fact) {
      var row = document.createElement("tr"), th = document.createElement("th"), td = document.createElement("td");
      th.textContent = fact[0];
      td.textContent = fact[1];
      if (fact[0] === "spec line") { td.className = "code"; }
      row.appendChild(th);
      row.appendChild(td);
      body.appendChild(row);
    });
    panel.setAttribute("data-key", d === data.network ? "network" : key);
  }
  function setOpen(el, open) {
    el.classList.toggle("open", open);
    var handle = el.classList.contains("stage") ? el.querySelector(".stage-box") : el;
    handle.setAttribute("aria-expanded", open ? "true" : "false");
  }
  function activate(node) {
    if (node.classList.contains("stage-box")) {
      var stage = node.parentNode;
      setOpen(stage, !stage.classList.contains("open"));
    } else if (node.classList.contains("block")) {
      setOpen(node, !node.classList.contains("open"));
    }
    document.querySelectorAll(".node.selected").forEach(function (n) { n.classList.remove("selected"); });
    node.classList.add("selected");
    pinned = node.getAttribute("data-key");
    show(pinned);
  }
  document.addEventListener("mouseover", function (event) {
    var node = event.target.closest(".node");
    show(node ? node.getAttribute("data-key") : pinned);
  });
  document.addEventListener("click", function (event) {
    var node = event.target.closest(".node");
    if (node) { activate(node); }
  });
  document.addEventListener("keydown", function (event) {
    var node = event.target;
    if ((event.key === "Enter" || event.key === " ") && node.classList && node.classList.contains("node")) {
      event.preventDefault();
      activate(node);
    }
  });
  function all(selector, open) {
    document.querySelectorAll(selector).forEach(function (el) { setOpen(el, open); });
  }
  document.getElementById("expand-all").addEventListener("click", function () { all(".stage", true); });
  document.getElementById("collapse-all").addEventListener("click", function () {
    all(".stage", false); all(".block", false);
  });
  document.getElementById("show-ops").addEventListener("click", function () {
    all(".stage", true); all(".block", true);
  });
  show(pinned);
})();
"""


def _label(node: Node, chevron: bool = False) -> str:
    (title, tag), rest = node.lines[0], node.lines[1:]
    chev = '<span class="chev"></span>' if chevron else ""
    out = [f'<div class="label"><div class="l1"><b>{chev}{escape(title)}</b>'
           f'<span class="tag">{escape(tag)}</span></div>']
    for left, right in rest:
        if right.startswith("+"):
            right = ""  # the bracket says it
        out.append(f'<div class="l"><span>{escape(left)}</span><span>{escape(right)}</span></div>')
    out.append("</div>")
    return "".join(out)


def _ops(op_nodes: list[Node], prefix: str) -> str:
    items = []
    for node in op_nodes:
        short = node.id[len(prefix) + 1:] if node.id.startswith(prefix + ".") else node.id
        channels = dict(node.facts)["channels"].replace(" → ", "→")
        items.append(f'<li class="op node" data-key="op:{escape(node.id)}" tabindex="0" title="{escape(node.id)}">'
                     f'<span><b>{escape(short)}</b> <span class="k">{escape(node.lines[0][1])}</span></span>'
                     f'<span class="k">{escape(channels)}</span></li>')
    return '<ol class="ops">' + "".join(items) + "</ol>"


def _entry(node: Node, level: str) -> dict[str, object]:
    return {"id": node.id, "kind": f"{level} level: {node.kind}", "facts": [list(f) for f in node.facts]}


def html(graph: CompiledGraph, level: str = "block", source: str | None = None) -> str:
    plan = graph.plan
    views: dict[str, View] = {lv: view(graph, lv, source) for lv in ("stage", "block", "op")}
    stages_v, blocks_v, ops_v = views["stage"], views["block"], views["op"]
    n = len(plan.stages)
    data: dict[str, dict[str, object]] = {}
    scaling, cost = stages_v.totals
    data["network"] = {"id": plan.name, "kind": caption_of(graph), "facts": [
        ["width_mult", f"{plan.width_mult:.6g}"], ["depth_mult", f"{plan.depth_mult:.6g}"],
        ["resolution", str(plan.resolution)], ["stages", str(n)], ["blocks", str(plan.num_blocks)],
        ["params", f"{sum(node.params for node in stages_v.nodes):,}"],
        ["MACs", f"{sum(node.macs for node in stages_v.nodes):,}"],
        ["classes", str(plan.classes)], ["hint", "hover a box for its details; click to pin them"]]}
    for lv, v in views.items():
        for node in v.nodes:
            data[f"{lv}:{node.id}"] = _entry(node, lv)
    ops_of = {node.id: node for node in ops_v.nodes}
    open_stages = " open" if level in ("block", "op") else ""
    open_blocks = " open" if level == "op" else ""
    sections = []
    for stage in stages_v.nodes:
        tint, accent = palette(stage.slot, n)
        blocks = [b for b in blocks_v.nodes if b.slot == stage.slot]
        expanded = "true" if open_stages else "false"
        parts = [f'<section class="stage{open_stages}" data-slot="{stage.slot}" '
                 f'style="--tint: {tint}; --accent: {accent};">',
                 f'<div class="box stage-box node" data-key="stage:{escape(stage.id)}" role="button" tabindex="0" '
                 f'aria-expanded="{expanded}">{_label(stage, chevron=True)}</div>',
                 '<div class="stage-body">']
        if stage.kind in ("stem", "head"):
            parts.append(_ops([ops_of[name] for name in stage.ops], ""))
        else:
            for block in blocks:
                res = " residual" if block.residual else ""
                marks = '<span class="bracket"></span><span class="plus">+</span>' if block.residual else ""
                parts.append(f'<div class="box block node{res}{open_blocks}" data-key="block:{escape(block.id)}" '
                             f'role="button" tabindex="0" aria-expanded="{"true" if open_blocks else "false"}">'
                             f'{marks}{_label(block)}{_ops([ops_of[name] for name in block.ops], block.id)}</div>')
        parts.append("</div></section>")
        sections.append("\n".join(parts))
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    title = f"{plan.name} ({caption_of(graph)})"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="effdsl viz">
<title>{escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{escape(plan.name)} <span class="caption">({escape(caption_of(graph))})</span></h1>
<p>{escape(scaling)}</p>
<p>{escape(cost)}</p>
<div class="tools"><button type="button" id="expand-all">Open all stages</button>
<button type="button" id="show-ops">Show all operators</button>
<button type="button" id="collapse-all">Close all</button>
<span class="hint">Click a stage to open it, a block to list its operators; hover any box for its details.
<span class="legend-res">⊕</span> residual: the block's input is added to its output.</span></div>
</header>
<main>
<div id="net">
{chr(10).join(sections)}
</div>
<aside id="details" aria-live="polite"><h2></h2><div class="kind"></div><table><tbody></tbody></table></aside>
</main>
<script type="application/json" id="viz-data">{payload}</script>
<script>{_JS}</script>
</body>
</html>
"""
