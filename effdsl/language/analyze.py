"""Stage 2: raw statements -> checked spec AST (:mod:`effdsl.language.spec`).

Gives meaning to the words the grammar lets through (``k3``, ``act relu``,
``channels divisor 8 guard 0.9`` ...), checks every value, and reports all mistakes of
a file together, in source order, each with the span of the offending word. The value
rules live in :mod:`effdsl.language.values`, the ``{ }`` blocks in :mod:`effdsl.language.settings`; this
module reads the block lines and the network as a whole.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

from effdsl.diagnostics import Collector, Diagnostic, Span, did_you_mean
from effdsl.language.choices import read_bare_choice, read_choice, read_kind_choice, takes_choice
from effdsl.language.parser import RawNetwork, RawStatement, Tok
from effdsl.language.settings import bn_of, bn_pairs, clean, read_defaults, read_preset, read_scaling
from effdsl.language.spec import (BLOCK_TYPES, MAX_BLOCKS, MAX_STAGES, POOLS, Block, Choice, Defaults, Head,
                                  Network, Scaling)
from effdsl.language.values import Reader, check_act, check_value, to_float

# k3 s2 e6 c24 x2 se0.25: a one- or two-letter field glued to its number.
_FIELD = re.compile(r"^(se|k|s|e|c|x)([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)$")
_FIELD_NAMES = {"k": "kernel", "s": "stride", "e": "expand", "c": "out_ch", "x": "repeats", "se": "se"}
_STAGE_WORDS = ("k<kernel>", "s<stride>", "e<expand>", "c<channels>", "x<repeats>", "se<ratio>",
                "act", "bn", "skip", "noskip")


# ---------------------------------------------------------------------------- blocks

def _block(stmt: RawStatement, errors: Collector) -> Block | None:
    role = stmt.keyword.text
    kind = stmt.name
    allowed = BLOCK_TYPES if role == "stage" else ("conv",)
    ok = True
    choices: list[Choice] = []
    block_type = kind.text
    if kind.is_choice:
        block_type, node = read_kind_choice(kind, errors)
        if role != "stage":
            _outside_stage(kind, f"a {role}", errors)
        elif node is not None:
            choices.append(node)
        ok = ok and node is not None and role == "stage"
    elif kind.text not in allowed:
        hint = did_you_mean(kind.text, allowed)
        errors.error("E101", f"unknown {role} block '{kind.text}'" if role == "stage"
                     else f"a {role} is a 'conv', got '{kind.text}'", kind.span, hint)
        ok = False
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {"block": kind.span}
    reader = Reader(stmt.items, errors, kind.span)
    while reader.more():
        tok = reader.take()
        nxt = reader.peek()
        if tok.is_choice or (nxt is not None and nxt.is_choice and takes_choice(tok, nxt)):
            choice = tok if tok.is_choice else reader.take()
            read = read_bare_choice(tok, role, errors) if tok.is_choice else read_choice(tok, choice, role, errors)
            where = Span.cover(tok.span, choice.span)
            if read is None:
                ok = False
                continue
            field, value, node = read
            if node is None and role == "stage":  # reported
                ok = False
                values.setdefault(field, None)
                continue
            if field in spans:
                errors.error("E105", f"{field} is given twice", where, f"first given at {spans[field]}")
                ok = False
                continue
            values[field], spans[field] = value, where  # the reference value keeps E106 quiet
            if role != "stage":  # reported; the stem or head reads on with the first option
                _outside_stage(choice, f"a {role}", errors)
            elif node is None:
                ok = False
            else:
                choices.append(node)
            continue
        match = None if tok.is_number else _FIELD.match(tok.text)
        if match:
            key = _FIELD_NAMES[match.group(1)]
            value: Any = float(match.group(2))
            if not math.isfinite(value):
                errors.error("E200", f"{key} is out of range: {tok.text}", tok.span)
                ok = False
                continue
            field = key
        elif tok.text == "se" and reader.peek() is not None and reader.peek().is_number:
            field, (value, _) = "se", reader.number("se")
            tok = Tok(tok.text, False, Span.cover(tok.span, reader.items[reader.pos - 1].span))
        elif tok.text == "act":
            name = reader.word("an activation name after 'act'")
            if name is not None and "act" in spans:
                errors.error("E105", "act is given twice", name.span, f"first given at {spans['act']}")
                ok = False
            elif name is not None and check_act(name, errors):
                values["act"], spans["act"] = name.text, name.span
            continue
        elif tok.text in ("skip", "noskip"):
            field, value = "skip", tok.text == "skip"
        elif tok.text == "bn":
            bn_pairs(reader, values, spans)
            continue
        else:
            hint = did_you_mean(tok.text, ("act", "bn", "skip", "noskip", "se"))
            if hint is None or hint.startswith("expected"):
                hint = "block options are " + ", ".join(_STAGE_WORDS)
            errors.error("E103", f"unknown option '{tok.text}' for a {role}", tok.span, hint)
            ok = False
            continue
        if field in values or (field in spans and field != "block"):
            errors.error("E105", f"{field} is given twice", tok.span, f"first given at {spans[field]}")
            ok = False
            continue
        spans[field] = tok.span
        if field == "skip":
            values[field] = value
            continue
        checked = check_value(field, value, tok.span, errors)
        if checked is None:
            ok = False
        values[field] = checked
    for required, example in (("kernel", "k3"), ("out_ch", "c32")):
        if required not in values:
            errors.error("E106", f"this {role} does not give its {'channels' if required == 'out_ch' else required}",
                         stmt.keyword.span if not stmt.items else Span.cover(stmt.keyword.span, stmt.items[-1].span),
                         f"add {example}")
            ok = False
    if role != "stage":
        for field in ("repeats", "expand", "se", "skip"):
            if field in values:
                errors.error("E103", f"a {role} takes no {field}", spans[field])
                ok = False
    elif block_type == "conv" and not kind.is_choice:
        for field in ("expand", "se"):
            if field in values:
                errors.error("E103", f"a conv stage takes no {field}", spans[field],
                             "expansion and squeeze-excite belong to mbconv and fused_mbconv")
                ok = False
    if not ok:
        return None
    bn = bn_of(values)
    return Block(span=stmt.span, spans=spans, role=role, block=block_type, bn=bn, choices=tuple(choices),
                 **clean(values))


def _outside_stage(choice: Tok, where: str, errors: Collector) -> None:
    """E601: a choice in a statement that is the same in every member of a space."""
    errors.error("E601", f"a choice in {where}; only stage lines choose", choice.span,
                 "the stem, the head, the settings and the layers after the head are shared by every "
                 "member of a search space")


def _without_choices(stmt: RawStatement, errors: Collector) -> RawStatement:
    """``stmt`` with each choice of a settings block or a layer line reported (E601) and
    replaced by its first option, so that the rest of the statement reads on."""
    def first_options(items: tuple[Tok, ...]) -> tuple[Tok, ...]:
        out = []
        for tok in items:
            if tok.is_choice:
                _outside_stage(tok, f"'{stmt.keyword.text}'", errors)
                tok = tok.options[0]
            out.append(tok)
        return tuple(out)

    if stmt.settings is not None:
        settings = tuple(replace(s, items=first_options(s.items)) for s in stmt.settings)
        return replace(stmt, settings=settings)
    return replace(stmt, items=first_options(stmt.items))


# ---------------------------------------------------------------------------- network

_SINGLE = ("input", "classes", "scaling", "defaults", "stem", "head", "pool", "dropout", "linear")
_HEAD_ORDER = ("head", "pool", "dropout", "linear")


def analyze(raw: RawNetwork) -> Network:
    """Check the raw statements and build the spec AST; raise with every error found."""
    errors = Collector()
    first: dict[str, RawStatement] = {}
    stages: list[RawStatement] = []
    presets: list[RawStatement] = []
    last_role = "start"
    for stmt in raw.statements:
        key = stmt.keyword.text
        if key not in ("stem", "stage", "head"):  # a block line reports its own (E601)
            stmt = _without_choices(stmt, errors)
        if key in _SINGLE:
            if key in first:
                errors.error("E105", f"'{key}' is given twice", stmt.keyword.span,
                             f"first given at line {first[key].span.line}")
                continue
            first[key] = stmt
        if key in ("scaling", "defaults") and stmt.name is not None:
            errors.error("E103", f"'{key}' takes no name, got '{stmt.name.text}'", stmt.name.span)
        late_stage = key == "stage" and ("head" in first or "pool" in first or "linear" in first)
        if key == "stage":
            if late_stage:
                after = next(k for k in ("head", "pool", "linear") if k in first)
                errors.error("E107", f"a stage after '{after}' (line {first[after].span.line}); stages come "
                             "between the stem and the head", stmt.keyword.span,
                             "the order is: stem, stages, head, pool, dropout, linear")
            stages.append(stmt)
        elif key == "preset":
            presets.append(stmt)
        if key in ("stem", "stage") + _HEAD_ORDER and not late_stage:  # one error per statement
            last_role = _order_check(key, last_role, stmt, errors)

    in_ch, resolution, classes = _input(first.get("input"), first.get("classes"), raw, errors)
    scaling = read_scaling(first["scaling"], stages, errors) if "scaling" in first else Scaling(span=raw.name.span)
    defaults = read_defaults(first["defaults"], errors) if "defaults" in first else Defaults(span=raw.name.span)
    preset_nodes = []
    for stmt in presets:
        node = read_preset(stmt, errors)
        if node is None:
            continue
        clash = next((p for p in preset_nodes if p.name == node.name), None)
        if clash is not None:
            errors.error("E105", f"preset '{node.name}' is defined twice", node.span_of("name"),
                         f"first defined at line {clash.span.line}")
            continue
        preset_nodes.append(node)

    stem = _block(first["stem"], errors) if "stem" in first else None
    stage_nodes = [_block(s, errors) for s in stages]
    _check_size(stages, stage_nodes, errors)
    head = _head(first, raw, errors)
    for what in ("stem",):
        if what not in first:
            errors.error("E106", "the network has no stem", raw.end, "add a line like: stem conv k3 s2 c32")
    if not stages:
        errors.error("E106", "the network has no stage", raw.end, "add a line like: stage mbconv e6 k3 s2 c24 x2")
    _raise_if_any(errors)
    assert stem is not None and head is not None and scaling is not None
    network = Network(
        span=raw.span,
        spans={"name": raw.name.span, **_input_spans(first.get("input"), first.get("classes"))},
        name=raw.name.text,
        in_ch=in_ch,
        resolution=resolution,
        classes=classes,
        scaling=scaling,
        defaults=defaults,
        presets=tuple(preset_nodes),
        stem=stem,
        stages=tuple(stage_nodes),
        head=head,
    )
    _check_divisible(network, errors)
    _check_head_width(network, errors)
    _raise_if_any(errors)
    return network


_MAX_ERRORS = 50


def _raise_if_any(errors: Collector) -> None:
    """Raise with the first ``_MAX_ERRORS`` diagnostics in source order and a count of the rest."""
    found = sorted(errors.diagnostics, key=Diagnostic.sort_key)
    if len(found) > _MAX_ERRORS:
        hidden = found[_MAX_ERRORS:]
        errors.diagnostics = found[:_MAX_ERRORS] + [Diagnostic(
            "E006", f"{len(hidden):,} more errors from here on are not shown", hidden[0].span,
            "fix the errors above and check again")]
    errors.raise_if_any()


def _check_size(stages: list[RawStatement], nodes: list[Block | None], errors: Collector) -> None:
    """At most MAX_STAGES stages and MAX_BLOCKS blocks in all (E215)."""
    if len(stages) > MAX_STAGES:
        errors.error("E215", f"too many stages: {len(stages):,}; at most {MAX_STAGES}",
                     stages[MAX_STAGES].keyword.span, f"this is stage {MAX_STAGES + 1}")
    blocks = [node for node in nodes if node is not None]
    total = sum(_most_repeats(node) for node in blocks)
    if total > MAX_BLOCKS:
        running = 0
        for node in blocks:  # point at the stage that crosses the limit
            running += _most_repeats(node)
            if running > MAX_BLOCKS:
                errors.error("E215", f"the stages add up to {total:,} blocks; at most {MAX_BLOCKS:,}",
                             node.span_of("repeats"), "use fewer stages or fewer repeats")
                return


def _most_repeats(stage: Block) -> int:
    """The stage's repeats, or in a search space the most its choice allows."""
    for choice in stage.choices:
        if choice.field == "repeats":
            return max(choice.options) + (choice.base if choice.relation == "offset" else 0)
    return stage.repeats


def _order_check(key: str, last: str, stmt: RawStatement, errors: Collector) -> str:
    order = ("start", "stem", "stage") + _HEAD_ORDER
    if order.index(key) < order.index(last):
        errors.error("E107", f"'{key}' must come before '{last}'", stmt.keyword.span,
                     "the order is: stem, stages, head, pool, dropout, linear")
        return last
    return key


def _input(inp: RawStatement | None, cls: RawStatement | None, raw: RawNetwork, errors: Collector):
    in_ch = resolution = classes = None
    if inp is None:
        errors.error("E106", "the network has no 'input' line", raw.name.span,
                     "add a line like: input 3 x 224  (channels x resolution)")
    else:
        ch_tok, res_tok = inp.items
        in_ch = check_value("in_ch", to_float(ch_tok, "input channels", errors), ch_tok.span, errors)
        resolution = check_value("resolution", to_float(res_tok, "resolution", errors), res_tok.span, errors)
    if cls is None:
        errors.error("E106", "the network has no 'classes' line", raw.name.span, "add a line like: classes 1000")
    else:
        (tok,) = cls.items
        classes = check_value("classes", to_float(tok, "classes", errors), tok.span, errors)
    return in_ch, resolution, classes


def _input_spans(inp: RawStatement | None, cls: RawStatement | None) -> dict[str, Span]:
    spans = {}
    if inp is not None:
        spans["in_ch"], spans["resolution"] = inp.items[0].span, inp.items[1].span
    if cls is not None:
        spans["classes"] = cls.items[0].span
    return spans


def _head(first: dict[str, RawStatement], raw: RawNetwork, errors: Collector) -> Head | None:
    conv = _block(first["head"], errors) if "head" in first else None
    spans: dict[str, Span] = {}
    pool = "avg"
    if "pool" in first:
        stmt = first["pool"]
        reader = Reader(stmt.items, errors, stmt.keyword.span)
        tok = reader.word("a pooling kind ('avg' or 'max') after 'pool'")
        if tok is not None:
            if tok.text in POOLS:
                pool, spans["pool"] = tok.text, tok.span
            else:
                errors.error("E104", f"unknown pooling '{tok.text}'", tok.span, did_you_mean(tok.text, POOLS))
        reader.rest_unexpected("'pool'")
    else:
        errors.error("E106", "the network has no 'pool' line", raw.end, "add 'pool avg' after the head")
    dropout = None
    if "dropout" in first:
        stmt = first["dropout"]
        spans["dropout"] = stmt.keyword.span
        if stmt.items:
            reader = Reader(stmt.items, errors, stmt.keyword.span)
            value, span = reader.number("dropout")
            dropout = check_value("dropout", value, span, errors)
            spans["dropout"] = span
            reader.rest_unexpected("'dropout'")
    if "linear" in first:
        spans["linear"] = first["linear"].keyword.span
    if "linear" not in first:
        errors.error("E106", "the network has no 'linear' classifier", raw.end, "end the network with 'linear'")
    elif first["linear"].items:
        Reader(first["linear"].items, errors, first["linear"].keyword.span).rest_unexpected("'linear'")
    span = first["head"].span if "head" in first else raw.end
    return Head(span=span, spans=spans, conv=conv, pool=pool, dropout=dropout, linear="linear" in first)


def _check_divisible(net: Network, errors: Collector) -> None:
    """Scaled channel counts are multiples of the divisor; so must the baseline's be.

    Otherwise width 1.0 would silently change the baseline (c20 would become 24).
    """
    div = net.scaling.divisor
    parts: list[Block] = list(net.stages)
    if "stem" not in net.scaling.fixed_width:
        parts.insert(0, net.stem)
    if net.head.conv is not None and "head" not in net.scaling.fixed_width \
            and net.scaling.head_from_last is None:
        parts.append(net.head.conv)
    for block in parts:
        written = [(block.out_ch, block.span_of("out_ch"))]
        for choice in block.choices:
            if choice.field == "out_ch" and choice.relation == "set":  # each option, where it is written
                written = list(zip(choice.options, choice.option_spans))
        for out_ch, span in written:  # (multipliers are rounded to the divisor when a member is made)
            if out_ch % div:
                lower = max(div, out_ch // div * div)
                errors.error(
                    "E208",
                    f"channels {out_ch} is not a multiple of the channel divisor {div}",
                    span,
                    f"use c{lower} or c{lower + div}, or change 'channels divisor' in scaling",
                )
    # The minimum must be a width the rule can produce, and no baseline width may be below it.
    min_ch = net.scaling.min_ch
    if min_ch is not None:
        where = net.scaling.span_of("min_ch")
        if min_ch % div:
            errors.error("E210", f"channels min {min_ch} is not a multiple of the divisor {div}", where,
                         f"use min {max(div, min_ch // div * div)} or leave it out (it defaults to the divisor)")
        smallest = min((c for block in parts for c in _widths(block)), default=None)
        if smallest is not None and smallest < min_ch:
            errors.error("E210", f"channels min {min_ch} is above the baseline's c{smallest}, "
                                 "so phi = 0 would change the baseline", where,
                         f"lower the minimum to {smallest} or widen that part")
    # Likewise the resolution: phi = 0 rounds it to the multiple (x 2 would become 4).
    multiple = net.scaling.resolution_multiple
    if net.resolution % multiple:
        lower = max(multiple, net.resolution // multiple * multiple)
        errors.error(
            "E212",
            f"resolution {net.resolution} is not a multiple of the resolution multiple {multiple}",
            net.span_of("resolution"),
            f"use {lower} or {lower + multiple}, or change 'resolution ... multiple' in scaling",
        )


def _widths(block: Block) -> list[int]:
    """The block's channels; in a search space, every channel count its set choice allows."""
    for choice in block.choices:
        if choice.field == "out_ch" and choice.relation == "set":
            return list(choice.options)
    return [block.out_ch]


def _check_head_width(net: Network, errors: Collector) -> None:
    """``head_width last N`` derives the head from the last stage; the spec must agree at phi = 0."""
    ratio = net.scaling.head_from_last
    if ratio is None:
        return
    where = net.scaling.span_of("head_from_last")
    if net.head.conv is None:
        errors.error("E214", "'head_width last' needs a head conv", where, "add a line like: head conv k1 c1280")
        return
    derived = int(net.stages[-1].out_ch * ratio)
    if net.head.conv.out_ch != derived:
        errors.error(
            "E214",
            f"head channels {net.head.conv.out_ch} disagree with 'head_width last {ratio:g}' "
            f"({ratio:g} x {net.stages[-1].out_ch} = {derived})",
            net.head.conv.span_of("out_ch"),
            f"write c{derived}, or use 'head_width scaled'",
        )
