"""Print a spec AST back as canonical ``.eff`` text, keeping the user's comments.

``analyze(parse(format_spec(net)))`` describes the same network as ``net``, and
formatting is idempotent. A search space's choices are printed glued to their
field's letter, without spaces (``k{3,5}``). A value is printed when the user wrote it (it has a span) or
when it differs from the language default; a stage always shows its block, expansion,
kernel, stride, channels and repeats. Stage lines are aligned in columns.

Comments are re-attached by source line: a comment at the end of a line stays at the
end of the statement or setting written on that line; a comment on a line of its own
stays in front of the statement that followed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from effdsl.language.choices import as_number
from effdsl.language.spec import (
    BatchNorm,
    Block,
    BlockPart,
    Choice,
    ChoiceValue,
    Defaults,
    Network,
    OpLine,
    Preprocess,
    Preset,
    Scaling,
    SpecNode,
    SqueezeExcite,
)

_COMMENT = re.compile(r"#[^\n]*")


@dataclass(frozen=True)
class Comment:
    line: int
    text: str
    own_line: bool  # nothing but whitespace before it on its line


@dataclass
class _Line:
    text: str
    source_line: int | None = None
    indent: int = 2
    blank_before: bool = False


def comments_of(text: str) -> list[Comment]:
    """Every comment of a normalized ``.eff`` text ('#' always starts one: there are no strings)."""
    found = []
    for match in _COMMENT.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        line = text.count("\n", 0, match.start()) + 1
        found.append(Comment(line, match.group().rstrip(), not text[line_start:match.start()].strip()))
    return found


def _num(value: float) -> str:
    """Shortest text that parses back to the same number: 3, 0.25, 1e-3 (not 0.001 or 1e-03)."""
    if float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    plain = repr(float(value))
    mantissa, _, exponent = f"{float(value):e}".partition("e")
    for digits in range(0, 17):
        candidate = f"{float(value):.{digits}e}"
        if float(candidate) == float(value):
            mantissa, _, exponent = candidate.partition("e")
            break
    scientific = f"{mantissa}e{int(exponent)}"
    return scientific if len(scientific) < len(plain) else plain


def _mult(value: float) -> str:
    """A multiplier or coefficient keeps its decimal point: 1.0, 2.0, 1.15."""
    text = _num(value)
    return text + ".0" if text.lstrip("-").isdigit() else text


def _shown(node: SpecNode, name: str, default: object) -> bool:
    """Whether the formatter writes ``name``: the user wrote it, or it differs from its default."""
    return name in node.spans or getattr(node, name) != default


def _line_of(node: SpecNode, *names: str) -> int | None:
    for name in names:
        if name in node.spans:
            return node.spans[name].line
    return None


def _bn(bn: BatchNorm) -> str:
    parts = []
    if bn.eps is not None:
        parts.append(f"eps {_num(bn.eps)}")
    if bn.momentum is not None:
        parts.append(f"momentum {_num(bn.momentum)}")
    return "bn " + " ".join(parts) if parts else ""


def _scaling(s: Scaling) -> list[_Line]:
    base = Scaling.model_fields
    lines: list[_Line] = []
    coeffs = [f"{k} {_mult(getattr(s, k))}" for k in ("alpha", "beta", "gamma") if _shown(s, k, base[k].default)]
    if coeffs:
        lines.append(_Line("; ".join(coeffs), _line_of(s, "alpha", "beta", "gamma"), 4))
    channels = []
    if _shown(s, "divisor", base["divisor"].default):
        channels.append(f"divisor {s.divisor}")
    if s.min_ch is not None:
        channels.append(f"min {s.min_ch}")
    if _shown(s, "guard", base["guard"].default):
        channels.append(f"guard {_num(s.guard)}")
    if channels:
        lines.append(_Line("channels " + " ".join(channels), _line_of(s, "divisor", "min_ch", "guard"), 4))
    if _shown(s, "depth_rounding", base["depth_rounding"].default):
        lines.append(_Line(f"depth {s.depth_rounding}", _line_of(s, "depth_rounding"), 4))
    if _shown(s, "resolution_rounding", "half_up") or _shown(s, "resolution_multiple", 1):
        lines.append(_Line(f"resolution {s.resolution_rounding} multiple {s.resolution_multiple}",
                           _line_of(s, "resolution_rounding", "resolution_multiple"), 4))
    if s.fixed_width:
        lines.append(_Line("fixed width " + " ".join(s.fixed_width), _line_of(s, "fixed_width"), 4))
    if s.fixed_depth:
        lines.append(_Line("fixed depth " + " ".join(str(i + 1) for i in s.fixed_depth),
                           _line_of(s, "fixed_depth"), 4))
    return lines + _width_rules(s)


def _width_rules(s: Scaling) -> list[_Line]:
    """``head_width last N`` or ``head_width scaled min W``, and ``mid_width scaled``."""
    lines = []
    if s.head_from_last is not None:
        lines.append(_Line(f"head_width last {_num(s.head_from_last)}", _line_of(s, "head_from_last"), 4))
    elif s.head_min_width is not None:
        lines.append(_Line(f"head_width scaled min {_num(s.head_min_width)}",
                           _line_of(s, "head_from_last", "head_min_width"), 4))
    if s.mid_scaled:
        lines.append(_Line("mid_width scaled", _line_of(s, "mid_scaled"), 4))
    return lines


def _se_shape(shape: SqueezeExcite) -> list[str]:
    """The words after a squeeze-excite ratio: of mid, divisor 8, inner relu, gate hardsigmoid."""
    words = []
    if shape.of is not None:
        words.append(f"of {shape.of}")
    if shape.divisor is not None:
        words.append(f"divisor {shape.divisor}")
    if shape.inner is not None:
        words.append(f"inner {shape.inner}")
    if shape.gate is not None:
        words.append(f"gate {shape.gate}")
    return words


def _defaults(d: Defaults) -> str | None:
    base = Defaults.model_fields
    parts = []
    if _shown(d, "act", base["act"].default):
        parts.append(f"act {d.act}")
    shape = _se_shape(d.se_shape)
    if _shown(d, "se", base["se"].default) or shape:
        parts.append(" ".join([f"se {_num(d.se)}", *shape]))
    default_bn = base["bn"].default
    bn = BatchNorm(eps=d.bn.eps if "bn_eps" in d.spans or d.bn.eps != default_bn.eps else None,
                   momentum=d.bn.momentum if "bn_momentum" in d.spans or d.bn.momentum != default_bn.momentum
                   else None)
    if _bn(bn):
        parts.append(_bn(bn))
    for name in ("drop_path", "dropout"):
        if _shown(d, name, base[name].default):
            parts.append(f"{name} {_num(getattr(d, name))}")
    if _shown(d, "padding", base["padding"].default):
        parts.append(f"padding {d.padding}")
    return "defaults { " + "; ".join(parts) + " }" if parts else None


def _preprocess(p: Preprocess) -> str:
    base = Preprocess.model_fields
    parts = []
    for name in ("mean", "std"):
        if _shown(p, name, base[name].default):
            parts.append(f"{name} " + " ".join(_num(v) for v in getattr(p, name)))
    if _shown(p, "interpolation", base["interpolation"].default):
        parts.append(f"interpolation {p.interpolation}")
    if _shown(p, "crop", base["crop"].default):
        parts.append(f"crop {_num(p.crop)}")
    return "preprocess { " + "; ".join(parts) + " }"


def _preset(p: Preset) -> str:
    parts = [f"width {_mult(p.width)}", f"depth {_mult(p.depth)}", f"resolution {p.resolution}"]
    if p.dropout is not None:
        parts.append(f"dropout {_num(p.dropout)}")
    if p.drop_path is not None:
        parts.append(f"drop_path {_num(p.drop_path)}")
    if _bn(p.bn):
        parts.append(_bn(p.bn))
    if p.crop is not None:
        parts.append(f"crop {_num(p.crop)}")
    if p.test_resolution is not None:
        parts.append(f"test_resolution {p.test_resolution}")
    return f"preset {p.name} {{ " + "; ".join(parts) + " }"


# A choice is printed glued to its field's letter: k{3,5}, x2+{-1,0,+1}, c40*{0.75,1,1.25}.
_LETTER = {"block": "", "kernel": "k", "stride": "s", "expand": "e", "out_ch": "c", "repeats": "x", "se": "se",
           "act": "act", "skip": ""}


def _option(value: ChoiceValue) -> str:
    if isinstance(value, bool):
        return "skip" if value else "noskip"
    return value if isinstance(value, str) else _num(value)


def _choice(choice: Choice) -> str:
    if choice.relation == "offset":
        options = ",".join(f"+{_num(v)}" if v > 0 else _num(v) for v in map(as_number, choice.options))
        return f"{_LETTER[choice.field]}{choice.base}+{{{options}}}"
    options = ",".join(_option(v) for v in choice.options)
    if choice.relation == "scale":
        return f"{_LETTER[choice.field]}{choice.base}*{{{options}}}"
    return f"{_LETTER[choice.field]}{{{options}}}"


def _se_words(se: float | None, shape: SqueezeExcite) -> list[str]:
    """``se0.25``, or ``se 0.25 of mid ...`` with the words that shape it."""
    words = _se_shape(shape)
    if se is None:
        return []
    return [" ".join([f"se {_num(se)}", *words])] if words else [f"se{_num(se)}"]


def _part_words(part: BlockPart) -> str:
    """A ``then`` group: ``then e2.3 x2``."""
    words = ["then"]
    if part.expand is not None:
        words.append(f"e{_num(part.expand)}")
    if part.expand_from is not None:
        words.append(f"of c{part.expand_from}")
    if part.kernel is not None:
        words.append(f"k{part.kernel}")
    if part.repeats != 1 or "repeats" in part.spans or not any(
            getattr(part, name) is not None for name in ("expand", "kernel", "se", "skip", "act")):
        words.append(f"x{part.repeats}")  # a group that changes nothing still says its blocks
    words += _se_words(part.se, part.se_shape)
    if part.skip is not None:
        words.append("skip" if part.skip else "noskip")
    if part.act is not None:
        words.append(f"act {part.act}")
    return " ".join(words)


def _block_words(b: Block, no_expand: frozenset[str] = frozenset({"conv"})) -> list[str]:
    """The words of a stem, stage or head line; ``no_expand``: the block kinds that take no expansion."""
    chosen: dict[str, str] = {c.field: _choice(c) for c in b.choices}
    words = [b.role.ljust(5), chosen.get("block", b.block)]
    if b.role == "stage":
        expand = chosen.get("expand", f"e{_num(b.expand)}") if b.block not in no_expand or "block" in chosen else ""
        if b.expand_from is not None:
            expand += f" of c{b.expand_from}"
        words.append(expand)
        words += [chosen.get("kernel", f"k{b.kernel}"), chosen.get("stride", f"s{b.stride}"),
                  chosen.get("out_ch", f"c{b.out_ch}"), chosen.get("repeats", f"x{b.repeats}")]
        if "se" in chosen:
            words.append(chosen["se"])
        else:
            words += _se_words(b.se, b.se_shape)
        if "skip" in chosen or b.skip is not None:
            words.append(chosen.get("skip", "skip" if b.skip else "noskip"))
    else:
        words.append(f"k{b.kernel}")
        if _shown(b, "stride", 1):
            words.append(f"s{b.stride}")
        words.append(f"c{b.out_ch}")
    if "act" in chosen:
        words.append(chosen["act"])
    elif b.act is not None:
        words.append(f"act {b.act}")
    if _bn(b.bn):
        words.append(_bn(b.bn))
    words += [_part_words(part) for part in b.parts]
    return words


def _aligned(rows: list[list[str]]) -> list[str]:
    """Pad the fields of stage lines into columns (block, e, k, s, c, x); others as they are."""
    stages = [row for row in rows if row[0] == "stage"]
    width = {i: max(len(row[i]) for row in stages) for i in range(7)} if stages else {}
    out = []
    for row in rows:
        if row[0] != "stage":
            out.append(" ".join(row))
            continue
        head = [word.ljust(width[i]) for i, word in enumerate(row[:7])]
        out.append(" ".join(head + row[7:]).rstrip())
    return out


def _layout(net: Network) -> list[_Line]:
    lines = [
        _Line(f"input {net.in_ch} x {net.resolution}", _line_of(net, "in_ch", "resolution")),
        _Line(f"classes {net.classes}", _line_of(net, "classes")),
    ]
    scaling = _scaling(net.scaling)
    if scaling:
        lines.append(_Line("scaling {", net.scaling.span.line if net.scaling.spans else None, blank_before=True))
        lines += scaling
        lines.append(_Line("}"))
    defaults = _defaults(net.defaults)
    if defaults:
        lines.append(_Line(defaults, net.defaults.span.line if net.defaults.spans else None,
                           blank_before=not scaling))
    if net.preprocess is not None:
        lines.append(_Line(_preprocess(net.preprocess), net.preprocess.span.line,
                           blank_before=not scaling and not defaults))
    for i, preset in enumerate(net.presets):
        lines.append(_Line(_preset(preset), preset.span.line, blank_before=i == 0))
    blocks = [net.stem, *net.stages] + ([net.head.conv] if net.head.conv is not None else [])
    no_expand = frozenset({"conv", *(d.name for d in net.blocks if not d.uses("mid"))})
    rows = [_block_words(b, no_expand) for b in blocks]
    for i, (block, text) in enumerate(zip(blocks, _aligned(rows), strict=True)):
        lines.append(_Line(text, block.span.line if block.spans else None, blank_before=i == 0))
    head = net.head
    lines.append(_Line(f"pool {head.pool}", _line_of(head, "pool")))
    if head.hidden is not None:
        act = f" act {head.hidden.act}" if head.hidden.act is not None else ""
        lines.append(_Line(f"linear c{head.hidden.out_ch}{act}", _line_of(head, "hidden")))
    if head.dropout is not None or "dropout" in head.spans:
        rate = f" {_num(head.dropout)}" if head.dropout is not None else ""
        lines.append(_Line(f"dropout{rate}", _line_of(head, "dropout")))
    if head.linear:
        lines.append(_Line("linear", _line_of(head, "linear")))
    return lines


def _op_text(op: OpLine) -> str:
    """One op of a block definition: its word, then the options that differ from the defaults."""
    words = [op.kind]
    if op.kind == "act" and op.act is not None:
        words.append(op.act)
    for key, value, default in (("kernel", op.kernel, 1), ("stride", op.stride, 1), ("to", op.to, None),
                                ("eps", op.eps, None)):
        if value is not None and (value != default or (key in op.spans and not op.options)):
            words += [key, _num(value) if isinstance(value, float) else str(value)]
    if op.bias:
        words.append("bias")
    for key, value in op.options:
        words += [key, _num(value) if isinstance(value, float) else str(value)]
    return " ".join(words)


def _op_lines(ops: tuple[OpLine, ...]) -> list[tuple[str, int | None]]:
    """A definition's ops, one a line, except a group's: its label and its ops on one line
    (``expand if mid != in: conv to mid; bn; act``)."""
    lines: list[tuple[str, int | None]] = []
    previous: tuple[str | None, tuple[str, str, str] | None] = (None, None)
    for op in ops:
        line = op.span.line if op.spans else None
        if op.group is not None and (op.group, op.when) == previous:
            lines[-1] = (f"{lines[-1][0]}; {_op_text(op)}", lines[-1][1])
        elif op.group is not None:
            cond = "" if op.when is None else " if " + " ".join(op.when)
            lines.append((f"{op.group}{cond}: {_op_text(op)}", line))
        else:
            lines.append((_op_text(op), line))
        previous = (op.group, op.when)
    return lines


def _preamble(net: Network) -> list[tuple[str, int | None, int]]:
    """The includes and the file's own block definitions: (text, source line, indent) per line."""
    out: list[tuple[str, int | None, int]] = []
    for include in net.includes:
        out.append((f'include "{include.path}"', include.span.line if include.spans or include.span else None, 0))
    for block in (b for b in net.blocks if b.origin is None):
        if out:
            out.append(("", None, 0))
        out.append((f"block {block.name} {{", block.span.line if block.spans else None, 0))
        out += [(text, line, 2) for text, line in _op_lines(block.ops)]
        out.append(("}", None, 0))
    if out:
        out.append(("", None, 0))
    return out


def format_spec(net: Network, comments: list[Comment] | tuple[Comment, ...] = ()) -> str:
    """Canonical text of ``net`` (two-space indent, one statement per line), with ``comments``."""
    body = _layout(net)
    name_line = net.spans["name"].line if "name" in net.spans else None
    pending = sorted(comments, key=lambda c: c.line)
    trailing = {c.line: c for c in pending if not c.own_line}
    used_trailing: set[int] = set()
    out: list[str] = []
    leading = [c for c in pending if c.own_line]

    def flush_before(limit: int | None, indent: int) -> None:
        while leading and (limit is None or leading[0].line < limit):
            out.append(" " * indent + leading.pop(0).text)

    # The includes and block definitions come first, with their comments.
    for text, line, indent in _preamble(net):
        if line is not None:
            flush_before(line, indent)
        if line is not None and line in trailing and line not in used_trailing:
            text += "  " + trailing[line].text
            used_trailing.add(line)
        out.append(" " * indent + text if text else "")
    # Comments above the network line stay above it.
    if name_line is not None:
        flush_before(name_line, 0)
    # An end-of-line comment goes with the last statement written on its line.
    owner = {entry.source_line: i for i, entry in enumerate(body) if entry.source_line is not None}
    header = f"network {net.name} {{"
    if name_line in trailing and name_line not in owner:
        header += "  " + trailing[name_line].text
        used_trailing.add(name_line)
    out.append(header)
    for index, entry in enumerate(body):
        if entry.blank_before and out[-1] != "":
            out.append("")
        if entry.source_line is not None:
            flush_before(entry.source_line, entry.indent)
        text = " " * entry.indent + entry.text
        line = entry.source_line
        if line is not None and line in trailing and owner[line] == index:
            text += "  " + trailing[line].text
            used_trailing.add(line)
        out.append(text)
    end_line = net.span.end_line
    flush_before(end_line, 2)
    # Trailing comments whose line printed nothing keep their place as comments of their own.
    orphans = [c for line, c in sorted(trailing.items()) if line not in used_trailing and line != name_line]
    out += ["  " + c.text for c in orphans if c.line < end_line]
    out.append("}")
    out += [c.text for c in orphans if c.line >= end_line]
    flush_before(None, 0)
    return "\n".join(_align_comments(out)) + "\n"


def _align_comments(lines: list[str]) -> list[str]:
    """Line up the end-of-line comments of consecutive lines at one column."""
    marker = "  #"
    out = list(lines)
    i = 0
    while i < len(out):
        if marker not in out[i] or out[i].lstrip().startswith("#"):
            i += 1
            continue
        j = i
        while j < len(out) and marker in out[j] and not out[j].lstrip().startswith("#"):
            j += 1
        split = [out[k].split(marker, 1) for k in range(i, j)]
        column = max(len(code.rstrip()) for code, _ in split) + 2
        for k, (code, comment) in zip(range(i, j), split, strict=True):
            out[k] = code.rstrip().ljust(column) + "#" + comment
        i = j
    return out
