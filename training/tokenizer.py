"""A `CLIPTokenizer` built in memory (no download): byte-level BPE whose merges spell out the world's words.

BPE applies the lowest-ranked applicable merge first, so merges must be ordered for every word to end as one
token: all "prefix + next character" merges rank before the character-pair merges that start words, and a word's
starting pair ranks before any other word's starting pair that occurs inside it (e.g. `b a` before `g r`, or
"background" would split at "gr").
"""

from __future__ import annotations

from graphlib import TopologicalSorter

from transformers import CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

MAX_LENGTH = 16  # the longest caption is 13 tokens with its start and end markers


def _symbols(word: str) -> list[str]:
    return [*word[:-1], word[-1] + "</w>"]


def _merges(words: list[str]) -> list[tuple[str, str]]:
    chains, firsts = [], {}
    for word in words:
        parts = _symbols(word)
        if len(parts) < 2:
            continue
        firsts[word] = (parts[0], parts[1])
        prefix = parts[0] + parts[1]
        for part in parts[2:]:
            chains.append((prefix, part))
            prefix += part
    order = TopologicalSorter()
    for word, first in firsts.items():
        parts = _symbols(word)
        inner = set(zip(parts[1:], parts[2:]))
        for other in firsts.values():
            if other != first and other in inner:
                order.add(other, first)  # `first` must rank before `other`
        order.add(first)
    return list(dict.fromkeys(chains)) + list(order.static_order())


def build_tokenizer(words: list[str], max_length: int = MAX_LENGTH) -> CLIPTokenizer:
    """Every byte is a token, so any text encodes; each word of `words` becomes a single token."""
    symbols = list(bytes_to_unicode().values())
    vocab = {token: i for i, token in enumerate(["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols)])}
    merges = _merges(words)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
    split = [w for w in words if len(tokenizer.tokenize(w)) != 1]
    if split:
        raise ValueError(f"The merges leave these words in pieces: {split}.")
    return tokenizer
