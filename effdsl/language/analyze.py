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
from collections.abc import Mapping
from dataclasses import replace

from effdsl.diagnostics import Collector, Diagnostic, InternalError, Span, did_you_mean
from effdsl.language.blockdefs import read_block_defs
from effdsl.language.choices import as_number, base_of, read_bare_choice, read_choice, read_kind_choice, takes_choice
from effdsl.language.parser import RawNetwork, RawStatement, Tok
from effdsl.language.settings import (
    SE_WORDS,
    Values,
    bn_of,
    bn_pairs,
    clean,
    read_defaults,
    read_preprocess,
    read_preset,
    read_scaling,
    se_shape_of,
    se_shape_words,
)
from effdsl.language.spec import (
    BLOCK_TYPES,
    MAX_BLOCKS,
    MAX_STAGES,
    POOLS,
    ROLES,
    Block,
    BlockDef,
    BlockPart,
    Choice,
    Defaults,
    Head,
    Hidden,
    Include,
    Network,
    Pool,
    Preset,
    Role,
    Scaling,
)
from effdsl.language.values import Reader, check_act, check_value, to_float

# k3 s2 e6 c24 x2 se0.25: a one- or two-letter field glued to its number.
_FIELD = re.compile(r"^(se|k|s|e|c|x)([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)$")
_FIELD_NAMES = {"k": "kernel", "s": "stride", "e": "expand", "c": "out_ch", "x": "repeats", "se": "se"}
_STAGE_WORDS = ("k<kernel>", "s<stride>", "e<expand>", "c<channels>", "x<repeats>", "se<ratio>",
                "act", "bn", "skip", "noskip", "then")
# What a 'then' group of a stage line may change (the stride, width, block type and batch norm are the stage's)
_PART_FIELDS = frozenset({"expand", "expand_from", "kernel", "repeats", "se", "act", "skip",
                          "se_of", "se_divisor", "se_inner", "se_gate"})


# ---------------------------------------------------------------------------- blocks

def _block(stmt: RawStatement, errors: Collector, user: Mapping[str, BlockDef | None] | None = None) -> Block | None:
    """A stem, stage or head line; None when a mistake (reported) leaves no block to build.

    ``user``: the block kinds the spec defines, usable in stage lines like the built-in ones
    (None: a definition with a mistake, reported already)."""
    user = user or {}
    role, kind = _role_and_kind(stmt)
    choices: list[Choice] = []
    block_type: str | None
    if kind.is_choice:
        block_type, ok = _kind_choice(role, kind, choices, errors)
    else:
        block_type = _block_type(role, kind, errors, user)
        ok = block_type is not None
    first, groups = _then_groups(stmt.items)
    values: Values = {}
    spans: dict[str, Span] = {"block": kind.span}
    reader = Reader(first, errors, kind.span)
    while reader.more():
        tok = reader.take()
        nxt = reader.peek()
        if tok.is_choice or (nxt is not None and nxt.is_choice and takes_choice(tok, nxt)):
            ok = _choice_option(reader, tok, role, values, spans, choices, errors) and ok
        else:
            ok = _option(reader, tok, role, values, spans, errors) and ok
    ok = _has_required(stmt, role, values, errors) and ok
    ok = _fits_role(role, None if kind.is_choice else block_type, values, spans, errors) and ok
    definition = user.get(block_type or "")
    if definition is not None:
        ok = _fits_block_def(definition, values, spans, errors) and ok
    parts = [_part(then, items, role, block_type, errors) for then, items in groups]
    if groups and choices:
        errors.error("E103", "a stage with 'then' groups cannot carry choices", choices[0].span,
                     "write the choices on stages of one kind of block, or the groups as stages of their own")
        ok = False
    if not ok or block_type is None or any(part is None for part in parts):
        return None
    bn = bn_of(values)
    se_shape = se_shape_of(values)
    return Block(span=stmt.span, spans=spans, role=role, block=block_type, bn=bn, choices=tuple(choices),
                 se_shape=se_shape, parts=tuple(p for p in parts if p is not None), **clean(values))


def _then_groups(items: tuple[Tok, ...]) -> tuple[tuple[Tok, ...], list[tuple[Tok, tuple[Tok, ...]]]]:
    """A line's words before its first ``then``, and each ``then`` with the words of its group."""
    cuts = [i for i, tok in enumerate(items) if not tok.is_number and not tok.is_choice and tok.text == "then"]
    bounds = [*cuts, len(items)]
    return items[:bounds[0]], [(items[a], items[a + 1:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def _part(then: Tok, items: tuple[Tok, ...], role: Role, block_type: str | None,
          errors: Collector) -> BlockPart | None:
    """A ``then`` group: the blocks that follow in the same stage, with what they change."""
    if role == "stage" and block_type is None:
        return None  # an unknown block type, reported already
    if role != "stage" or block_type not in ("mbconv", "fused_mbconv"):
        line = role if role != "stage" else f"{block_type} stage"
        errors.error("E103", f"'then' in a {line} line", then.span,
                     "'then' starts a group of blocks of an mbconv or fused_mbconv stage that differ in "
                     "expansion, kernel, activation or squeeze-excite")
        return None
    if not items:
        errors.error("E106", "'then' with nothing after it", then.span,
                     "say what the next blocks change, for example: then e3 x2")
        return None
    values: Values = {}
    spans: dict[str, Span] = {}
    reader = Reader(items, errors, then.span)
    ok = True
    while reader.more():
        tok = reader.take()
        nxt = reader.peek()
        if tok.is_choice or (nxt is not None and nxt.is_choice and takes_choice(tok, nxt)):
            where = tok.span if tok.is_choice else Span.cover(tok.span, reader.take().span)
            errors.error("E103", "a choice in a 'then' group", where,
                         "write the choices on stages of one kind of block, or the group as a stage of its own")
            ok = False
            continue
        ok = _option(reader, tok, role, values, spans, errors) and ok
    for field in sorted(set(values) - _PART_FIELDS):
        what = {"stride": "stride: only a stage's first block strides",
                "out_ch": "channels: the blocks of a stage have one width",
                "bn_eps": "bn: the blocks of a stage share their batch norm",
                "bn_momentum": "bn: the blocks of a stage share their batch norm"}.get(field, field)
        errors.error("E103", f"a 'then' group cannot change the {what}", spans[field],
                     "start a new stage line for a new stride or width")
        ok = False
    if not ok:
        return None
    se_shape = se_shape_of(values)
    return BlockPart(span=Span.cover(then.span, items[-1].span), spans=spans, se_shape=se_shape, **clean(values))


def _kind_choice(role: Role, kind: Tok, choices: list[Choice], errors: Collector) -> tuple[str | None, bool]:
    """A choice of block types (``{mbconv,fused_mbconv}``): the reference type, and whether it reads."""
    block_type, node = read_kind_choice(kind, errors)
    if role != "stage":
        _outside_stage(kind, f"a {role}", errors)
    elif node is not None:
        choices.append(node)
    return block_type, node is not None and role == "stage"


def _choice_option(reader: Reader, tok: Tok, role: Role, values: Values, spans: dict[str, Span],
                   choices: list[Choice], errors: Collector) -> bool:
    """A choice in a block line (``k{3,5}``, ``x2+{-1,0,+1}``, ``{skip,noskip}``); False when it leaves no block."""
    choice = tok if tok.is_choice else reader.take()
    read = read_bare_choice(tok, role, errors) if tok.is_choice else read_choice(tok, choice, role, errors)
    where = Span.cover(tok.span, choice.span)
    if read is None:
        return False
    field, value, node = read
    if node is None and role == "stage":  # reported
        values.setdefault(field, None)
        return False
    if field in spans:
        errors.error("E105", f"{field} is given twice", where, f"first given at {spans[field]}")
        return False
    values[field], spans[field] = value, where  # the reference value keeps E106 quiet
    if role != "stage":  # reported; the stem or head reads on with the first option
        _outside_stage(choice, f"a {role}", errors)
        return True
    if node is None:
        return False
    choices.append(node)
    return True


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
                tok = tok.choices[0]
            out.append(tok)
        return tuple(out)

    if stmt.settings is not None:
        settings = tuple(replace(s, items=first_options(s.items)) for s in stmt.settings)
        return replace(stmt, settings=settings)
    return replace(stmt, items=first_options(stmt.items))


def _role_and_kind(stmt: RawStatement) -> tuple[Role, Tok]:
    """The role (the keyword) and the block type's word; the grammar gives a block line both."""
    role = stmt.keyword.text
    if role not in ROLES or stmt.name is None:
        raise InternalError("analyze", f"'{role}' is not a block line with a block type", what="module")
    return role, stmt.name


def _block_type(role: Role, kind: Tok, errors: Collector, user: Mapping[str, BlockDef | None]) -> str | None:
    """The block type ``kind`` names (a built-in one or one the spec defines); a stem and a
    head are convs (E101 otherwise)."""
    allowed: tuple[str, ...] = (*BLOCK_TYPES, *user) if role == "stage" else ("conv",)
    if kind.text in allowed:
        return kind.text if user.get(kind.text, True) is not None else None  # a broken definition: reported
    hint = did_you_mean(kind.text, allowed)
    errors.error("E101", f"unknown {role} block '{kind.text}'" if role == "stage"
                 else f"a {role} is a 'conv', got '{kind.text}'", kind.span, hint)
    return None


def _option(reader: Reader, tok: Tok, role: Role, values: Values, spans: dict[str, Span],
            errors: Collector) -> bool:
    """Read the option starting at ``tok``; False when it is wrong in a way that leaves no block."""
    match = None if tok.is_number else _FIELD.match(tok.text)
    nxt = reader.peek()
    if match:
        ok = _glued_field(match, tok, values, spans, errors)
        return _after_field(_FIELD_NAMES[match.group(1)], reader, values, spans, errors) and ok
    if tok.text == "se" and nxt is not None and nxt.is_number:  # 'se 0.25', apart
        value, span = reader.number("se")
        ok = _number_field("se", value, Tok(tok.text, False, Span.cover(tok.span, span)), values, spans, errors)
        return _after_field("se", reader, values, spans, errors) and ok
    if tok.text in SE_WORDS:
        errors.error("E103", f"'{tok.text}' out of place", tok.span,
                     f"'{tok.text}' shapes a squeeze-excite and follows its ratio: se 0.25 of mid divisor 8"
                     if tok.text != "of" else "'of' follows a squeeze-excite ratio (se 0.25 of mid) or an "
                     "expansion (e4 of c24)")
        if reader.more():
            reader.take()
        return False
    if tok.text == "act":
        return _act(reader, values, spans, errors)
    if tok.text in ("skip", "noskip"):
        if _given_twice("skip", tok, values, spans, errors):
            return False
        spans["skip"], values["skip"] = tok.span, tok.text == "skip"
        return True
    if tok.text == "bn":
        bn_pairs(reader, values, spans)
        return True
    hint = did_you_mean(tok.text, ("act", "bn", "skip", "noskip", "se"))
    if hint is None or hint.startswith("expected"):
        hint = "block options are " + ", ".join(_STAGE_WORDS)
    errors.error("E103", f"unknown option '{tok.text}' for a {role}", tok.span, hint)
    return False


def _after_field(field: str, reader: Reader, values: Values, spans: dict[str, Span], errors: Collector) -> bool:
    """What may follow a field: the words that shape a squeeze-excite after ``se R``, the
    fixed input width of an expansion after ``eN`` (``e4 of c24``)."""
    if field == "se":
        se_shape_words(reader, values, spans)
        return True
    nxt = reader.peek()
    if field != "expand" or nxt is None or nxt.text != "of":
        return True
    of = reader.take()
    width = reader.peek()
    match = None if width is None or width.is_number else _FIELD.match(width.text)
    if width is None or match is None or match.group(1) != "c":
        errors.error("E200", "expected channels after 'of', as in e4 of c24", width.span if width else of.span,
                     "the expansion's input width: mid = e x this width (scaled with the network)")
        if width is not None:
            reader.take()
        return False
    reader.take()
    if _given_twice("expand_from", width, values, spans, errors):
        return False
    spans["expand_from"] = Span.cover(of.span, width.span)
    values["expand_from"] = check_value("out_ch", float(match.group(2)), width.span, errors)
    return values["expand_from"] is not None


def _glued_field(match: re.Match[str], tok: Tok, values: Values, spans: dict[str, Span], errors: Collector) -> bool:
    """``k3``, ``c24``, ``se0.25``: a field's letters glued to its number."""
    field = _FIELD_NAMES[match.group(1)]
    value = float(match.group(2))
    if not math.isfinite(value):
        errors.error("E200", f"{field} is out of range: {tok.text}", tok.span)
        return False
    return _number_field(field, value, tok, values, spans, errors)


def _number_field(field: str, value: float | None, tok: Tok, values: Values, spans: dict[str, Span],
                  errors: Collector) -> bool:
    if _given_twice(field, tok, values, spans, errors):
        return False
    spans[field] = tok.span
    values[field] = check_value(field, value, tok.span, errors)
    return values[field] is not None


def _given_twice(field: str, tok: Tok, values: Values, spans: dict[str, Span], errors: Collector) -> bool:
    if field in values or (field in spans and field != "block"):
        errors.error("E105", f"{field} is given twice", tok.span, f"first given at {spans[field]}")
        return True
    return False


def _act(reader: Reader, values: Values, spans: dict[str, Span], errors: Collector) -> bool:
    """``act NAME``; an unknown name is reported but still leaves a block (the default act)."""
    name = reader.word("an activation name after 'act'")
    if name is not None and "act" in spans:
        errors.error("E105", "act is given twice", name.span, f"first given at {spans['act']}")
        return False
    if name is not None and check_act(name, errors):
        values["act"], spans["act"] = name.text, name.span
    return True


def _has_required(stmt: RawStatement, role: Role, values: Values, errors: Collector) -> bool:
    """Every block line gives its kernel and its channels (E106)."""
    ok = True
    for required, example in (("kernel", "k3"), ("out_ch", "c32")):
        if required not in values:
            errors.error("E106", f"this {role} does not give its {'channels' if required == 'out_ch' else required}",
                         stmt.keyword.span if not stmt.items else Span.cover(stmt.keyword.span, stmt.items[-1].span),
                         f"add {example}")
            ok = False
    return ok


def _fits_block_def(definition: BlockDef, values: Values, spans: dict[str, Span], errors: Collector) -> bool:
    """A stage of a user's block gives only what its ops use (E103): an expansion when an op
    names ``mid``, a squeeze-excite ratio when it has ``se``, skip or noskip when it has
    ``residual``."""
    ok = True
    for field, needs, why in (("expand", definition.uses("mid"), "no op of it names the width 'mid'"),
                              ("se", definition.has("se"), "it has no 'se' op"),
                              ("skip", definition.has("residual"), "it has no 'residual' op")):
        if field in values and not needs:
            errors.error("E103", f"block '{definition.name}' takes no {field}: {why}", spans[field],
                         f"the block is defined at line {definition.span.line}" if definition.origin is None
                         else f"the block is defined in {definition.origin}")
            ok = False
    if "stride" in values and values["stride"] != 1 and not definition.uses("s"):
        errors.error("E103", f"block '{definition.name}' takes no stride: no op of it has 'stride s'",
                     spans["stride"], "give its strided op 'stride s' (dwconv kernel k stride s)")
        ok = False
    return ok


def _fits_role(role: Role, block_type: str | None, values: Values, spans: dict[str, Span],
               errors: Collector) -> bool:
    """Only a stage repeats, expands, squeezes or skips; a conv stage neither expands nor squeezes (E103)."""
    ok = True
    if role != "stage":
        for field in ("repeats", "expand", "se", "skip", "expand_from"):
            if field in values:
                errors.error("E103", f"a {role} takes no {field}", spans[field])
                ok = False
    elif block_type == "conv":
        for field in ("expand", "se", "expand_from"):
            if field in values:
                errors.error("E103", f"a conv stage takes no {field}", spans[field],
                             "expansion and squeeze-excite belong to mbconv and fused_mbconv")
                ok = False
    return ok


# ---------------------------------------------------------------------------- network

_SINGLE = ("input", "classes", "scaling", "defaults", "preprocess", "stem", "head", "pool", "hidden", "dropout",
           "linear")
# 'hidden' is a linear line with a width (linear c1280 act hardswish): a hidden layer before the dropout
_HEAD_ORDER = ("head", "pool", "hidden", "dropout", "linear")


def analyze(raw: RawNetwork, library: tuple[BlockDef, ...] = (),
            includes: tuple[Include, ...] | None = None) -> Network:
    """Check the raw statements and build the spec AST; raise with every error found.

    ``library``: the block definitions of the files the spec includes (resolved by the
    caller, which reads them: :mod:`effdsl.language.includes`); ``includes``: the include
    statements they came from (by default the file's own, unresolved)."""
    errors = Collector()
    own = read_block_defs(raw.blocks, errors, taken=[b.name for b in library])
    user: dict[str, BlockDef | None] = {d.name.text: None for d in raw.blocks if d.name.text not in BLOCK_TYPES}
    user.update({b.name: b for b in (*own, *library)})
    if includes is None:
        includes = tuple(Include(span=i.span, path=i.path) for i in raw.includes)
    first, stages, presets = _sort_statements(raw, errors)
    in_ch, resolution, classes = _input(first.get("input"), first.get("classes"), raw, errors)
    scaling = read_scaling(first["scaling"], stages, errors) if "scaling" in first else Scaling(span=raw.name.span)
    defaults = read_defaults(first["defaults"], errors) if "defaults" in first else Defaults(span=raw.name.span)
    preprocess = read_preprocess(first["preprocess"], in_ch, errors) if "preprocess" in first else None
    preset_nodes = _read_presets(presets, errors)

    stem = _block(first["stem"], errors) if "stem" in first else None
    stage_nodes = [_block(s, errors, user) for s in stages]
    _check_size(stages, stage_nodes, errors)
    head = _head(first, raw, errors)
    for what in ("stem",):
        if what not in first:
            errors.error("E106", "the network has no stem", raw.end, "add a line like: stem conv k3 s2 c32")
    if not stages:
        errors.error("E106", "the network has no stage", raw.end, "add a line like: stage mbconv e6 k3 s2 c24 x2")
    _raise_if_any(errors)
    # a part left None was reported, and _raise_if_any raised: none is left here
    stage_blocks = [node for node in stage_nodes if node is not None]
    assert stem is not None and head is not None and scaling is not None and len(stage_blocks) == len(stages)
    assert in_ch is not None and resolution is not None and classes is not None
    network = Network(
        span=raw.span,
        spans={"name": raw.name.span, **_input_spans(first.get("input"), first.get("classes"))},
        name=raw.name.text,
        in_ch=in_ch,
        resolution=resolution,
        classes=classes,
        scaling=scaling,
        defaults=defaults,
        preprocess=preprocess,
        presets=tuple(preset_nodes.values()),
        stem=stem,
        stages=tuple(stage_blocks),
        head=head,
        includes=includes,
        blocks=(*own, *library),
    )
    _check_divisible(network, errors)
    _check_head_width(network, errors)
    _raise_if_any(errors)
    return network


def _sort_statements(
    raw: RawNetwork, errors: Collector,
) -> tuple[dict[str, RawStatement], list[RawStatement], list[RawStatement]]:
    """The statements given once (by keyword), the stages and the presets; checks their order."""
    first: dict[str, RawStatement] = {}
    stages: list[RawStatement] = []
    presets: list[RawStatement] = []
    last_role = "start"
    for stmt in raw.statements:
        key = stmt.keyword.text
        if key == "linear" and _is_hidden(stmt):
            key = "hidden"
        if key not in ("stem", "stage", "head"):  # a block line reports its own (E601)
            stmt = _without_choices(stmt, errors)
        if key in _SINGLE:
            if key in first:
                errors.error("E105", f"{_label(key)} is given twice", stmt.keyword.span,
                             f"first given at line {first[key].span.line}"
                             + ("; a network has one hidden layer" if key == "hidden" else ""))
                continue
            first[key] = stmt
        if key in ("scaling", "defaults") and stmt.name is not None:
            errors.error("E103", f"'{key}' takes no name, got '{stmt.name.text}'", stmt.name.span)
        late_stage = key == "stage" and any(k in first for k in ("head", "pool", "hidden", "linear"))
        if key == "stage":
            if late_stage:
                after = next(k for k in ("head", "pool", "hidden", "linear") if k in first)
                errors.error("E107", f"a stage after {_label(after)} (line {first[after].span.line}); stages come "
                             "between the stem and the head", stmt.keyword.span,
                             "the order is: stem, stages, head, pool, dropout, linear")
            stages.append(stmt)
        elif key == "preset":
            presets.append(stmt)
        if key in ("stem", "stage") + _HEAD_ORDER and not late_stage:  # one error per statement
            last_role = _order_check(key, last_role, stmt, errors)
    return first, stages, presets


def _read_presets(presets: list[RawStatement], errors: Collector) -> dict[str, Preset]:
    """The presets by name (a spec may define thousands); a name defined twice is E105."""
    preset_nodes: dict[str, Preset] = {}
    for stmt in presets:
        node = read_preset(stmt, errors)
        if node is None:
            continue
        clash = preset_nodes.get(node.name)
        if clash is not None:
            errors.error("E105", f"preset '{node.name}' is defined twice", node.span_of("name"),
                         f"first defined at line {clash.span.line}")
            continue
        preset_nodes[node.name] = node
    return preset_nodes


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
    """The stage's repeats (with its 'then' groups), or in a search space the most its choice allows."""
    if stage.parts:
        return stage.repeats + sum(part.repeats for part in stage.parts)
    for choice in stage.choices:
        if choice.field == "repeats":
            offset = base_of(choice) if choice.relation == "offset" else 0
            return int(max(as_number(o) for o in choice.options) + offset)
    return stage.repeats


def _order_check(key: str, last: str, stmt: RawStatement, errors: Collector) -> str:
    order = ("start", "stem", "stage") + _HEAD_ORDER
    if order.index(key) < order.index(last):
        hint = "the order is: stem, stages, head, pool, dropout, linear"
        if "hidden" in (key, last):
            hint = "the order is: stem, stages, head, pool, linear cN (the hidden layer), dropout, linear"
        errors.error("E107", f"{_label(key)} must come before {_label(last)}", stmt.keyword.span, hint)
        return last
    return key


def _is_hidden(stmt: RawStatement) -> bool:
    """A ``linear`` line that gives channels or an activation is a hidden layer; a bare one (or
    one with other words, reported there) is the classifier."""
    return any(tok.text == "act" or (match := _FIELD.match(tok.text)) is not None and match.group(1) == "c"
               for tok in stmt.items if not tok.is_number and not tok.is_choice)


def _label(key: str) -> str:
    """A statement's name in a message: 'pool', or the hidden layer's 'linear cN'."""
    return "the hidden layer ('linear cN')" if key == "hidden" else f"'{key}'"


def _input(inp: RawStatement | None, cls: RawStatement | None, raw: RawNetwork,
           errors: Collector) -> tuple[int | None, int | None, int | None]:
    """The input channels, resolution and classes; None where missing or wrong (reported)."""
    in_ch: int | None = None
    resolution: int | None = None
    classes: int | None = None
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
    pool: Pool = "avg"
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
        for tok in first["linear"].items:  # the classifier takes no words; a hidden layer says its channels
            errors.error("E103", f"unexpected '{tok.text}' after 'linear'", tok.span,
                         "the classifier is 'linear' alone; a hidden layer before it is 'linear c1280 [act NAME]'"
                         if tok.is_number else None)
    hidden = _hidden(first["hidden"], errors) if "hidden" in first else None
    if "hidden" in first:
        spans["hidden"] = first["hidden"].span
    span = first["head"].span if "head" in first else raw.end
    return Head(span=span, spans=spans, conv=conv, pool=pool, dropout=dropout, hidden=hidden,
                linear="linear" in first)


def _hidden(stmt: RawStatement, errors: Collector) -> Hidden | None:
    """``linear c1280 act hardswish``: a hidden linear layer after the pooling (MobileNetV3's)."""
    values: Values = {}
    spans: dict[str, Span] = {}
    reader = Reader(stmt.items, errors, stmt.keyword.span)
    while reader.more():
        tok = reader.take()
        match = None if tok.is_number else _FIELD.match(tok.text)
        if match is not None and match.group(1) == "c":
            _glued_field(match, tok, values, spans, errors)
        elif tok.text == "act":
            _act(reader, values, spans, errors)
        else:
            hint = did_you_mean(tok.text, ("act",)) if not tok.is_number else None
            if hint is None or hint.startswith("expected"):
                hint = "a hidden layer takes c<channels> and act NAME: linear c1280 act hardswish"
            errors.error("E103", f"unexpected '{tok.text}' in a hidden 'linear' layer", tok.span, hint)
    if "out_ch" not in spans:
        errors.error("E106", "this hidden 'linear' layer does not give its channels",
                     Span.cover(stmt.keyword.span, stmt.items[-1].span), "add c1280 (or write 'linear' alone "
                     "for the classifier)")
        return None
    if values.get("out_ch") is None:
        return None
    return Hidden(span=stmt.span, spans=spans, out_ch=values["out_ch"], act=values.get("act"))


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
    extra = _fixed_widths(net)
    for index, block in enumerate(parts):
        written = [(block.out_ch, block.span_of("out_ch"))]
        for choice in block.choices:
            if choice.field == "out_ch" and choice.relation == "set":  # each option, where it is written
                written = [(int(c), s) for c, s in zip(choice.options, choice.option_spans, strict=True)]
        # (multipliers are rounded to the divisor when a member is made)
        for out_ch, span in written + (extra if index == 0 else []):
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


def _fixed_widths(net: Network) -> list[tuple[int, Span]]:
    """The other widths that scale with the channel rule: the expansions' fixed input widths
    (``e4 of c24``) and the hidden layer's."""
    widths = [(block.expand_from, block.span_of("expand_from")) for block in net.stages
              if block.expand_from is not None]
    widths += [(part.expand_from, part.span_of("expand_from")) for block in net.stages for part in block.parts
               if part.expand_from is not None]
    hidden = net.head.hidden
    if hidden is not None and "head" not in net.scaling.fixed_width:
        widths.append((hidden.out_ch, hidden.span_of("out_ch")))
    return widths


def _widths(block: Block) -> list[int]:
    """The block's channels; in a search space, every channel count its set choice allows."""
    for choice in block.choices:
        if choice.field == "out_ch" and choice.relation == "set":
            return [int(c) for c in choice.options]
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
