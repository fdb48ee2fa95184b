"""cpwatch's query language, shared by search (api/) and subscriptions (notify/).

Words AND/OR/NOT and their signs + | -/!, "phrases", word* prefixes and ( ) groups are parsed
here (``parse_query``) and rendered as an explicit ``simple_query_string`` with a fixed set of
cheap operators (``QUERY_FLAGS``); fuzzy and proximity ``~``, leading wildcards, short or many
prefixes and regex-looking terms are refused before they reach Elasticsearch. It lives in the
contract package because data flows producers -> streams -> notify -> api: notify may not
import api, and a subscription's query must be validated exactly like a search query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cpwatch.exceptions import CpwatchError

MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 32
MAX_PREFIX_TERMS = 3
MIN_PREFIX_CHARS = 3  # "a*" would expand to a large slice of the term dictionary
# No FUZZY, NEAR/SLOP or regex: the operators whose cost grows with the term dictionary.
QUERY_FLAGS = "AND|OR|NOT|PHRASE|PREFIX|WHITESPACE|PRECEDENCE|ESCAPE"


class QueryError(CpwatchError):
    """A search parameter the user got wrong; ``param`` names it (400 / exit 2)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.reason = message


CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_REGEX_LIKE = re.compile(r"(?:^|[\s(+|\-\"])/[^/]+/")
# Characters simple_query_string reads as syntax: escaped in every word we hand it.
_SQS_SPECIAL = frozenset('+|-"*()~\\')
_OPERATOR_WORDS = {"AND": "AND", "OR": "OR", "NOT": "NOT", "&&": "AND", "||": "OR"}


# ---- the query language ---------------------------------------------------------------------
# Words AND, OR, NOT (upper case, as in Kibana and Google) and their signs +, |, -/! ; "phrases",
# word* prefixes, ( ) groups. As in Google, OR binds tighter than AND (written or implied between
# two words), NOT tightest: `bitcoin reserve Texas OR Arizona` is bitcoin AND reserve AND (Texas
# OR Arizona). We parse it ourselves and hand Elasticsearch a fully parenthesised
# simple_query_string, so the engine never guesses.


@dataclass(frozen=True)
class Term:
    text: str  # as typed, escapes resolved
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    text: str


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Term | Phrase | Not | And | Or


@dataclass(frozen=True)
class _Tok:
    kind: str  # WORD PHRASE LPAREN RPAREN AND OR NOT
    text: str = ""
    prefix: bool = False


def _tokens(q: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
        elif c == "(":
            out.append(_Tok("LPAREN"))
            i += 1
        elif c == ")":
            out.append(_Tok("RPAREN"))
            i += 1
        elif c == '"':
            end = q.find('"', i + 1)
            if end < 0:
                raise QueryError("q", 'a quote (") is not closed')
            if q[end + 1 : end + 2] == "~":
                raise QueryError("q", "proximity search (~) is not supported")
            out.append(_Tok("PHRASE", q[i + 1 : end]))
            i = end + 1
        elif c in "+-!" and (i + 1 == n or q[i + 1].isspace()):
            i += 1  # a lone sign ("El Salvador - IMF deal") is punctuation, not an operator
        elif c in "+|-!" and (c != "|" or q[i : i + 2] != "||"):
            out.append(_Tok({"+": "AND", "|": "OR", "-": "NOT", "!": "NOT"}[c]))
            i += 1
        else:
            word: list[str] = []
            escaped_end = escaped = False  # `\*` at the end is no prefix; `\OR` no operator
            while i < n and not q[i].isspace() and q[i] not in '()"':
                if q[i] == "\\" and i + 1 < n:
                    word.append(q[i + 1])
                    escaped = True
                    escaped_end = i + 2 == n or q[i + 2].isspace() or q[i + 2] in '()"'
                    i += 2
                    continue
                escaped_end = False
                word.append(q[i])
                i += 1
            text = "".join(word)
            if text in _OPERATOR_WORDS and not escaped:
                out.append(_Tok(_OPERATOR_WORDS[text]))
                continue
            out.append(_word_token(text, escaped_end))
    return out


def _word_token(text: str, escaped_end: bool) -> _Tok:
    if "~" in text:
        raise QueryError("q", f"fuzzy search ({text!r}: ~) is not supported; type the word")
    if text.startswith(("*", "?")):
        raise QueryError("q", f"leading wildcard in {text!r} is not supported")
    prefix = text.endswith("*") and not escaped_end
    if prefix:
        text = text.rstrip("*")
        if len(text) < MIN_PREFIX_CHARS:
            raise QueryError(
                "q", f"prefix {text + '*'!r} needs at least {MIN_PREFIX_CHARS} characters"
            )
    return _Tok("WORD", text, prefix)


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks, self.i = toks, 0

    def peek(self) -> str | None:
        return self.toks[self.i].kind if self.i < len(self.toks) else None

    def parse(self) -> Node | None:
        if not self.toks:
            return None
        node = self.and_expr()
        if self.peek() == "RPAREN":
            raise QueryError("q", "a closing parenthesis ) has no opening one")
        return node

    def and_expr(self) -> Node:
        parts = [self.or_expr()]
        while self.peek() not in (None, "RPAREN"):
            parts.append(self.or_expr())  # AND / + are read by unary(): the implied operator
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def or_expr(self) -> Node:
        parts = [self.unary()]
        while self.peek() == "OR":
            self.i += 1
            parts.append(self.unary("OR"))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def unary(self, after: str = "AND") -> Node:
        negate = False
        while self.peek() in ("NOT", "AND"):  # `+word` is a plain required word
            negate ^= self.peek() == "NOT"
            after = self.toks[self.i].kind
            self.i += 1
        tok = self.toks[self.i] if self.i < len(self.toks) else None
        if tok is None or tok.kind in ("OR", "RPAREN"):
            raise QueryError("q", f"{after} needs a word, phrase or group after it")
        self.i += 1
        node: Node
        if tok.kind == "LPAREN":
            if self.peek() == "RPAREN":
                raise QueryError("q", "empty parentheses ()")
            node = self.and_expr()
            if self.peek() != "RPAREN":
                raise QueryError("q", "an opening parenthesis ( is not closed")
            self.i += 1
        elif tok.kind == "PHRASE":
            node = Phrase(tok.text)
        else:
            node = Term(tok.text, tok.prefix)
        return Not(node) if negate else node


def parse_query(q: str) -> Node | None:
    """The user's query as a tree; None when it is empty. Bad syntax is a ``QueryError`` on q."""
    toks = _tokens(q)
    if toks and toks[0].kind == "OR":
        raise QueryError("q", "OR needs a word, phrase or group before it")
    return _Parser(toks).parse()


def _escape(text: str) -> str:
    return "".join("\\" + c if c in _SQS_SPECIAL else c for c in text)


def to_simple_query_string(node: Node, top: bool = True) -> str:
    """Render the tree for simple_query_string (default operator AND), groups made explicit."""
    if isinstance(node, Term):
        return _escape(node.text) + ("*" if node.prefix else "")
    if isinstance(node, Phrase):
        return '"' + node.text.replace("\\", "\\\\") + '"'
    if isinstance(node, Not):
        return "-" + to_simple_query_string(node.child, top=False)
    inner = (" " if isinstance(node, And) else " | ").join(
        to_simple_query_string(c, top=False) for c in node.children
    )
    return inner if top else f"({inner})"


def leaves(node: Node) -> list[Term | Phrase]:
    if isinstance(node, Term | Phrase):
        return [node]
    if isinstance(node, Not):
        return leaves(node.child)
    return [leaf for c in node.children for leaf in leaves(c)]


# Counting splits on the operators too, not on whitespace alone: `abc*|abd*|...` is many
# prefixes, not one word (the tokenizer keeps it as one escaped word, harmless to Elasticsearch,
# but it must not slip past the bounds either).
_PIECES = re.compile(r'[\s|+\-!()"&]+')
_PHRASES = re.compile(r'"[^"]*"')


def _pieces(q: str) -> list[str]:
    return [p for p in _PIECES.split(q) if p and p not in _OPERATOR_WORDS]


def check_query(q: str) -> tuple[str, str]:
    """(the query as typed, trimmed; its simple_query_string rendering). Raises QueryError."""
    q = q.strip()
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError("q", f"longer than {MAX_QUERY_CHARS} characters")
    if CONTROL_CHARS.search(q):
        raise QueryError("q", "contains control characters")
    if _REGEX_LIKE.search(q):
        raise QueryError("q", "regular expressions (/.../) are not supported")
    if len(_pieces(q)) > MAX_QUERY_TERMS:
        raise QueryError("q", f"more than {MAX_QUERY_TERMS} terms")
    tree = parse_query(q)
    if tree is None:
        return q, ""
    prefixes = max(
        sum(1 for leaf in leaves(tree) if isinstance(leaf, Term) and leaf.prefix),
        sum(1 for p in _pieces(_PHRASES.sub(" ", q)) if p.endswith("*") and p[-2:] != "\\*"),
    )
    if prefixes > MAX_PREFIX_TERMS:
        raise QueryError("q", f"more than {MAX_PREFIX_TERMS} prefix (word*) terms")
    return q, to_simple_query_string(tree)
