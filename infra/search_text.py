"""Query text shared by the search stores: the terms of a query, the one-typo variants of a term
(for the SQL stores' typo tolerance), and highlight fragments made safe for HTML."""

from __future__ import annotations

import html
import re
import string
import unicodedata

from projections.search import FACETS

# Letters and digits: the SQL stores' tokenizers (FTS5 unicode61, PostgreSQL's parser) split on
# everything else, underscores included.
_WORD = re.compile(r"[^\W_]+")
MAX_TERMS = 32
# A term this long or longer may match with one edit (Elasticsearch: fuzziness AUTO:3,100).
MIN_FUZZY_LENGTH = 3
_ALPHABET = string.ascii_lowercase + string.digits

# Highlight marks the stores put around matches before the fragment is escaped for HTML; from
# Unicode's private-use area, so no stored text contains them.
OPEN, CLOSE, BETWEEN = "\ue000", "\ue001", "\ue002"


def fold(text: str) -> str:
    """Lower case without diacritics, as FTS5's ``unicode61 remove_diacritics 2`` indexes text."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def query_terms(text: str, *, keep_diacritics: bool = False) -> list[str]:
    """The distinct words of a query, in lower case, in order (at most MAX_TERMS); without
    diacritics unless ``keep_diacritics`` (for indexes that keep them)."""
    terms: list[str] = []
    for word in _WORD.findall(text.lower() if keep_diacritics else fold(text)):
        if word not in terms:
            terms.append(word)
    return terms[:MAX_TERMS]


def typo_variants(term: str) -> set[str]:
    """``term`` and every string one edit away (Damerau: delete, transpose, replace, insert)."""
    if len(term) < MIN_FUZZY_LENGTH:
        return {term}
    letters = set(_ALPHABET) | set(term)
    splits = [(term[:i], term[i:]) for i in range(len(term) + 1)]
    variants = {term}
    variants.update(a + b[1:] for a, b in splits if b)
    variants.update(a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1)
    variants.update(a + c + b[1:] for a, b in splits if b for c in letters)
    variants.update(a + c + b for a, b in splits for c in letters)
    return {v for v in variants if v}


def fragment(marked: str) -> str:
    """A highlight fragment as HTML: the text escaped (as Elasticsearch's ``html`` encoder does),
    its marked matches in ``<mark>``."""
    escaped = html.escape(marked).replace("/", "&#x2F;")
    return escaped.replace(OPEN, "<mark>").replace(CLOSE, "</mark>")


def fragments(marked: str | None) -> list[str]:
    """The fragments of a field that has a match (BETWEEN separates several), else none."""
    if not marked or OPEN not in marked:
        return []
    return [fragment(part.strip()) for part in marked.split(BETWEEN) if OPEN in part]


def empty_facets() -> dict[str, dict[str, int]]:
    return {name: {} for name in FACETS}


def ordered_facets(facets: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Every facet, its values most frequent first (then by value)."""
    return {name: dict(sorted(facets.get(name, {}).items(), key=lambda kv: (-kv[1], kv[0]))) for name in FACETS}
