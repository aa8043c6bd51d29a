"""A tiny CryptoBERT look-alike, built locally: no weights are downloaded.

:func:`save_tiny_cryptobert` writes to a directory what the hub's ElKulako/cryptobert holds, at
toy size: a ``RobertaForSequenceClassification`` (labels ``0 Bearish, 1 Neutral, 2 Bullish``)
with hidden size 32 and 2 layers, and a byte-level BPE RoBERTa tokenizer with a small hand-made
vocabulary (the 256 byte symbols, the special tokens and a few merges). The scorer then loads it
through exactly the code path that loads CryptoBERT (``AutoTokenizer`` /
``AutoModelForSequenceClassification`` from a directory).

``max_position_embeddings`` is 130 (128 tokens + RoBERTa's 2 offset positions), so a text longer
than 128 tokens that was not truncated fails loudly instead of being scored.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")
MERGES = (
    ("Ġ", "b"),
    ("Ġb", "t"),
    ("Ġbt", "c"),
    ("Ġ", "e"),
    ("Ġe", "t"),
    ("Ġet", "h"),
    ("m", "o"),
    ("mo", "o"),
    ("moo", "n"),
)
LABELS = {0: "Bearish", 1: "Neutral", 2: "Bullish"}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map, which byte-level BPE vocabularies use."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def tiny_vocab() -> dict[str, int]:
    """Special tokens, the 256 byte symbols, the merged tokens, then ``<mask>``."""
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for symbol in bytes_to_unicode().values():
        vocab.setdefault(symbol, len(vocab))
    for left, right in MERGES:
        vocab.setdefault(left + right, len(vocab))
    vocab["<mask>"] = len(vocab)
    return vocab


def tiny_tokenizer():
    """A RoBERTa byte-level BPE tokenizer over :func:`tiny_vocab`."""
    from transformers import RobertaTokenizer

    return RobertaTokenizer(vocab=tiny_vocab(), merges=list(MERGES))


def save_tiny_cryptobert(
    directory: Path, *, seed: int = 0, hidden_size: int = 32, layers: int = 2, max_tokens: int = 128
) -> Path:
    """Write the tiny model and its tokenizer to ``directory`` (created) and return it."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    config = RobertaConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=max_tokens + 2,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=3,
        id2label=dict(LABELS),
        label2id={v: k for k, v in LABELS.items()},
        initializer_range=0.5,  # wide random weights: varied texts get all three labels
    )
    torch.manual_seed(seed)
    model = RobertaForSequenceClassification(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
