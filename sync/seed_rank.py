"""Ranking seed search results when the cache is too large for FTS5's own ``bm25``.

FTS5's ``bm25()`` computes each word's inverse document frequency by walking every
document that holds the word: over 100,000 seeds a common word or a two-letter prefix
costs 3 to 10 ms before a single row is ranked. Beyond ``LocalStore.RANK_UP_TO`` seeds the
store therefore takes the newest matches (FTS5 streams them in rowid order and stops) and
ranks those here with the same formula, FTS5's Okapi BM25 with column weights, leaving out
the inverse document frequency: every candidate holds every word of the query, so that
factor only shifts weight between the words, not between documents holding them all.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

K1 = 1.2  # FTS5's bm25 constants
B = 0.75
_WORD = re.compile(r"[^\W_]+")  # unicode61: letters and digits; "_" separates


def fold(value: str) -> str:
    """Text as FTS5's ``unicode61 remove_diacritics 2`` tokenizer compares it, near enough
    for ranking: lower-cased, accents dropped."""
    value = value.lower()
    if value.isascii():
        return value
    return "".join(c for c in unicodedata.normalize("NFKD", value)
                   if not unicodedata.combining(c))


def tokens(value: str) -> list[str]:
    """The words FTS5 indexes for ``value``."""
    return _WORD.findall(fold(value))


@dataclass(frozen=True)
class Candidate:
    key: int  # the seed's row number
    columns: tuple[str, ...]  # in the order of the weights
    version: int  # the server's version: newer breaks ties


# A candidate's columns as ranking reads them: per weight, its words and the words joined
# by spaces; and how many words it has in all.
Split = tuple[list[tuple[float, list[str], str]], int]


def rank(candidates: Sequence[Candidate], words: Sequence[str],
         weights: Sequence[float], known: dict[Any, Split] | None = None) -> list[int]:
    """The candidates' keys, best first: BM25 over the query ``words`` (the last one a
    prefix, as typed), each column's hits multiplied by its weight; ties go to the newer.

    ``known``: candidates split by earlier calls with the same ``weights``, keyed by row
    number and version; new splits are added to it (the caller bounds its size, and
    empties it when a row may have changed under the same version). Typing a query
    re-ranks mostly the same newest matches at every keystroke."""
    query = [t for w in words for t in tokens(w)]
    if not query:
        return [c.key for c in sorted(candidates, key=lambda c: (-c.version, -c.key))]
    # Each column is split into words once (in C); a whole word's hits are a list count,
    # the prefix's a substring count over the words joined by spaces (a space before it
    # marks a word's start). Columns of equal weight are counted together.
    *whole, last = query
    groups = [(weight, [i for i, _ in members]) for weight, members in
              groupby(enumerate(weights), key=lambda m: m[1])]
    cache: dict[Any, Split] = {} if known is None else known
    texts = []
    for candidate in candidates:
        ident = (candidate.key, candidate.version)
        found = cache.get(ident)
        if found is None:
            found = cache[ident] = _split(candidate, groups)
        texts.append(found)
    average = (sum(t[1] for t in texts) / len(texts)) if texts else 1.0
    start = " " + last
    scored = []
    for candidate, (columns, length) in zip(candidates, texts, strict=True):
        norm = K1 * (1 - B + B * length / (average or 1.0))
        score = 0.0
        for word in whole:
            hits = sum(weight * words_.count(word) for weight, words_, _ in columns)
            score += hits * (K1 + 1) / (hits + norm)
        hits = sum(weight * spaced.count(start) for weight, _, spaced in columns)
        score += hits * (K1 + 1) / (hits + norm)
        scored.append((-score, -candidate.version, -candidate.key, candidate.key))
    scored.sort()
    return [s[3] for s in scored]


def _split(candidate: Candidate, groups: list[tuple[float, list[int]]]) -> Split:
    split = [(weight, _WORD.findall(fold("\n".join(
                 candidate.columns[i] for i in members if i < len(candidate.columns)))))
             for weight, members in groups]
    return ([(weight, words_, " " + " ".join(words_)) for weight, words_ in split],
            sum(len(words_) for _, words_ in split))
