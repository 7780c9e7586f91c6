"""A `CLIPTokenizer` built in memory (no download): byte-level BPE whose merges spell out the world's words."""

from __future__ import annotations

from transformers import CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

MAX_LENGTH = 16  # the longest caption is 13 tokens with its start and end markers


def build_tokenizer(words: list[str], max_length: int = MAX_LENGTH) -> CLIPTokenizer:
    """Every byte is a token, so any text encodes; each word of `words` becomes a single token."""
    symbols = list(bytes_to_unicode().values())
    vocab = {token: i for i, token in enumerate(["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols)])}
    merges = []
    for word in words:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            parts = [parts[0] + parts[1], *parts[2:]]
            vocab.setdefault(parts[0], len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)), model_max_length=max_length)
