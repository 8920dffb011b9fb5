"""Print a spec AST back as canonical ``.eff`` text.

``analyze(parse(format_spec(net)))`` describes the same network as ``net``; tests
generate ASTs, print them with this module and run the whole pipeline on the text.
"""

from __future__ import annotations

from effdsl.spec import BatchNorm, Block, Defaults, Network, Preset, Scaling


def _num(value: float) -> str:
    """Shortest text that parses back to the same float."""
    if float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))


def _bn(bn: BatchNorm) -> str:
    parts = []
    if bn.eps is not None:
        parts.append(f"eps {_num(bn.eps)}")
    if bn.momentum is not None:
        parts.append(f"momentum {_num(bn.momentum)}")
    return "bn " + " ".join(parts) if parts else ""


def _scaling(s: Scaling) -> list[str]:
    lines = [f"alpha {_num(s.alpha)}; beta {_num(s.beta)}; gamma {_num(s.gamma)}"]
    channels = f"channels divisor {s.divisor}"
    if s.min_ch is not None:
        channels += f" min {s.min_ch}"
    channels += f" guard {_num(s.guard)}"
    lines.append(channels)
    lines.append(f"depth {s.depth_rounding}")
    lines.append(f"resolution {s.resolution_rounding} multiple {s.resolution_multiple}")
    if s.fixed_width:
        lines.append("fixed width " + " ".join(s.fixed_width))
    if s.fixed_depth:
        lines.append("fixed depth " + " ".join(str(i + 1) for i in s.fixed_depth))
    return lines


def _defaults(d: Defaults) -> str:
    parts = [f"act {d.act}", f"se {_num(d.se)}", _bn(d.bn), f"drop_path {_num(d.drop_path)}",
             f"dropout {_num(d.dropout)}"]
    return "defaults { " + "; ".join(p for p in parts if p) + " }"


def _preset(p: Preset) -> str:
    parts = [f"width {_num(p.width)}", f"depth {_num(p.depth)}", f"resolution {p.resolution}"]
    if p.dropout is not None:
        parts.append(f"dropout {_num(p.dropout)}")
    if p.drop_path is not None:
        parts.append(f"drop_path {_num(p.drop_path)}")
    if _bn(p.bn):
        parts.append(_bn(p.bn))
    return f"preset {p.name} {{ " + "; ".join(parts) + " }"


def _block(b: Block) -> str:
    words = [b.role.ljust(5), b.block]
    if b.role == "stage" and b.block != "conv":
        words.append(f"e{_num(b.expand)}")
    words += [f"k{b.kernel}", f"s{b.stride}", f"c{b.out_ch}"]
    if b.role == "stage":
        words.append(f"x{b.repeats}")
        if b.se is not None:
            words.append(f"se{_num(b.se)}")
        if b.skip is not None:
            words.append("skip" if b.skip else "noskip")
    if b.act is not None:
        words.append(f"act {b.act}")
    if _bn(b.bn):
        words.append(_bn(b.bn))
    return " ".join(words)


def format_spec(net: Network) -> str:
    """Canonical text of ``net`` (two-space indent, one statement per line)."""
    out = [f"network {net.name} {{", f"  input {net.in_ch} x {net.resolution}", f"  classes {net.classes}", ""]
    out.append("  scaling {")
    out += [f"    {line}" for line in _scaling(net.scaling)]
    out.append("  }")
    out.append("  " + _defaults(net.defaults))
    out += [f"  {_preset(p)}" for p in net.presets]
    out.append("")
    out.append(f"  {_block(net.stem)}")
    out += [f"  {_block(s)}" for s in net.stages]
    if net.head.conv is not None:
        out.append(f"  {_block(net.head.conv)}")
    out.append(f"  pool {net.head.pool}")
    out.append("  dropout" + (f" {_num(net.head.dropout)}" if net.head.dropout is not None else ""))
    if net.head.linear:
        out.append("  linear")
    out.append("}")
    return "\n".join(out) + "\n"
