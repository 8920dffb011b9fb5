"""Stage 1: source text -> raw statements (the only module that imports Lark).

The grammar (``grammars/effdsl.lark``) fixes the shape of statements only; this module
turns Lark's tree into small positioned records (:class:`RawNetwork`) and Lark's
exceptions into effdsl diagnostics. Meaning is given to the words by ``analyze``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import lark
from lark import Lark, Token, Tree

from effdsl.diagnostics import Diagnostic, EffdslError, InternalError, Span
from effdsl.language.resources import grammar_text


@dataclass(frozen=True, slots=True)
class Tok:
    """A word or a number as the user wrote it, with its span.

    A choice of a search space (``{3,5}``, ``*{0.75,1,1.25}``) is a Tok too: its
    ``options`` are the words and numbers between the braces, its ``text`` the choice
    as written without spaces, and it is never a number.
    """

    text: str
    is_number: bool
    span: Span
    options: tuple[Tok, ...] | None = None

    @property
    def is_choice(self) -> bool:
        return self.options is not None

    @property
    def choices(self) -> tuple[Tok, ...]:
        """The options of a choice; a word or a number has none."""
        return self.options or ()


@dataclass(frozen=True, slots=True)
class RawSetting:
    """``name item item ...`` inside a ``{ }`` block."""

    name: Tok
    items: tuple[Tok, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class RawStatement:
    """One statement of the network body.

    ``keyword`` is the leading word (``stage``, ``preset``, ``input`` ...); ``name`` the
    word after it for ``stem/stage/head`` (the block type) and ``preset`` (its name);
    ``items`` the rest of the line; ``settings`` the body of a ``{ }`` block.
    """

    keyword: Tok
    name: Tok | None
    items: tuple[Tok, ...]
    settings: tuple[RawSetting, ...] | None
    span: Span


@dataclass(frozen=True, slots=True)
class RawGroup:
    """``NAME:`` or ``NAME if A == B:`` opening a line of a block definition: the ops after it on
    that line are one named part of the block. ``cond`` is (left, ``==`` or ``!=``, right)."""

    name: Tok
    cond: tuple[Tok, Tok, Tok] | None
    span: Span


@dataclass(frozen=True, slots=True)
class RawOp:
    """One op of a block definition: its word and its options (``conv to mid``), and the group
    it belongs to (None: an op of its own)."""

    kind: Tok
    items: tuple[Tok, ...]
    span: Span
    group: RawGroup | None = None


@dataclass(frozen=True, slots=True)
class RawBlockDef:
    """``block NAME { ops }``: a block kind defined in the file."""

    name: Tok
    ops: tuple[RawOp, ...]
    span: Span
    end: Span  # the closing brace


@dataclass(frozen=True, slots=True)
class RawInclude:
    """``include "path"``: ``path`` without its quotes; ``span`` covers the quoted path."""

    path: str
    span: Span
    keyword: Span


@dataclass(frozen=True, slots=True)
class RawNetwork:
    name: Tok
    statements: tuple[RawStatement, ...]
    span: Span
    end: Span  # the closing brace
    includes: tuple[RawInclude, ...] = ()
    blocks: tuple[RawBlockDef, ...] = ()  # the block definitions before the network


@dataclass(frozen=True, slots=True)
class RawFile:
    """A whole file: its includes and block definitions, and its network (None in a file of blocks)."""

    includes: tuple[RawInclude, ...]
    blocks: tuple[RawBlockDef, ...]
    network: RawNetwork | None


# Terminal names as users would write them; never show '$END' or 'SEMICOLON'.
_TERMINAL_WORDS = {
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "SEMICOLON": "';'",
    "_NL": "end of line",
    "WORD": "a name",
    "NUMBER": "a number",
    "SETTINGS_KW": "'scaling', 'defaults', 'preprocess' or 'preset'",
    "BLOCK_KW": "'stem', 'stage' or 'head'",
    "LAYER_KW": "'pool', 'dropout' or 'linear'",
    "NETWORK": "'network'",
    "INCLUDE": "'include'",
    "BLOCK": "'block'",
    "STRING": "a quoted path",
    "INPUT": "'input'",
    "CLASSES": "'classes'",
    "X": "'x'",
    "COMMA": "','",
    "STAR": "'*'",
    "COLON": "':'",
    "IF": "'if'",
    "CMP": "'==' or '!='",
    "$END": "end of file",
}


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
    )


def normalize(text: str) -> str:
    """Drop a UTF-8 byte-order mark and turn CRLF / CR line ends into LF."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


# A spec of 100 stages with comments is a few kilobytes; the parser needs about a second
# per 40,000 words, so a stray multi-megabyte file is refused before it is parsed.
MAX_SOURCE_CHARS = 100_000


def parse(text: str) -> RawNetwork:
    """Parse normalized ``.eff`` text; raise :class:`EffdslError` at the first syntax error.

    The network comes with the file's includes and block definitions; a file without a
    network is an error here (E003; :func:`parse_file` reads a file of blocks).
    """
    raw = parse_file(text)
    if raw.network is None:
        raise EffdslError(Diagnostic(
            "E003", "the file defines blocks but no network; expected 'network NAME { ... }'",
            _end_of_text(text), "a file of block definitions is included by a spec: include \"blocks.eff\""))
    return raw.network


def parse_file(text: str) -> RawFile:
    """Parse a whole file: includes, block definitions and (if any) its network."""
    if len(text) > MAX_SOURCE_CHARS:
        raise EffdslError(Diagnostic(
            "E005", f"the file has {len(text):,} characters; a spec has at most {MAX_SOURCE_CHARS:,}",
            None, "is this the right file?",
        ))
    if not any(_code_of(line).strip() for line in text.split("\n")):
        what = "is empty" if not text.strip() else "has only comments"
        raise EffdslError(
            Diagnostic(
                "E003",
                f"the file {what}; expected 'network NAME {{ ... }}'",
                Span(1, 1, 1, 2),
                help="start from a built-in spec: effdsl compile efficientnet_b0 --emit ir",
            )
        )
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        raise EffdslError(_syntax_diagnostic(exc, text)) from None
    includes: list[RawInclude] = []
    blocks: list[RawBlockDef] = []
    network: RawNetwork | None = None
    for child in tree.children:
        sub = _subtree(child)
        if sub.data == "include":
            token = _token(sub.children[0])
            includes.append(RawInclude(str(token)[1:-1], _span(token), _keyword_tok(sub, "include").span))
        elif sub.data == "block_def":
            blocks.append(_block_def(sub))
        else:
            network = _network(sub)
    if network is not None:
        network = replace(network, includes=tuple(includes), blocks=tuple(blocks))
    return RawFile(tuple(includes), tuple(blocks), network)


def _block_def(tree: Tree[Token]) -> RawBlockDef:
    name, *lines = tree.children
    ops = []
    group: RawGroup | None = None
    for line in lines:
        children = list(_subtree(line).children)
        if isinstance(children[0], Tree) and children[0].data == "group_label":
            label = _subtree(children.pop(0))
            words = [_tok(k) for k in label.children if not (isinstance(k, Token) and k.type == "IF")]
            cond = (words[1], words[2], words[3]) if len(words) == 4 else None
            group = RawGroup(words[0], cond, _span(label.meta))
        elif group is not None and group.span.line != _span(_subtree(line).meta).line:
            group = None  # a group is one line: its label and the ops after it on that line
        kind, *items = (_tok(k) for k in children)
        ops.append(RawOp(kind, tuple(items), _span(_subtree(line).meta), group))
    meta = tree.meta
    return RawBlockDef(_tok(name), tuple(ops), _span(meta),
                       Span(meta.end_line, meta.end_column - 1, meta.end_line, meta.end_column))


def _span(meta_or_tok: Token | lark.tree.Meta) -> Span:
    line, column = meta_or_tok.line, meta_or_tok.column
    end_line, end_column = meta_or_tok.end_line, meta_or_tok.end_column
    if line is None or column is None or end_line is None or end_column is None:
        # propagate_positions and the lexer position every token and tree; Lark's types allow None
        raise InternalError("parser", f"{meta_or_tok!r} has no position in the source", what="module")
    return Span(line, column, end_line, end_column)


def _subtree(child: Token | Tree[Token]) -> Tree[Token]:
    if not isinstance(child, Tree):
        raise InternalError("parser", f"expected a grammar rule, got the token {child!r}", what="module")
    return child


def _tok(child: Token | Tree[Token]) -> Tok:
    if isinstance(child, Tree):  # a choice: {3,5} or *{0.75,1,1.25}
        kids = [_token(k) for k in child.children]
        star = [k for k in kids if k.type == "STAR"]
        options = tuple(_tok(k) for k in kids if k.type != "STAR")
        text = "*" * len(star) + "{" + ",".join(o.text for o in options) + "}"
        return Tok(text, False, _span(child.meta), options)
    return Tok(str(child), child.type == "NUMBER", _span(child))


def _token(child: Token | Tree[Token]) -> Token:
    if not isinstance(child, Token):
        raise InternalError("parser", f"expected a token, got the rule '{child.data}'", what="module")
    return child


def _network(tree: Tree[Token]) -> RawNetwork:
    name, *stmts = tree.children
    return RawNetwork(
        name=_tok(name),
        statements=tuple(_statement(_subtree(s)) for s in stmts),
        span=_span(tree.meta),
        end=Span(tree.meta.end_line, tree.meta.end_column - 1, tree.meta.end_line, tree.meta.end_column),
    )


def _keyword_tok(tree: Tree[Token], word: str) -> Tok:
    meta = tree.meta
    return Tok(word, False, Span(meta.line, meta.column, meta.line, meta.column + len(word)))


def _statement(tree: Tree[Token]) -> RawStatement:
    kids = list(tree.children)
    span = _span(tree.meta)
    if tree.data in ("input", "classes"):
        return RawStatement(_keyword_tok(tree, str(tree.data)), None, tuple(_tok(k) for k in kids), None, span)
    keyword = _tok(kids.pop(0))
    if tree.data == "settings_stmt":
        name = _tok(kids.pop(0)) if kids and isinstance(kids[0], Token) else None
        settings = tuple(_setting(_subtree(k)) for k in kids)
        return RawStatement(keyword, name, (), settings, span)
    if tree.data == "block_stmt":
        name = _tok(kids.pop(0))  # the block type, or a choice of types
        return RawStatement(keyword, name, tuple(_tok(k) for k in kids), None, span)
    return RawStatement(keyword, None, tuple(_tok(k) for k in kids), None, span)


def _setting(tree: Tree[Token]) -> RawSetting:
    name, *items = (_tok(k) for k in tree.children)
    return RawSetting(name, tuple(items), _span(tree.meta))


_STATEMENT_STARTS = {"INPUT", "CLASSES", "SETTINGS_KW", "BLOCK_KW", "LAYER_KW"}


def _describe_expected(expected: set[str]) -> str:
    expected = {t for t in expected if not t.startswith("__")}
    if expected & {"WORD", "NUMBER"}:
        # Where a word or a number fits, so does a search-space choice; naming '{' and
        # '*' there would only distract from the word that is missing.
        expected -= {"LBRACE", "STAR"}
    described = set()
    if expected >= _STATEMENT_STARTS:  # anywhere a statement may start: say so, not 9 keywords
        expected -= _STATEMENT_STARTS
        described.add("a statement")
    words = sorted(described | {_TERMINAL_WORDS.get(t, f"'{t.lower()}'") for t in expected})
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _code_of(line: str) -> str:
    """``line`` without its comment (there are no strings, so '#' always starts one)."""
    return line.split("#", 1)[0]


def _end_of_text(text: str) -> Span:
    """Just after the last token of the file (trailing comments and blank lines skipped)."""
    lines = [_code_of(x) for x in text.split("\n")]
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    line = len(lines)
    col = len(lines[-1].rstrip()) + 1
    return Span(line, col, line, col + 1)


def _unclosed_brace(text: str) -> tuple[int, str] | None:
    """The line of the last '{' left open, and the words before it (``network tiny``)."""
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        code = _code_of(line)
        for i, char in enumerate(code):
            if char == "{":
                head = code[:i].replace(";", "\n").split("\n")[-1].split("}")[-1].strip()
                stack.append((number, head))
            elif char == "}" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _syntax_diagnostic(exc: lark.exceptions.UnexpectedInput, text: str) -> Diagnostic:
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        # Lark declares pos_in_stream None on the base class; UnexpectedCharacters sets an int
        position: int = exc.pos_in_stream  # type: ignore[assignment]
        char = text[position] if position < len(text) else ""
        shown = repr(char) if not char.isprintable() or char in " '" else f"'{char}'"
        return Diagnostic(
            "E002",
            f"unexpected character {shown}",
            Span(exc.line, exc.column, exc.line, exc.column + 1),
            help="names start with a letter; numbers look like 3, 0.25 or 1e-3; comments start with '#'",
        )
    if isinstance(exc, (lark.exceptions.UnexpectedToken, lark.exceptions.UnexpectedEOF)):
        expected = _describe_expected(set(getattr(exc, "expected", ()) or ()))
        token = getattr(exc, "token", None)
        if token is None or token.type == "$END":
            help = None
            if "RBRACE" in (exc.expected or ()):
                # Only a '}' can finish the file here; the statements that could also
                # come next are no help.
                expected = "'}'"
                opened = _unclosed_brace(text)
                if opened is None:
                    help = "every '{' needs a matching '}'"
                else:
                    line, before = opened
                    which = f"'{{' of '{before}'" if before else "'{'"
                    help = f"the {which} at line {line} is never closed"
            return Diagnostic(
                "E003",
                "unexpected end of file" + (f"; expected {expected}" if expected else ""),
                _end_of_text(text),
                help=help,
            )
        shown = "end of line" if token.type == "_NL" else f"'{token}'"
        return Diagnostic(
            "E001",
            f"unexpected {shown}" + (f"; expected {expected}" if expected else ""),
            _token_span(token, text),
        )
    return Diagnostic("E001", str(exc).splitlines()[0], None)  # pragma: no cover - Lark adds kinds rarely


def _token_span(token: Token, text: str) -> Span:
    span = _span(token)
    if token.type == "_NL":
        # Point just after the last good token, where the missing item belongs: the
        # newline token starts after any comment, so skip back over it and the blanks.
        line_text = text.split("\n")[span.line - 1][: span.column - 1]
        col = len(_code_of(line_text).rstrip()) + 1
        return Span(span.line, col, span.line, col + 1)
    return span
