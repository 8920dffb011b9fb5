"""effdsl viz: the pictures match the IR at each level, and the HTML page works in a browser.

The counts expected here are read off the plan and the operator graph, not off the
view the pictures are drawn from: stage level is stem + stages + head (a chain), block
level is stem + one node per block + head, plus one residual edge per ``add``; op level
is the IR itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from effdsl import viz
from effdsl.api import compile_spec
from effdsl.cli import app

import make_pictures
from conftest import ROOT, require
from reference import B0_STAGES, EFFICIENTNET

runner = CliRunner()
SVG = "{http://www.w3.org/2000/svg}"
MEMBERS = {"phi0": {"phi": 0.0}, "phi3": {"phi": 3.0}, "b7": {"preset": "b7"}}


@pytest.fixture(scope="module")
def members():
    return {name: compile_spec("efficientnet_b0", **kw) for name, kw in MEMBERS.items()}


def expected(graph, level: str) -> tuple[list[str], int]:
    """Node ids (in order) and the number of edges of ``level``, from the plan and the IR."""
    plan = graph.plan
    if level == "op":
        return [op.name for op in graph.ops()], graph.nx.number_of_edges()
    if level == "stage":
        names = ["stem"] + [f"stage{s.index + 1}" for s in plan.stages] + ["head"]
        return names, len(names) - 1
    names = ["stem"] + [f"stages.{s.index}.{j}" for s in plan.stages for j in range(s.repeats)] + ["head"]
    adds = sum(op.kind == "add" for op in graph.ops())
    return names, len(names) - 1 + adds


def dims(graph, level: str) -> dict[str, str]:
    """For each node, text its label must show: its scaled channels (and side, above op level)."""
    plan = graph.plan
    n = len(plan.stages)
    groups: dict[str, list] = {}
    for node in graph.nodes():
        op = node.op
        if level == "op":
            key = op.name
        elif op.stage < 0:
            key = "stem"
        elif op.stage >= n:
            key = "head"
        else:
            key = f"stage{op.stage + 1}" if level == "stage" else ".".join(op.name.split(".")[:3])
        groups.setdefault(key, []).append(node)
    out = {}
    for key, group in groups.items():
        first, last = group[0], group[-1]
        if level == "op":
            out[key] = f"{first.op.in_ch}→{first.op.out_ch} ch"
        elif key == "head":
            out[key] = f"{first.op.in_ch}→"
        else:
            out[key] = f"{first.op.in_ch}→{last.op.out_ch} ch · {first.in_shape[1]}×{first.in_shape[2]} → " \
                       f"{last.out_shape[1]}×{last.out_shape[2]}"
    return out


def _svg_nodes(root) -> list:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]


def _svg_edges(root) -> list:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]


@pytest.mark.parametrize("member", ["phi0", "phi3", "b7"])
@pytest.mark.parametrize("level", viz.LEVELS)
def test_svg_is_xml_with_the_irs_nodes_and_edges(members, member: str, level: str):
    compiled = members[member]
    text = viz.render(compiled.graph, "svg", level, compiled.source.text)
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    names, n_edges = expected(compiled.graph, level)
    nodes = _svg_nodes(root)
    assert [g.get("data-id") for g in nodes] == names
    edges = _svg_edges(root)
    assert len(edges) == n_edges
    ids = set(names)
    assert all(e.get("data-src") in ids and e.get("data-dst") in ids for e in edges)
    adds = sum(op.kind == "add" for op in compiled.graph.ops())
    assert sum(e.get("data-kind") == "residual" for e in edges) == (0 if level == "stage" else adds)
    want = dims(compiled.graph, level)
    for g in nodes:
        label = " ".join(t.text or "" for t in g.iter(f"{SVG}text"))
        assert want[g.get("data-id")] in label, (g.get("data-id"), label)
        tip = g.find(f"{SVG}title").text
        assert "params: " in tip and "MACs: " in tip and "spec line: " in tip


def test_phi3_looks_different_from_phi0(members):
    small = viz.render(members["phi0"].graph, "svg", "block")
    large = viz.render(members["phi3"].graph, "svg", "block")
    assert len(_svg_nodes(ET.fromstring(small))) == 18 and len(_svg_nodes(ET.fromstring(large))) == 33
    assert "3→32 ch · 224×224 → 112×112" in small and "3→40 ch · 341×341 → 171×171" in large
    assert ET.fromstring(large).get("height") > ET.fromstring(small).get("height")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot 4 on pyparsing 3.3
@pytest.mark.parametrize("level", viz.LEVELS)
def test_dot_parses_with_the_irs_nodes_and_edges(members, level: str):
    pydot = pytest.importorskip("pydot", reason="pydot is not installed (pip install pydot)")
    import networkx as nx

    compiled = members["phi3"]
    (parsed,) = pydot.graph_from_dot_data(viz.render(compiled.graph, "dot", level, compiled.source.text))
    graph = nx.nx_pydot.from_pydot(parsed)
    names, n_edges = expected(compiled.graph, level)
    assert set(graph.nodes) == set(names) and graph.number_of_nodes() == len(names)
    assert graph.number_of_edges() == n_edges


@pytest.mark.parametrize("level", viz.LEVELS)
def test_mermaid_has_one_node_per_ir_node(members, level: str):
    compiled = members["phi3"]
    text = viz.render(compiled.graph, "mmd", level, compiled.source.text)
    assert re.search(r"^flowchart TB$", text, re.MULTILINE)
    defined = re.findall(r'^\s*(n\d+)\["(.*)"\]$', text, re.MULTILINE)
    names, n_edges = expected(compiled.graph, level)
    assert len(defined) == len({node for node, _ in defined}) == len(names)
    assert [label.split("  ")[0] for _, label in defined] == names
    edges = re.findall(r"^\s*(n\d+) (?:-->|-\.->\|\+\|) (n\d+)$", text, re.MULTILINE)
    known = {node for node, _ in defined}
    assert len(edges) == n_edges and all(a in known and b in known for a, b in edges)


FORMATS = ("svg", "html", "dot", "mmd")
# Prints the SHA-256 of every picture of efficientnet_b0 at phi 1, by "format/level".
DIGESTS = """
import hashlib, json
from effdsl import viz
from effdsl.api import compile_spec
compiled = compile_spec("efficientnet_b0", phi=1)
print(json.dumps({f"{fmt}/{level}": hashlib.sha256(viz.render(compiled.graph, fmt, level, compiled.source.text)
                                                   .encode("utf-8")).hexdigest()
                  for fmt in FORMATS for level in LEVELS}))
""".replace("FORMATS", repr(FORMATS)).replace("LEVELS", repr(tuple(viz.LEVELS)))


def _digests_in_a_new_process(hash_seed: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", DIGESTS], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_output_is_the_same_bytes_in_separate_processes():
    """Interpreters with different string hashing (so other set and dict orders) draw the same bytes."""
    first = _digests_in_a_new_process("1")
    second = _digests_in_a_new_process("2024")
    assert len(first) == len(FORMATS) * len(viz.LEVELS) == len(set(first.values()))
    assert first == second


@pytest.mark.parametrize("name", sorted(make_pictures.PICTURES))
def test_doc_pictures_are_current(name: str):
    committed = make_pictures.IMG / name
    assert committed.is_file(), f"docs/img/{name} is missing: run python tests/make_pictures.py"
    assert committed.read_text(encoding="utf-8") == make_pictures.picture(name), (
        f"docs/img/{name} is out of date: run python tests/make_pictures.py and commit the result")


def test_doc_pictures_are_what_the_cli_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["viz", "efficientnet_b0", "--phi", "3", "-o", "b0.svg"])
    assert result.exit_code == 0, result.output
    assert result.output == "wrote b0.svg\n"
    assert (tmp_path / "b0.svg").read_text(encoding="utf-8") == \
        (make_pictures.IMG / "efficientnet_b0_phi3.svg").read_text(encoding="utf-8")


# --- the command ---

def b0_stage_labels() -> list[str]:
    """What each part of B0 must be labelled with: channels in -> out and the feature map sides.

    Read off the paper's B0 stage table (tests/reference.py): a 3x3 stride-2 stem to 32
    channels on 224 px, each stage's stride and output channels, and the head's 1280.
    """
    labels, in_ch, side = [], 3, 224
    for stride, out_ch in [(2, 32)] + [(s, c) for _, s, _, c, _ in B0_STAGES]:
        labels.append(f"{in_ch}→{out_ch} ch · {side}×{side} → {side // stride}×{side // stride}")
        in_ch, side = out_ch, side // stride
    return labels + [f"{in_ch}→1280"]


FORMAT_OPENINGS = {".svg": "<svg ", ".html": "<!DOCTYPE html>", ".htm": "<!DOCTYPE html>",
                   ".dot": 'digraph "efficientnet_b0" {', ".gv": 'digraph "efficientnet_b0" {',
                   ".mmd": "%% effdsl viz: efficientnet_b0"}


@pytest.mark.parametrize("suffix", sorted(FORMAT_OPENINGS))
def test_cli_writes_each_text_format(tmp_path, suffix: str):
    out = tmp_path / f"b0{suffix}"
    result = runner.invoke(app, ["viz", "efficientnet_b0", "--level", "stage", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {out}\n"
    text = out.read_text(encoding="utf-8")
    assert text.startswith(FORMAT_OPENINGS[suffix])
    if suffix == ".svg":
        assert ET.fromstring(text).tag == f"{SVG}svg"
    # The totals are torchvision's B0 (5,288,548 parameters, 385,814,752 MACs at 224 px).
    assert f"{EFFICIENTNET['b0'][4]:,} params" in text and f"{EFFICIENTNET['b0'][5]:,} MACs" in text
    missing = [label for label in b0_stage_labels() if label not in text]
    assert missing == [], f"{suffix} lacks {missing}"
    if suffix in (".html", ".htm"):  # the page holds every block, ready to be opened
        keys = re.findall(r'data-key="block:(stages\.\d+\.\d+)"', text)
        assert keys == [f"stages.{i}.{j}" for i, (*_, repeats) in enumerate(B0_STAGES) for j in range(repeats)]
    else:
        named = list(dict.fromkeys(re.findall(r"\bstage\d+\b", text)))  # once each, in order of appearance
        assert named == [f"stage{i + 1}" for i in range(len(B0_STAGES))]


def test_cli_errors_exit_2(tmp_path):
    bad = runner.invoke(app, ["viz", "efficientnet_b0", "-o", str(tmp_path / "b0.pdf")])
    assert bad.exit_code == 2
    assert bad.output == ("error[E405]: -o cannot write a '.pdf' file\n"
                          "   = help: name a file ending in .svg, .html, .dot, .mmd, .png\n")
    missing = runner.invoke(app, ["viz", "efficientnet_b0", "-o", str(tmp_path / "no" / "b0.svg")])
    assert missing.exit_code == 2 and "error[E405]: cannot write" in missing.output
    mixed = runner.invoke(app, ["viz", "efficientnet_b0", "--phi", "1", "--preset", "b1",
                                "-o", str(tmp_path / "x.svg")])
    assert mixed.exit_code == 2 and "error[E401]" in mixed.output
    level = runner.invoke(app, ["viz", "efficientnet_b0", "--level", "layer", "-o", str(tmp_path / "x.svg")])
    assert level.exit_code == 2
    assert not list(tmp_path.iterdir())


def test_png_without_cairosvg_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # import cairosvg now raises ImportError
    result = runner.invoke(app, ["viz", "efficientnet_b0", "-o", str(tmp_path / "b0.png")])
    assert result.exit_code == 2
    assert result.output.startswith("error[E405]: cannot write PNG: install cairosvg (pip install cairosvg)\n")
    assert not (tmp_path / "b0.png").exists()


def test_png_too_tall_for_a_bitmap_is_refused(tmp_path, monkeypatch):
    fake = types.ModuleType("cairosvg")
    fake.svg2png = lambda **kw: b"\x89PNG never called"
    monkeypatch.setitem(sys.modules, "cairosvg", fake)
    result = runner.invoke(app, ["viz", "efficientnet_b0", "--preset", "b7", "--level", "op",
                                 "-o", str(tmp_path / "b7.png")])
    assert result.exit_code == 2
    assert "error[E405]: cannot write PNG: the picture is" in result.output


def test_png_with_cairosvg(tmp_path):
    pytest.importorskip("cairosvg", reason="cairosvg is not installed: PNG output is tested by its message only")
    out = tmp_path / "b0.png"
    result = runner.invoke(app, ["viz", "efficientnet_b0", "--phi", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    svg_width, svg_height = (int(ET.fromstring(make_pictures.picture("efficientnet_b0_phi3.svg")).get(k))
                             for k in ("width", "height"))
    assert (width, height) == (2 * svg_width, 2 * svg_height)


def test_html_is_self_contained(members):
    page = viz.render(members["b7"].graph, "html", "block", members["b7"].source.text)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=|@import|url\(|https?://""", page)


# --- the HTML page in a real browser ---

CHROMIUM = os.environ.get("EFFDSL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Chromium driven by playwright; without either the browser tests skip, or fail when CI=true."""
    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: the HTML page is not opened in a browser "
                                     "(apt-get install chromium, as .ci/run does, or set EFFDSL_CHROMIUM)")
    require(importlib.util.find_spec("playwright") is not None,
            "playwright is not installed (pip install playwright): the HTML page is not opened in a browser")
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=120_000)
        yield chromium
        chromium.close()


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("request", lambda req: None if req.url.startswith(("file:", "data:", "about:"))
            else problems.append(f"request to {req.url}"))
    page.goto(path.as_uri())
    return page, problems


def _visible(page, selector: str) -> int:
    return page.locator(selector).evaluate_all("els => els.filter(e => e.getClientRects().length > 0).length")


def _details(page) -> str:
    return page.locator("#details").inner_text()


@pytest.mark.browser
def test_html_stages_open_and_show_details(browser, members, tmp_path):
    compiled = members["phi3"]
    out = tmp_path / "b0.html"
    written = runner.invoke(app, ["viz", "efficientnet_b0", "--phi", "3", "--level", "stage", "-o", str(out)])
    assert written.exit_code == 0, written.output
    plan = compiled.graph.plan
    page, problems = _open(browser, out)
    try:
        assert page.locator("section.stage").count() == len(plan.stages) + 2  # stem, stages, head
        assert _visible(page, ".block") == 0  # --level stage: every stage closed
        stage = plan.stages[5]
        section = f'section.stage[data-slot="{stage.index}"]'
        page.click(f"{section} > .stage-box")
        assert page.get_attribute(f"{section} > .stage-box", "aria-expanded") == "true"
        assert _visible(page, f"{section} .block") == stage.repeats
        assert _visible(page, ".block") == stage.repeats  # the other stages stay closed

        block_nodes = [n for n in compiled.graph.nodes() if n.op.name.startswith(f"stages.{stage.index}.1.")]
        block_ops = [n.op for n in block_nodes]
        page.hover(f'{section} .block[data-key="block:stages.{stage.index}.1"] .label')
        shown = _details(page)
        assert f"stages.{stage.index}.1" in shown
        assert f"{sum(n.params for n in block_nodes):,}" in shown and f"{sum(n.macs for n in block_nodes):,}" in shown
        spec_line = compiled.source.text.splitlines()[stage.span.line - 1].strip()
        assert f"{stage.span.line}: {spec_line}" in shown
        assert "x + f(x)" in shown

        page.click(f'{section} .block[data-key="block:stages.{stage.index}.1"] .label')
        assert _visible(page, f'{section} .block[data-key="block:stages.{stage.index}.1"] .op') == len(block_ops)
        dw = next(n for n in block_nodes if n.op.kind == "dwconv")
        page.hover(f'.op[data-key="op:{dw.op.name}"]')
        shown = _details(page)
        assert dw.op.name in shown and "dwconv" in shown and f"{dw.macs:,}" in shown
        assert "×".join(map(str, dw.out_shape)) in shown

        page.click(f"{section} > .stage-box")
        assert _visible(page, ".block") == 0
        page.focus('section.stage[data-slot="0"] > .stage-box')
        page.keyboard.press("Enter")
        assert _visible(page, ".block") == plan.stages[0].repeats
        page.click("#expand-all")
        assert _visible(page, ".block") == plan.num_blocks
    finally:
        page.close()
    assert problems == []


@pytest.mark.browser
def test_html_b7_is_readable(browser, members, tmp_path):
    """All 55 blocks of B7 open at once: no text spills out of its box, no sideways scrolling."""
    compiled = members["b7"]
    out = tmp_path / "b7.html"
    out.write_text(viz.render(compiled.graph, "html", "block", compiled.source.text), encoding="utf-8")
    page, problems = _open(browser, out)
    try:
        assert _visible(page, ".block") == compiled.graph.plan.num_blocks == 55
        assert _visible(page, ".block .bracket") == sum(op.kind == "add" for op in compiled.graph.ops())
        spilled = page.locator(".label").evaluate_all(
            "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.parentNode.dataset.key)")
        assert spilled == []
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        sizes = page.locator(".block .label").evaluate_all(
            "els => els.map(e => parseFloat(getComputedStyle(e).fontSize))")
        assert min(sizes) >= 11
    finally:
        page.close()
    assert problems == []
