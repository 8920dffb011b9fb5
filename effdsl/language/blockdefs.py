"""Block definitions: ``block NAME { ops }`` read into :class:`~effdsl.language.spec.BlockDef`
(part of stage 2).

Each line of a definition is an op (:data:`~effdsl.language.spec.BLOCK_OPS`, or a plug-in
op of an installed package, :mod:`effdsl.language.plugins`) with its options as ``word
value`` pairs::

    block convnext {
      dwconv kernel k stride s   # the stage's kernel; its stride on the first block
      ln                         # layer norm over the channels
      conv to mid                # 1x1 conv to e x in (rounded to the channel divisor)
      act gelu
      conv to out                # 1x1 conv to the stage's channels
      residual                   # + the block input (through stochastic depth) when shapes allow
    }

The rules an op's place must follow (a batch norm right after a conv, the residual last,
one squeeze-excite, one strided op) are checked here, with every mistake reported.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from effdsl.diagnostics import Collector, Span, did_you_mean
from effdsl.language.parser import RawBlockDef, RawGroup, RawOp, Tok
from effdsl.language.plugins import load_plugin, plugin_names
from effdsl.language.spec import (
    BLOCK_OPS,
    BLOCK_TYPES,
    MAX_BLOCK_OPS,
    MAX_CHANNELS,
    MAX_KERNEL,
    WIDTHS,
    BlockDef,
    OpLine,
    OptionValue,
)
from effdsl.language.values import check_act

_KERNEL_WORDS = ("k",)
_STRIDE_WORDS = ("s",)
_PLUGIN_WORDS = (*WIDTHS, "k", "s")
# Names a group cannot take: the block's own parts and operators (se, residual: drop_path and
# add), and what the generic torch class of a defined block already has as an attribute.
_RESERVED_GROUPS = frozenset({
    "se", "residual", "drop_path", "add", "input", "order", "forward", "training", "to", "type", "cpu", "cuda",
    "float", "half", "double", "train", "eval", "apply", "modules", "children", "buffers", "parameters",
    "compile", "state_dict"})
# Words of other libraries for what an op here does.
_INSTEAD = {
    "add": "'residual' adds the block input (through stochastic depth), as the block's last op",
    "drop_path": "'residual' applies stochastic depth before adding the block input",
    "linear": "a linear layer over the channels is a 1x1 conv: conv to W bias",
    "pool": "global pooling inside a block is part of squeeze-excite: se",
    "layernorm": "did you mean 'ln'?",
    "batchnorm": "did you mean 'bn'?",
}


def read_block_defs(raws: Iterable[RawBlockDef], errors: Collector, taken: Iterable[str] = (),
                    origin: str | None = None, builtin: bool = False) -> list[BlockDef]:
    """The block definitions of one file; a name that is a built-in block type or is defined
    twice (here or in ``taken``, the names defined already) is E121. ``builtin``: the
    prelude's definitions, which are the built-in block types."""
    seen: dict[str, Span | None] = dict.fromkeys(taken)
    out = []
    for raw in raws:
        name = raw.name
        if name.text in BLOCK_TYPES and not builtin:
            errors.error("E121", f"'{name.text}' is a built-in block type; a block definition needs another name",
                         name.span, f"call it, for example, my_{name.text}")
            continue
        if name.text in seen:
            first = seen[name.text]
            errors.error("E121", f"block '{name.text}' is defined twice", name.span,
                         f"first defined at line {first.line}" if first is not None else "it is defined in an "
                         "included file; give this one another name")
            continue
        seen[name.text] = name.span
        node = _block_def(raw, errors, origin)
        if node is not None:
            out.append(node)
    return out


def _block_def(raw: RawBlockDef, errors: Collector, origin: str | None) -> BlockDef | None:
    if not raw.ops:
        errors.error("E106", f"block '{raw.name.text}' has no ops", raw.end,
                     "write one op a line: conv to mid, bn, act, dwconv kernel k stride s, ...")
        return None
    if len(raw.ops) > MAX_BLOCK_OPS:
        errors.error("E215", f"block '{raw.name.text}' has {len(raw.ops)} ops; at most {MAX_BLOCK_OPS}",
                     raw.ops[MAX_BLOCK_OPS].span)
        return None
    groups_ok = _groups(raw, errors)  # the ops are read even so: every mistake is reported at once
    # An op's name: its word, numbered when the word comes more than once among the ops of
    # its group (or among the ops of no group); a group's ops are named <group>.<name>, and
    # its dwconv is its conv (expand.conv, dw.conv: the names of conv + bn + act modules).
    counts = Counter(_name_key(op) for op in raw.ops)
    numbered: Counter[tuple[RawGroup | None, str]] = Counter()
    ops: list[OpLine] = []
    ok = True
    for raw_op in raw.ops:
        key = _name_key(raw_op)
        numbered[key] += 1
        name = key[1] if counts[key] == 1 else f"{key[1]}{numbered[key]}"
        label = _label(raw_op)
        op = _op(raw_op, name if label is None else f"{label}.{name}", errors)
        ok = ok and op is not None
        if op is not None:
            group = raw_op.group
            if group is not None:
                when = None if group.cond is None else (group.cond[0].text, group.cond[1].text, group.cond[2].text)
                op = op.model_copy(update={"group": group.name.text, "when": when})
            ops.append(op)
    if not (ok and groups_ok):
        return None
    if not _placement(raw, ops, errors):
        return None
    return BlockDef(span=raw.span, spans={"name": raw.name.span}, name=raw.name.text, ops=tuple(ops), origin=origin)


def _name_key(op: RawOp) -> tuple[RawGroup | None, str]:
    word = op.kind.text
    return op.group, "conv" if op.group is not None and word == "dwconv" else word


def _label(op: RawOp) -> str | None:
    return None if op.group is None else op.group.name.text


def _groups(raw: RawBlockDef, errors: Collector) -> bool:
    """The group labels of a definition (E125, E104): a name not taken by an op of no group;
    a condition comparing two different widths; se and residual in no group; a name used by
    two lines only as the two sides of one condition (``if mid != in`` / ``if mid == in``)."""
    ok = True
    labels: dict[str, list[RawGroup]] = {}
    for op in raw.ops:
        group = op.group
        if group is None:
            continue
        if op.kind.text in ("se", "residual"):
            errors.error("E125", f"'{op.kind.text}' stands on its own, not in a group", op.kind.span,
                         f"write it on a line of its own: its operators are the block's '{op.kind.text}' part")
            ok = False
        lines = labels.setdefault(group.name.text, [])
        if group not in lines:
            lines.append(group)
    kinds = Counter(op.kind.text for op in raw.ops if op.group is None)
    own = {f"{kind}{i}" for kind, n in kinds.items() if n > 1 for i in range(1, n + 1)} | set(kinds)
    for name, groups in labels.items():
        first = groups[0]
        if not name.isidentifier() or name.startswith("_") or name in own or name in _RESERVED_GROUPS:
            errors.error("E125", f"'{name}' cannot name a group", first.name.span,
                         "a group's name is a word of its own (letters, digits, '_'), not the name of an op of "
                         "the block outside a group, se, residual, drop_path or add")
            ok = False
        for group in groups:
            ok = _condition(group, errors) and ok
        if len(groups) > 2 or (len(groups) == 2 and not _complementary(groups[0], groups[1])):
            errors.error("E125", f"group '{name}' is written twice", groups[1].name.span,
                         f"first written at line {first.span.line}; one name takes two lines only as the two sides "
                         "of one condition: if mid != in / if mid == in")
            ok = False
    return ok


def _condition(group: RawGroup, errors: Collector) -> bool:
    if group.cond is None:
        return True
    left, _, right = group.cond
    ok = True
    for word in (left, right):
        if word.text not in WIDTHS:
            errors.error("E104", f"unknown width '{word.text}' in the condition of group '{group.name.text}'",
                         word.span, did_you_mean(word.text, WIDTHS) or "in, mid or out")
            ok = False
    if ok and left.text == right.text:
        errors.error("E125", f"the condition of group '{group.name.text}' compares {left.text} with itself",
                     group.span, "compare two widths: if mid != in")
        ok = False
    return ok


def _complementary(a: RawGroup, b: RawGroup) -> bool:
    """Whether two conditions are each other's negation (exactly one of the two groups is there)."""
    if a.cond is None or b.cond is None:
        return False
    widths_a, widths_b = {a.cond[0].text, a.cond[2].text}, {b.cond[0].text, b.cond[2].text}
    return widths_a == widths_b and a.cond[1].text != b.cond[1].text


def _op(raw: RawOp, name: str, errors: Collector) -> OpLine | None:
    """One op line; None when a mistake (reported) leaves no op."""
    kind = raw.kind.text
    if kind in BLOCK_OPS:
        return _builtin_op(raw, name, errors)
    plugin = load_plugin(kind, raw.kind.span) if kind.isidentifier() else None
    if plugin is None:
        errors.error("E120", f"unknown op '{kind}' in a block definition", raw.kind.span,
                     _INSTEAD.get(kind) or did_you_mean(kind, [*BLOCK_OPS, *plugin_names()]))
        return None
    values: dict[str, OptionValue] = dict(plugin.options)
    spans: dict[str, Span] = {"kind": raw.kind.span}
    ok = _pairs(raw, tuple(plugin.options), values, spans, errors)
    for key, value in values.items():
        if isinstance(value, str) and value not in _PLUGIN_WORDS:
            errors.error("E104", f"unknown value '{value}' for '{key}' of '{kind}'", spans.get(key, raw.span),
                         did_you_mean(value, _PLUGIN_WORDS))
            ok = False
        elif not isinstance(value, str) and not (math.isfinite(value) and abs(value) <= MAX_CHANNELS):
            errors.error("E215", f"{key} {value:g} is beyond the compiler's limits (at most {MAX_CHANNELS:,})",
                         spans.get(key, raw.span))
            ok = False
    if not ok:
        return None
    return OpLine(span=raw.span, spans=spans, kind=kind, name=name, options=tuple(values.items()))


def _pairs(raw: RawOp, allowed: tuple[str, ...], values: dict[str, OptionValue], spans: dict[str, Span],
           errors: Collector) -> bool:
    """``word value`` pairs (and the bare word ``bias``) into ``values``; False on a mistake (reported)."""
    items = list(raw.items)
    ok = True
    while items:
        word = items.pop(0)
        if word.is_number or word.text not in allowed:
            hint = did_you_mean(word.text, allowed) if allowed else None
            what = f"'{raw.kind.text}' takes " + (", ".join(allowed) if allowed else "no options")
            errors.error("E103", f"unknown option '{word.text}' for '{raw.kind.text}'", word.span,
                         hint if hint and not hint.startswith("expected") else what)
            return False
        if word.text in spans:
            errors.error("E105", f"{word.text} is given twice", word.span, f"first given at {spans[word.text]}")
            ok = False
        if word.text == "bias":
            values["bias"], spans["bias"] = True, word.span
            continue
        if not items:
            errors.error("E106", f"'{word.text}' needs a value", word.span,
                         "a number, or one of " + ", ".join(_words_for(word.text)))
            return False
        value = items.pop(0)
        values[word.text] = _number(value) if value.is_number else value.text
        spans[word.text] = value.span
    return ok


def _words_for(option: str) -> tuple[str, ...]:
    return {"kernel": _KERNEL_WORDS, "stride": _STRIDE_WORDS, "to": WIDTHS}.get(option, _PLUGIN_WORDS)


def _number(tok: Tok) -> int | float:
    value = float(tok.text)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _builtin_op(raw: RawOp, name: str, errors: Collector) -> OpLine | None:
    kind = raw.kind.text
    spans: dict[str, Span] = {"kind": raw.kind.span}
    if kind == "act":
        return _act_op(raw, name, errors)
    values: dict[str, OptionValue] = {}
    if not _pairs(raw, BLOCK_OPS[kind], values, spans, errors):
        return None
    ok = True
    if "kernel" in values:
        ok = _kernel(values["kernel"], spans["kernel"], errors) and ok
    if "stride" in values and values["stride"] not in (1, "s"):
        errors.error("E202", f"a stride in a block is 1 or s (the stage's), got {values['stride']}",
                     spans["stride"], "the stage line says the stride: s2")
        ok = False
    if "to" in values:
        ok = _width(values["to"], spans["to"], errors) and ok
    if "eps" in values:
        eps = values["eps"]
        if isinstance(eps, str) or not 0 < eps < 1:
            errors.error("E207", f"ln eps must be a number in (0, 1), got {eps}", spans["eps"])
            ok = False
    if not ok:
        return None
    fields = {key: value for key, value in values.items() if key != "bias"}
    return OpLine(span=raw.span, spans=spans, kind=kind, name=name, bias=bool(values.get("bias", False)),
                  **fields)  # type: ignore[arg-type]  # each value checked above for its field


def _act_op(raw: RawOp, name: str, errors: Collector) -> OpLine | None:
    """``act`` (the stage's activation) or ``act NAME``."""
    spans: dict[str, Span] = {"kind": raw.kind.span}
    if not raw.items:
        return OpLine(span=raw.span, spans=spans, kind="act", name=name)
    word, *rest = raw.items
    if rest:
        errors.error("E103", f"unexpected '{rest[0].text}' after 'act {word.text}'", rest[0].span,
                     "act takes one activation name, or none (the stage's)")
        return None
    if word.is_number or not check_act(word, errors):
        if word.is_number:
            errors.error("E102", f"expected an activation name after 'act', got {word.text}", word.span)
        return None
    spans["act"] = word.span
    return OpLine(span=raw.span, spans=spans, kind="act", name=name, act=word.text)


def _kernel(value: OptionValue, span: Span, errors: Collector) -> bool:
    if value in _KERNEL_WORDS:
        return True
    if isinstance(value, str):
        errors.error("E104", f"unknown kernel '{value}'", span, "a number, or k (the stage's kernel)")
        return False
    if not (isinstance(value, int) and value % 2 == 1 and 1 <= value <= MAX_KERNEL):
        errors.error("E201", f"kernel must be an odd integer from 1 to {MAX_KERNEL}, got {value}", span,
                     "or k: the stage's kernel")
        return False
    return True


def _width(value: OptionValue, span: Span, errors: Collector) -> bool:
    if isinstance(value, str):
        if value not in WIDTHS:
            errors.error("E104", f"unknown width '{value}'", span,
                         did_you_mean(value, WIDTHS) or "in, mid or out")
            return False
        return True
    if not (isinstance(value, int) and 1 <= value <= MAX_CHANNELS) or not math.isfinite(value):
        errors.error("E203", f"channels must be a whole number from 1 to {MAX_CHANNELS:,}, got {value}", span,
                     "or in, mid (e x in) or out (the stage's channels)")
        return False
    return True


def _placement(raw: RawBlockDef, ops: list[OpLine], errors: Collector) -> bool:
    """Where each op may stand (E125): a batch norm right after a conv without bias (of its
    own group), the residual last, at most one squeeze-excite and one strided op."""
    ok = True
    for before, op in zip([None, *ops], ops, strict=False):
        if before is not None and before.group != op.group:
            before = None  # a group's first op follows nothing: the group before it may be left out
        if op.kind == "bn" and (before is None or before.kind not in ("conv", "dwconv") or before.bias):
            errors.error("E125", "a batch norm must follow a conv or dwconv without bias", op.span,
                         "batch norm is folded into the conv before it for inference")
            ok = False
    for kind in ("se", "residual"):
        found = [op for op in ops if op.kind == kind]
        if len(found) > 1:
            errors.error("E125", f"a block has one '{kind}' at most", found[1].span)
            ok = False
    if ops[-1].kind != "residual" and any(op.kind == "residual" for op in ops):
        where = next(op for op in ops if op.kind == "residual")
        errors.error("E125", "'residual' must be the block's last op", where.span,
                     "it adds the block input to the block's output")
        ok = False
    strided = [op for op in ops if op.stride == "s" or ("stride", "s") in op.options]
    alternatives = [op for op in strided if op.group is not None and op.when is not None]
    if len(alternatives) == 2 and alternatives[0].group == alternatives[1].group:
        strided.remove(alternatives[1])  # the two sides of one condition: only one is there
    if len(strided) > 1:
        errors.error("E125", "only one op of a block takes the stage's stride", strided[1].spans.get("stride",
                     strided[1].span), f"the first is at line {strided[0].span.line}")
        ok = False
    return ok
