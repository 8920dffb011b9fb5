"""Fuzzing the parser and the whole pipeline: whatever the input, the only exception
that may come out is effdsl's own :class:`EffdslError`, with well-formed diagnostics,
and the CLI never prints a traceback.

Inputs: arbitrary text and bytes, text generated from the Lark grammar, mutations of
every built-in spec (and of random valid networks), pathological sizes, the command
line's flags with odd values, and checkpoints with mutated tensors or bytes.

The number of examples follows the Hypothesis profile of tests/conftest.py: a few
hundred in all with the default ``ci`` profile; ``EFFDSL_HYPOTHESIS_PROFILE=long``
multiplies every test's count by the ratio of the two profiles (about 33x)::

    EFFDSL_HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from typer.testing import CliRunner

import effdsl
from effdsl.cli import app
from effdsl.diagnostics import EffdslError
from effdsl.language.format import format_spec
from effdsl.language.parser import _parser, normalize

from strategies import networks, user_block_networks

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.eff"))
SPEC_TEXT = {p.stem: p.read_text(encoding="utf-8") for p in SPECS}

_CI_EXAMPLES = 60  # max_examples of the 'ci' profile in conftest.py


def examples(n: int) -> int:
    """``n`` examples under the 'ci' profile, proportionally more under 'long'."""
    return max(1, n * settings().max_examples // _CI_EXAMPLES)


# ---------------------------------------------------------------------------- oracle

_CODE = re.compile(r"^E\d{3}$")
_LEAKS = ("Traceback", "$END", "__ANON", "RBRACE", "LBRACE", "SEMICOLON", "_NL")


def check_error(err: EffdslError, text: str | None = None, given: str = "") -> None:
    """The diagnostics of a user error are well formed and render cleanly.

    ``given``: the other user input (options), whose words may be quoted back.
    """
    assert err.diagnostics, "an EffdslError without diagnostics"
    n_lines = normalize(text).count("\n") + 1 if text is not None else None  # CR and CRLF are line ends
    for d in err.diagnostics:
        assert _CODE.match(d.code), f"bad code {d.code!r}"
        assert d.message and d.message.strip(), f"{d.code} without a message"
        if d.span is not None:
            assert d.span.line >= 1 and d.span.column >= 1, f"{d.code}: span {d.span} before the start"
            assert d.span.end_line >= d.span.line, f"{d.code}: span {d.span} ends before it starts"
            if n_lines is not None:
                assert d.span.line <= n_lines + 1, f"{d.code}: line {d.span.line} of a {n_lines}-line file"
    shown = err.render()
    user = (err.source or "") + (text or "") + given  # quoting the user's own words is no leak
    for leak in _LEAKS:
        assert leak not in shown or leak in user, f"{leak!r} in the rendered error:\n{shown}"
    assert str(err) == shown


def check_compiles(spec, text: str | None = None, **options) -> effdsl.Compiled | None:
    """Compile; success or an EffdslError, nothing else (no InternalError, no ValueError ...)."""
    try:
        compiled = effdsl.compile_spec(spec, **options)
    except EffdslError as err:
        check_error(err, text, f"{spec} {options}")
        return None
    s = compiled.summary
    assert isinstance(s.params, int) and s.params >= 0
    assert isinstance(s.macs, int) and s.macs >= 0
    assert isinstance(s.resolution, int) and s.resolution >= 1
    assert s.num_blocks >= 1
    return compiled


# ---------------------------------------------------------------------------- 1. arbitrary text and bytes

_EFF_CHARS = list("network{}\n\n;# x.eE+-0123456789kscfabmonv\t\r_") + ["input", "classes", "stage ", "stem ",
                                                                           "head ", "pool ", "linear", "\ufeff"]
eff_ish_text = st.lists(st.sampled_from(_EFF_CHARS) | st.characters(), max_size=200).map("".join)


@settings(max_examples=examples(60))
@given(st.text() | eff_ish_text)
@example("")
@example("\ufeff")
@example("\x00")
@example("network a {\n")
@example("{" * 10_000)
@example("network a {" + "\u200b" + "}")
@example("\r\r\r;")
@example("$END _NL")  # the user's own words are quoted back, not leaked terminal names
@example("network a {\n  input \u0663 x \uff12\uff12\uff14\n")  # Arabic-Indic and fullwidth digits: E002
def test_arbitrary_text(text):
    text += "\n"  # a str with a newline is source text, never a path
    check_compiles(text, text)


@settings(max_examples=examples(20))
@given(st.text(max_size=300).filter(lambda t: "\n" not in t and "{" not in t))
@example("a" * 5000)  # ENAMETOOLONG from Path.is_file(): an OSError traceback before
@example("\x00")
@example("")
@example(".")
@example("LBRACE")  # quoted back in E110, not a leaked terminal name
def test_arbitrary_text_as_a_spec_name(name):
    """A str without '{' or a newline names a file or a built-in spec."""
    check_compiles(name)


def test_an_unreadable_spec_file(tmp_path, monkeypatch):
    path = tmp_path / "locked.eff"
    path.write_text(TINY, encoding="utf-8")
    real_open = os.open

    def refuse(name, *args, **kwargs):  # root reads any file: permissions cannot make one unreadable
        if str(name) == str(path):
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(EffdslError) as info:
        effdsl.compile_spec(str(path))
    check_error(info.value)
    assert [d.code for d in info.value.diagnostics] == ["E110"]
    assert "Permission denied" in info.value.render()


@settings(max_examples=examples(40))
@given(st.binary(max_size=300) | st.text().map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(b"")
@example(b"\xef\xbb\xbf")
@example(b"\x00")
@example(b"\xff\xfe")
@example(b"\xef\xbb\xbf\xff")
@example(b"network a {\r\n\x80}")
def test_arbitrary_bytes_in_a_file(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.eff"
        path.write_bytes(data)
        check_compiles(str(path))


# ---------------------------------------------------------------------------- 2. grammar-generated text

_FIELDS = ("k", "s", "e", "c", "x", "se")
_NUMBERS = ("0", "1", "2", "3", "8", "16", "32", "224", "1000", "-1", "-0", "0.0", "0.25", "0.9", "1.15", "1e-3",
            "1e308", "1e309", "99999999999999999999999", "0.0001", "3.5", "1e9", "1e-400", ".5", "+2")
_WORDS = ("mbconv", "fused_mbconv", "conv", "act", "silu", "relu", "swish", "none", "bn", "eps", "momentum",
          "skip", "noskip", "se", "avg", "max", "alpha", "beta", "gamma", "channels", "divisor", "min", "guard",
          "depth", "resolution", "width", "ceil", "floor", "half_up", "half_even", "multiple", "fixed", "first",
          "last", "head_width", "scaled", "padding", "same", "symmetric", "drop_path", "dropout", "b0", "b1",
          "stem", "head", "nan", "inf", "dwconv", "ln", "residual", "to", "in", "mid", "out", "kernel", "stride",
          "bias", "block", "include", "k", "s")

_numbers = st.sampled_from(_NUMBERS) | st.integers(-5, 10**6).map(str) | st.floats(
    allow_nan=False, allow_infinity=False).map(repr)
_field_words = st.builds(lambda f, n: f + n.lstrip("+"), st.sampled_from(_FIELDS), _numbers)
_words = st.sampled_from(_WORDS) | _field_words | st.from_regex(r"[A-Za-z_][A-Za-z0-9_.+\-]{0,8}", fullmatch=True)


def _padded(strategy):
    return strategy.map(lambda s: f" {s} ")


EXPLICIT = {
    "WORD": _padded(_words),
    "NUMBER": _padded(_numbers),
    "SETTINGS_KW": _padded(st.sampled_from(("scaling", "defaults", "preprocess", "preset"))),
    "BLOCK_KW": _padded(st.sampled_from(("stem", "stage", "head"))),
    "LAYER_KW": _padded(st.sampled_from(("pool", "dropout", "linear"))),
    "NETWORK": st.just("network "),
    "INPUT": st.just(" input "),
    "CLASSES": st.just(" classes "),
    "X": st.sampled_from((" x ", "x ")),
    "_NL": st.sampled_from(("\n", "\r\n", "\n\n", " # note\n", "\t\n")),
    # %ignore'd, so drawn between any two tokens, where a comment would swallow the rest
    # of the line: comments come with the line ends instead.
    "COMMENT": st.just(""),
}
GRAMMAR_TEXT = from_lark(_parser(), start="start", explicit=EXPLICIT)


def _from_rule(rule: str) -> st.SearchStrategy[str]:
    """Text of one grammar rule (from_lark refuses explicit terminals the rule does not use)."""
    terminals, rules, ignored = _parser().grammar.compile([rule], ())
    used = {t.name for t in terminals} | set(ignored)
    used |= {sym.name for r in rules for sym in r.expansion if sym.is_term}
    return from_lark(_parser(), start=rule, explicit={k: v for k, v in EXPLICIT.items() if k in used})


STATEMENTS = st.one_of(*map(_from_rule, ("block_stmt", "settings_stmt", "layer_stmt", "input", "classes")))
PHIS = st.sampled_from((None, 0.0, -1.0, 1.0, 2.5, 6.0))

TINY = """network tiny {
  input 3 x 64
  classes 10
  scaling { alpha 1.2; beta 1.1; gamma 1.15 }
  preset b1 { width 1.1; depth 1.2; resolution 96 }
  stem conv k3 s2 c16
  stage mbconv e1 k3 s1 c16 x1 se0.25
  stage mbconv e6 k3 s2 c24 x2
  head conv k1 c64
  pool avg
  dropout 0.2
  linear
}
"""


@settings(max_examples=examples(60))
@given(GRAMMAR_TEXT, PHIS)
def test_grammar_generated_text(text, phi):
    text = text if "\n" in text else text + "\n"
    check_compiles(text, text, phi=phi)


@st.composite
def network_with_generated_statements(draw) -> str:
    """TINY with 1 to 3 grammar-generated statements, each replacing the line of its kind
    (or added next to it, for a stage or a preset), so that the rest stays valid."""
    lines = TINY.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        statement = draw(STATEMENTS).replace("\r", "").replace("\n", " ; ").strip(" \t\f;")
        keyword = statement.split(None, 1)[0] if statement else ""
        same = [i for i, line in enumerate(lines) if line.split(None, 1)[:1] == [keyword]]
        if not same:
            same = list(range(1, len(lines) - 2))  # anywhere inside the braces
        i = draw(st.sampled_from(same))
        if keyword in ("stage", "preset") and draw(st.booleans()):
            lines.insert(i, "  " + statement)
        else:
            lines[i] = "  " + statement
    return "\n".join(lines)


@settings(max_examples=examples(60))
@given(network_with_generated_statements(), PHIS | st.sampled_from(({"preset": "b1"},)))
def test_grammar_generated_statements_in_a_network(text, member):
    options = member if isinstance(member, dict) else {"phi": member}
    check_compiles(text, text, **options)


# ---------------------------------------------------------------------------- 3. mutations

_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BAD_NUMBERS = ("0", "-1", "1e308", "1e309", "nan", "inf", "-0", "99999999999999999999999", "0.0001", "3.5",
                "1e9", "1e12", "999999", "1e-320", "-1e308", "0.5", "17", "1001", "2")
_ODD_WORDS = ("ñ", "→", "\u200b", "😀", "é", "\ufeff", "\t", "x", "k", "network", "preset", "stage", "{}", "#",
              "\u00a0", "\r", "Ⅻ", "٣")
_INSERTS = ("{", "}", ";", "\n", "#", "x", "\t", "\r\n")


def _tokens(text: str) -> list[str]:
    """Words and the whitespace between them (joined back, the exact text)."""
    return re.split(r"(\s+)", text)


def _edit_lines(draw, text: str, kind: str) -> str:
    """``text`` with one line deleted or duplicated, or two lines swapped."""
    lines = text.split("\n")
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "delete_line":
        del lines[i]
    elif kind == "duplicate_line":
        lines.insert(i, lines[i])
    else:
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


@st.composite
def mutate(draw, text: str) -> str:
    """``text`` after 1 to 4 random edits of its tokens, numbers, words and lines."""
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("delete", "duplicate", "swap", "number", "word", "insert",
                                     "delete_line", "duplicate_line", "swap_lines")))
        if kind.endswith(("_line", "_lines")):
            text = _edit_lines(draw, text, kind)
            continue
        pieces = _tokens(text)
        words = [i for i, p in enumerate(pieces) if p and not p.isspace()]
        if not words:
            text += draw(st.sampled_from(_INSERTS))
            continue
        i = draw(st.sampled_from(words))
        token = pieces[i]
        if kind == "delete":
            pieces[i] = ""
        elif kind == "duplicate":
            pieces[i] = f"{token} {token}"
        elif kind == "swap":
            j = draw(st.sampled_from(words))
            pieces[i], pieces[j] = pieces[j], pieces[i]
        elif kind == "number":
            numbers = [i for i in words if _NUMBER_RE.search(pieces[i])]
            if numbers:
                i = draw(st.sampled_from(numbers))
                found = list(_NUMBER_RE.finditer(pieces[i]))
                m = draw(st.sampled_from(found))
                new = draw(st.sampled_from(_BAD_NUMBERS))
                pieces[i] = pieces[i][:m.start()] + new + pieces[i][m.end():]
        elif kind == "word":
            named = [i for i in words if _WORD_RE.search(pieces[i])]
            if named:
                i = draw(st.sampled_from(named))
                found = list(_WORD_RE.finditer(pieces[i]))
                m = draw(st.sampled_from(found))
                new = draw(st.sampled_from(_ODD_WORDS + _WORDS) | st.text(min_size=1, max_size=3))
                pieces[i] = pieces[i][:m.start()] + new + pieces[i][m.end():]
        else:  # insert
            where = draw(st.integers(0, len(token)))
            pieces[i] = token[:where] + draw(st.sampled_from(_INSERTS)) + token[where:]
        text = "".join(pieces)
    return text


@st.composite
def mutated_builtin(draw):
    name = draw(st.sampled_from(sorted(SPEC_TEXT)))
    return name, draw(mutate(SPEC_TEXT[name]))


@st.composite
def member(draw, text: str) -> dict:
    """A way to pick the member of the family: nothing, a phi, a preset of the spec, a random name."""
    presets = re.findall(r"preset\s+(\w+)", text)
    return draw(st.sampled_from(({},)) | st.builds(lambda p: {"phi": p}, st.floats(-2, 6))
                | st.builds(lambda p: {"preset": p}, st.sampled_from(presets or ["b0"]) | st.text(max_size=4)))


def _compile_mutant(text: str, options: dict) -> None:
    note(f"options: {options}")
    if "\n" not in text and "{" not in text:
        text += "\n"
    check_compiles(text, text, **options)


@settings(max_examples=examples(150))
@given(mutated_builtin(), st.data())
# Found by this test before the limits (E215): an OverflowError, and 1e308 blocks to expand.
@example(("efficientnet_b0", SPEC_TEXT["efficientnet_b0"].replace("c80  x3", "c1e308  x3")), None)
@example(("tf_efficientnet_b0", SPEC_TEXT["tf_efficientnet_b0"].replace("c112 x3", "c112 x1e308")), None)
def test_mutated_builtin_specs(named, data):
    _, text = named
    options = data.draw(member(text)) if data is not None else {}
    _compile_mutant(text, options)


@st.composite
def mutated_network(draw):
    return draw(mutate(format_spec(draw(networks(max_stages=4)))))


@settings(max_examples=examples(40))
@given(mutated_network(), st.data())
def test_mutated_random_networks(text, data):
    _compile_mutant(text, data.draw(member(text)))


@st.composite
def mutated_user_block_network(draw):
    return draw(mutate(format_spec(draw(user_block_networks()))))


@settings(max_examples=examples(40))
@given(mutated_user_block_network(), st.data())
def test_mutated_networks_with_block_definitions(text, data):
    _compile_mutant(text, data.draw(member(text)))


@pytest.mark.parametrize("data, code", [
    (b"", "E003"), (b"\xef\xbb\xbf", "E003"), (b" \r\n\t# only a comment\r\n", "E003"),
    (b"\x00\x01\x02", "E004"), (b"network caf\xe9 {\n}\n", "E004"), (b"\xef\xbb\xbfnetwork a {\r\n\xff", "E004"),
])
def test_empty_binary_and_not_utf8_files(tmp_path, data, code):
    path = tmp_path / "input.eff"
    path.write_bytes(data)
    with pytest.raises(EffdslError) as info:
        effdsl.compile_spec(path)
    check_error(info.value)
    assert [d.code for d in info.value.diagnostics] == [code]


@pytest.mark.parametrize("name", sorted(SPEC_TEXT))
def test_builtin_specs_with_bom_crlf_and_tabs_simply_work(name, tmp_path):
    text = SPEC_TEXT[name]
    # A search space is not one network: it is checked (its covering members compiled).
    compile_or_check = effdsl.api.check_spec if effdsl.parse_spec(text).is_space else effdsl.compile_spec
    expected = compile_or_check(text).summary
    variants = {
        "bom": "\ufeff" + text,
        "crlf": text.replace("\n", "\r\n"),
        "cr": text.replace("\n", "\r"),
        "tabs": text.replace("  ", "\t").replace(" ", "\t"),
        "all": "\ufeff" + text.replace("  ", "\t").replace("\n", "\r\n"),
    }
    for what, variant in variants.items():
        assert compile_or_check(variant).summary == expected, what
        path = tmp_path / f"{what}.eff"
        path.write_bytes(variant.encode("utf-8"))
        assert compile_or_check(path).summary == expected, what


# ---------------------------------------------------------------------------- 4. the CLI

runner = CliRunner()


_COMMANDS = st.sampled_from((["check"], ["compile"], ["compile", "--emit", "json"], ["compile", "--emit", "ir"])) | \
    st.builds(lambda phi: ["compile", "--phi", repr(phi)], st.floats(-3, 8)) | \
    st.builds(lambda p: ["compile", "--preset", p], st.sampled_from(("b0", "b3", "b7", "zz")))


@settings(max_examples=examples(25))
@given(mutated_builtin(), _COMMANDS)
def test_cli_never_prints_a_traceback(named, command):
    _, text = named
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutant.eff"
        path.write_text(text, encoding="utf-8")
        args = command[:1] + [str(path)] + command[1:]
        note(" ".join(args))
        result = runner.invoke(app, args)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    note(output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), output
    assert "Traceback" not in output


# The CLI's flags, with values a careless or hostile user types: out of range, of the
# wrong kind, beyond any float, not numbers at all. Whatever they are, the command ends
# with 0 or 2 and its own message, the spec is unchanged, and no file is left half written.
_ODD_VALUES = ("0", "-0", "-1", "1", "2.5", "3", "1e11", "1e308", "1e309", "-1e309", "nan", "-nan", "inf", "-inf",
               "99999999999999999999999", "0x10", "", " ", "1_000", "\u0663", "1e99999999", "0.999999", "1/3",
               "b7", "zz", "16385", "1000001", "--phi")
_values = st.sampled_from(_ODD_VALUES) | st.integers(-10**25, 10**25).map(str) | st.floats().map(repr) | \
    st.text(alphabet="0123456789.:-+e/ na", max_size=10)
_MEMBER_FLAGS = ("--phi", "--preset", "--width", "--depth", "--resolution", "--num-classes", "--in-chans",
                 "--drop-rate", "--drop-path-rate")


@st.composite
def cli_invocations(draw) -> list[str]:
    """A command on the spec ``{spec}`` with 1 to 3 drawn flags, writing to ``{out}`` or stdout."""
    command = draw(st.sampled_from(("compile", "compile-weights", "sweep", "diff", "viz")))
    flags = draw(st.lists(st.tuples(st.sampled_from(_MEMBER_FLAGS), _values), min_size=1, max_size=3))
    if command == "sweep":
        return ["sweep", "{spec}", "--phi", draw(_values), "-o", "{out}.csv"]
    args = [a for flag, value in flags for a in (flag, value)]
    if command == "diff":
        return ["diff", "{spec}", *[a for flag, value in flags if flag in ("--phi", "--preset") for a in (flag, value)]]
    if command == "viz":
        return ["viz", "{spec}", *args, "--level", "stage", "-o", "{out}.svg"]
    if command == "compile-weights":  # a module is built: a small budget keeps the drawn sizes cheap
        return ["compile", "{spec}", *args, "--emit", "weights", "--max-params", draw(st.sampled_from(
            ("100000", "0", "-1", "2.5", "1e5", "nan"))), "-o", "{out}.safetensors"]
    return ["compile", "{spec}", *args, "--emit", draw(st.sampled_from(("summary", "json", "ir"))),
            *draw(st.sampled_from(([], ["-o", "{out}.txt"])))]


@settings(max_examples=examples(40))
@given(cli_invocations())
@example(["compile", "{spec}", "--num-classes", "99999999999999999999999"])
@example(["compile", "{spec}", "--in-chans", "1e11", "--emit", "weights", "--max-params", "1e12", "-o", "{out}.st"])
@example(["compile", "{spec}", "--width", "nan"])
@example(["sweep", "{spec}", "--phi", "1e99999999", "-o", "{out}.csv"])
@example(["compile", "{spec}", "--emit", "json", "-o", "{spec}"])
def test_cli_flags(args):
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "tiny.eff"
        spec.write_text(TINY, encoding="utf-8")
        (Path(folder) / "out.txt").write_text("old output")
        argv = [a.format(spec=spec, out=Path(folder) / "out") for a in args]
        note(" ".join(argv))
        result = runner.invoke(app, argv)
        output = result.output + (result.stderr if result.stderr_bytes is not None else "")
        note(output)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert result.exit_code in (0, 2) and "Traceback" not in output, output
        if result.exit_code == 2:
            assert "error" in output.lower()
        assert spec.read_text(encoding="utf-8") == TINY
        left = sorted(p.name for p in Path(folder).iterdir())
        assert not [name for name in left if name.endswith(".tmp")], left
        if result.exit_code != 0 or "out.txt" not in " ".join(argv):
            assert (Path(folder) / "out.txt").read_text() == "old output"


# Checkpoints: a tiny network's own state_dict, mutated the ways a broken or hostile file
# can be (keys of other types, tensors of other dtypes, shapes, layouts and devices, NaN,
# objects that are not tensors, wrappers), and files whose bytes are cut or changed.
# Loading ends in success or an EffdslError, never another exception.

@pytest.fixture(scope="module")
def tiny_compiled():
    return effdsl.compile_spec(TINY)


@functools.lru_cache(maxsize=1)
def _tiny_state() -> dict:
    return dict(effdsl.compile_spec(TINY).build().state_dict())


@st.composite
def mutated_state(draw) -> object:
    import torch

    state = dict(_tiny_state())
    names = sorted(state)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(names))
        kind = draw(st.sampled_from(("dtype", "shape", "nan", "key", "drop", "add", "value", "sparse", "meta",
                                     "scalar")))
        tensor = state.get(name)
        if not isinstance(tensor, torch.Tensor):  # replaced by an earlier mutation
            tensor = torch.zeros(1)
        with contextlib.suppress(RuntimeError, NotImplementedError):  # a tensor torch cannot make: nothing to load
            _mutate(draw, state, name, tensor, kind)
    return draw(st.sampled_from((state, {"state_dict": state}, {"model": state}, [state], state)))


def _mutate(draw, state: dict, name: str, tensor, kind: str) -> None:
    """One mutation of ``state`` (at ``name``, whose tensor is ``tensor``)."""
    import torch

    if kind == "dtype":
        dtype = draw(st.sampled_from((torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int64,
                                      torch.bool, torch.complex64, torch.uint8)))
        state[name] = tensor.to(dtype)
    elif kind == "shape":
        state[name] = torch.zeros(draw(st.lists(st.integers(0, 5), max_size=4)))
    elif kind == "nan":
        state[name] = torch.full(tuple(tensor.shape), draw(st.sampled_from((math.nan, math.inf, -math.inf))))
    elif kind == "key":
        state[draw(st.integers() | st.tuples(st.integers()) | st.text(max_size=30) | st.none())] = \
            state.pop(name, tensor)
    elif kind == "drop":
        state.pop(name, None)
    elif kind == "add":
        state[draw(st.text(max_size=30))] = torch.zeros(draw(st.lists(st.integers(0, 3), max_size=3)))
    elif kind == "value":
        state[name] = draw(st.integers() | st.text(max_size=5) | st.none() | st.just([1, 2]))
    elif kind == "sparse" and tensor.dim() >= 1 and tensor.layout == torch.strided and not tensor.is_meta:
        state[name] = tensor.to_sparse()
    elif kind == "meta":
        state[name] = torch.empty(tensor.shape, device="meta")
    elif kind == "scalar":
        state[name] = torch.tensor(draw(st.floats()))


@settings(max_examples=examples(40))
@given(st.data())
def test_checkpoints_with_mutated_tensors(tiny_compiled, data):
    import torch

    module = tiny_compiled.build()
    state = data.draw(mutated_state())
    strict = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ckpt.pt"
        torch.save(state, path)
        try:
            tiny_compiled.load_weights(module, path, strict=strict)
        except EffdslError as err:
            check_error(err)
            assert err.diagnostics[0].code in ("E501", "E502", "E503", "E504"), err.render()


@settings(max_examples=examples(30))
@given(st.data())
@example(None)
def test_checkpoint_files_with_mutated_bytes(tiny_compiled, data):
    import io

    import torch
    from safetensors.torch import save

    module = tiny_compiled.build()
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    formats = {".pt": buffer.getvalue(), ".safetensors": save(dict(module.state_dict()))}
    suffix = data.draw(st.sampled_from(sorted(formats))) if data is not None else ".pt"
    raw = bytearray(formats[suffix])
    if data is not None:
        for _ in range(data.draw(st.integers(1, 4))):
            what = data.draw(st.sampled_from(("cut", "flip", "insert")))
            at = data.draw(st.integers(0, len(raw) - 1))
            if what == "cut":
                del raw[at:]
                if not raw:
                    break
            elif what == "flip":
                raw[at] ^= data.draw(st.integers(1, 255))
            else:
                raw[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    else:
        del raw[len(raw) // 2:]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"ckpt{suffix}"
        path.write_bytes(bytes(raw))
        try:
            tiny_compiled.load_weights(module, path)
        except EffdslError as err:
            check_error(err)
            assert err.diagnostics[0].code in ("E501", "E502", "E503", "E504"), err.render()


def test_cli_subprocess_on_a_broken_spec(tmp_path):
    """A preset 'width 1e308' used to end 'effdsl check' with an OverflowError traceback."""
    path = tmp_path / "broken.eff"
    path.write_text(SPEC_TEXT["efficientnet_b0"].replace("preset b2 { width 1.1", "preset b2 { width 1e308"),
                    encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "effdsl", "check", str(path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "error[E302]: preset 'b2' scales the network to" in proc.stderr


# ---------------------------------------------------------------------------- 5. pathological sizes

def _b0(old: str, new: str) -> str:
    text = SPEC_TEXT["efficientnet_b0"]
    assert old in text
    return text.replace(old, new, 1)


_FIRST_STAGE = "  stage mbconv e1 k3 s1 c16  x1\n"
PATHOLOGICAL = {  # text, options, the codes it must give
    "nested braces": ("network a " + "{" * 10_000 + "\n", {}, {"E001"}),
    "1 MB word": ("x" * 1_000_000 + "\n", {}, {"E005"}),
    "1 MB line of words": (_b0("linear", "linear " + "a " * 500_000), {}, {"E005"}),
    "1 MB comment": (_b0("linear", "linear  #" + "c" * 1_000_000), {}, {"E005"}),
    "100 000 stages": (_b0(_FIRST_STAGE, "  stage mbconv e6 k3 s1 c16 x1\n" * 100_000), {}, {"E005"}),
    "98 kB line of words": (_b0("linear", "linear " + "a " * 48_000), {}, {"E103", "E006"}),
    "3 000 stages": (_b0(_FIRST_STAGE, "  stage mbconv e6 k3 s1 c16 x1\n" * 3_000), {}, {"E215"}),
    "100 stages of x1000": (_b0(_FIRST_STAGE, "  stage mbconv e6 k3 s1 c16 x1000\n" * 94), {}, {"E215"}),
    "x1e9 repeats": (_b0("c16  x1", "c16  x1e9"), {}, {"E215"}),
    "c1e12 channels": (_b0("c1280", "c1000000000000"), {}, {"E215"}),
    "resolution 1e9": (_b0("3 x 224", "3 x 1000000000"), {}, {"E215"}),
    "k999999": (_b0("k3 s2 c32", "k999999 s2 c32"), {}, {"E215"}),
    "classes 1e12": (_b0("classes 1000", "classes 1000000000000"), {}, {"E215"}),
    "preset depth 1e9": (_b0("width 1.0; depth 1.0;", "width 1.0; depth 1e9;"), {"preset": "b0"}, {"E302"}),
    "phi 20 with alpha 10": (_b0("alpha 1.2", "alpha 10"), {"phi": 20}, {"E302"}),
}


@pytest.mark.parametrize("case", sorted(PATHOLOGICAL))
def test_pathological_sizes(case):
    """Each case is refused with its own codes; benchmarks/bench_pathological.py times them."""
    text, options, codes = PATHOLOGICAL[case]
    with pytest.raises(EffdslError) as info:
        effdsl.compile_spec(text, **options)
    rendered = info.value.render()
    check_error(info.value, text)
    assert {d.code for d in info.value.diagnostics} == codes, rendered[:2000]
    assert len(info.value.diagnostics) <= 51  # at most 50 errors and one E006 that counts the rest
    assert len(rendered) < 10_000_000


# ---------------------------------------------------------------------------- 6. found by fuzzing

def _tiny(old: str, new: str) -> str:
    assert old in TINY
    return TINY.replace(old, new, 1)


# Each of these ended in an OverflowError (or a hang) before it became a precise error.
FOUND = {
    "x1e308 expanded 1e308 blocks": (_tiny("c24 x2", "c24 x1e308"), {}, {"E215"}),
    "c1e308": (_tiny("c24 x2", "c1e308 x2"), {}, {"E215"}),
    "e1e308": (_tiny("e6 k3", "e1e308 k3"), {}, {"E215"}),
    "preset width 1e308": (_tiny("width 1.1", "width 1e308"), {"preset": "b1"}, {"E302"}),
    "preset depth 1e308": (_tiny("depth 1.2", "depth 1e308"), {"preset": "b1"}, {"E302"}),
    "preset depth 1e9": (_tiny("depth 1.2", "depth 1e9"), {"preset": "b1"}, {"E302"}),
    "fixed depth 1e309": (_tiny("gamma 1.15", "gamma 1.15; fixed depth 1e309"), {}, {"E103", "E200"}),
    "alpha 1e300 at phi 6": (_tiny("alpha 1.2", "alpha 1e300"), {"phi": 6}, {"E302"}),
    "beta 1e200 at phi 1": (_tiny("beta 1.1", "beta 1e200"), {"phi": 1}, {"E302"}),
    "head_width last 1e308": (_tiny("gamma 1.15", "gamma 1.15; head_width last 1e308"), {}, {"E215"}),
    "width=inf": (TINY, {"width": math.inf}, {"E402"}),
    "resolution=inf": (TINY, {"resolution": math.inf}, {"E402"}),
    "depth=1e308": (TINY, {"depth": 1e308}, {"E302"}),
    "resolution=1e9": (TINY, {"resolution": 10**9}, {"E302"}),
    # Not a crash: Python's \d took Arabic-Indic and fullwidth digits for numbers.
    "input \u0663 x 64": (_tiny("input 3 x 64", "input \u0663 x 64"), {}, {"E002"}),
}


@pytest.mark.parametrize("case", sorted(FOUND))
def test_found_by_fuzzing(case):
    text, options, codes = FOUND[case]
    with pytest.raises(EffdslError) as info:
        effdsl.compile_spec(text, **options)
    check_error(info.value, text)
    assert {d.code for d in info.value.diagnostics} == codes, info.value.render()
