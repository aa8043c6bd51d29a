"""Sentiment scorers: CryptoBERT (or any 3-label ``transformers`` classifier), or a crypto lexicon.

Every scorer gives, per text, the probabilities of (bearish, neutral, bullish); from them
``sentiment_score = P(bullish) - P(bearish)`` in [-1, 1], ``confidence`` (the winning probability)
and ``label``. ``CRYPTO_SENTIMENT_MODEL`` chooses:

- ``lexicon`` (the offline default): VADER's lexicon extended with crypto terms ("moon", "rekt",
  "all-time high", "liquidations", ...), its compound score mapped onto the same scale;
- a local directory or hub id of a sequence classifier such as ElKulako/cryptobert (RoBERTa,
  labels Bearish/Neutral/Bullish, fine-tuned on 128-token posts, so inputs are truncated there),
  run in batches with ``torch.inference_mode()`` on the GPU when there is one.

Rows record ``model = "<name>@<revision>"``: the hub id or directory name, and the commit hash
(or a hash of the weights, or of the lexicon), so a different model or version never counts as
"already scored". Models load once per process (:func:`load_scorer` caches them).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dagster import ConfigurableResource

from resources.config.settings import Settings, setting_default

log = logging.getLogger(__name__)

LABELS = ("bearish", "neutral", "bullish")
LEXICON = "lexicon"
LEXICON_NAME = "lexicon-vader-crypto"
MAX_TOKENS = 128
MODEL_ID_MAX = 191

# Valences on VADER's scale (-4 .. 4) for words the general-purpose lexicon misses or misreads.
CRYPTO_LEXICON: dict[str, float] = {
    "bullish": 2.4,
    "bearish": -2.4,
    "bull": 1.2,
    "bulls": 1.2,
    "bear": -1.2,
    "bears": -1.2,
    "moon": 2.0,
    "mooning": 2.6,
    "moonshot": 2.2,
    "ath": 2.2,
    "breakout": 1.8,
    "uptrend": 1.6,
    "downtrend": -1.6,
    "rally": 2.0,
    "rallies": 2.0,
    "rallied": 2.0,
    "rallying": 2.0,
    "surge": 2.0,
    "surges": 2.0,
    "surged": 2.0,
    "surging": 2.0,
    "soar": 2.3,
    "soars": 2.3,
    "soared": 2.3,
    "skyrocket": 2.8,
    "skyrockets": 2.8,
    "skyrocketed": 2.8,
    "climb": 1.4,
    "climbs": 1.4,
    "climbed": 1.4,
    "jump": 1.5,
    "jumps": 1.5,
    "jumped": 1.5,
    "gaining": 1.4,
    "rebound": 1.8,
    "rebounds": 1.8,
    "rebounded": 1.8,
    "recover": 1.5,
    "recovers": 1.5,
    "recovered": 1.5,
    "inflows": 1.2,
    "adoption": 1.5,
    "accumulate": 1.2,
    "accumulation": 1.2,
    "hodl": 1.0,
    "hodling": 1.0,
    "wagmi": 2.0,
    "lfg": 2.0,
    "pump": 1.0,
    "pumping": 1.5,
    "pumps": 1.2,
    "plunge": -2.4,
    "plunges": -2.4,
    "plunged": -2.4,
    "plunging": -2.4,
    "crash": -2.8,
    "crashes": -2.8,
    "crashed": -2.8,
    "tumble": -2.0,
    "tumbles": -2.0,
    "tumbled": -2.0,
    "slump": -2.0,
    "slumps": -2.0,
    "slumped": -2.0,
    "slide": -1.6,
    "slides": -1.6,
    "slid": -1.6,
    "sink": -1.8,
    "sinks": -1.8,
    "sank": -1.8,
    "drop": -1.2,
    "drops": -1.4,
    "dropped": -1.4,
    "falls": -1.4,
    "fell": -1.4,
    "dip": -1.0,
    "dips": -1.0,
    "selloff": -2.2,
    "dump": -1.8,
    "dumping": -2.0,
    "dumped": -1.8,
    "rekt": -2.8,
    "liquidated": -2.0,
    "liquidations": -1.6,
    "capitulation": -2.4,
    "outflows": -1.2,
    "hack": -2.6,
    "hacked": -2.8,
    "exploit": -2.4,
    "exploited": -2.6,
    "rugpull": -3.0,
    "rugged": -2.6,
    "scam": -2.8,
    "ponzi": -3.0,
    "delist": -2.2,
    "delisted": -2.4,
    "delisting": -2.2,
    "insolvent": -2.8,
    "insolvency": -2.8,
    "bankrupt": -3.0,
    "bankruptcy": -3.0,
    "crackdown": -2.2,
    "sued": -2.0,
    "lawsuit": -1.6,
    "bleeding": -2.0,
    "bagholder": -1.8,
    "bagholders": -1.8,
    "ngmi": -2.0,
    "fud": -1.8,
    "fomo": 0.6,
    "low": -0.4,
    "high": 0.4,
    "higher": 0.8,
    "lower": -0.8,
    "flee": -1.6,
    "terrible": -2.5,
}
# Phrases folded into one lexicon word before scoring (VADER reads single words).
CRYPTO_PHRASES: tuple[tuple[str, str], ...] = (
    (r"\ball[- ]time highs?\b", "ath"),
    (r"\bto the moon\b", "moon"),
    (r"\bsell[- ]offs?\b", "selloff"),
    (r"\brug[- ]?pull(s|ed)?\b", "rugpull"),
    (r"\bshort squeeze\b", "rally"),
    (r"\bnew highs?\b", "ath"),
    (r"\brecord highs?\b", "ath"),
)
_PHRASES = tuple((re.compile(pattern, re.IGNORECASE), word) for pattern, word in CRYPTO_PHRASES)
NEUTRAL_BAND = 0.05  # VADER's documented threshold for a neutral compound score


def model_id(name: str, revision: str) -> str:
    """The ``model`` column: ``<name>@<revision>``, at most 191 characters (the name is cut)."""
    suffix = f"@{revision}"
    return name[: MODEL_ID_MAX - len(suffix)] + suffix


def scores_from_probabilities(probs: np.ndarray) -> pd.DataFrame:
    """``sentiment_score``, ``confidence`` and ``label`` from (bearish, neutral, bullish) probabilities."""
    probs = np.asarray(probs, dtype=float).reshape(-1, 3)
    winner = probs.argmax(axis=1)
    return pd.DataFrame(
        {
            "sentiment_score": np.clip(probs[:, 2] - probs[:, 0], -1.0, 1.0),
            "confidence": probs[np.arange(len(probs)), winner],
            "label": pd.Series(np.asarray(LABELS, dtype=object)[winner], dtype=object),
        }
    )


class SentimentScorer(ABC):
    """Scores texts on the bearish / neutral / bullish scale."""

    kind: str
    name: str
    revision: str
    device: str = "cpu"

    @property
    def model_id(self) -> str:
        """What ``sentiment_data.model`` records."""
        return model_id(self.name, self.revision)

    @abstractmethod
    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Array (len(texts), 3) of (bearish, neutral, bullish) probabilities."""

    def score(self, texts: Sequence[str]) -> pd.DataFrame:
        """``sentiment_score``, ``confidence`` and ``label`` for each text, in order."""
        if not len(texts):
            return scores_from_probabilities(np.zeros((0, 3)))
        return scores_from_probabilities(self.probabilities(texts))

    def describe(self) -> dict[str, Any]:
        """Model facts for run metadata."""
        return {
            "model": self.model_id,
            "model_name": self.name,
            "model_revision": self.revision,
            "model_kind": self.kind,
            "device": self.device,
        }


class LexiconScorer(SentimentScorer):
    """VADER with crypto terms; its compound score c becomes the score, with probabilities
    P(bullish) - P(bearish) = c. Inside VADER's neutral band (|c| < 0.05) the label is neutral with
    confidence 1 - |c|; outside it the winner has probability (1 + |c|) / 2."""

    kind = "lexicon"

    def __init__(self) -> None:
        from importlib.metadata import version

        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()
        self.analyzer.lexicon.update(CRYPTO_LEXICON)
        self.name = LEXICON_NAME
        basis = repr((version("vaderSentiment"), sorted(CRYPTO_LEXICON.items()), CRYPTO_PHRASES, NEUTRAL_BAND))
        self.revision = hashlib.sha256(basis.encode()).hexdigest()[:12]

    def compound(self, text: str) -> float:
        """VADER's compound score of ``text`` after folding crypto phrases."""
        for pattern, word in _PHRASES:
            text = pattern.sub(word, text)
        return float(self.analyzer.polarity_scores(text)["compound"])

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(bearish, neutral, bullish) from each text's compound score (see the class docstring)."""
        c = np.array([self.compound(t) for t in texts], dtype=float)
        m = np.abs(c)
        polar = m >= NEUTRAL_BAND
        win, lose = (1.0 + m) / 2.0, (1.0 - m) / 2.0
        bullish = np.where(polar, np.where(c > 0, win, lose), np.where(c > 0, m, 0.0))
        bearish = np.where(polar, np.where(c > 0, lose, win), np.where(c < 0, m, 0.0))
        neutral = np.where(polar, 0.0, 1.0 - m)
        return np.column_stack([bearish, neutral, bullish])


def resolve_device(device: str = "") -> str:
    """``device`` if given, else ``cuda`` when a GPU is available, else ``cpu``."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _label_order(id2label: dict[int, str]) -> list[int]:
    """Logit index of bearish, neutral and bullish in the model's output."""
    found: dict[str, int] = {}
    for index, label in id2label.items():
        text = str(label).lower()
        if "bear" in text or text.startswith("neg"):
            found["bearish"] = int(index)
        elif "bull" in text or text.startswith("pos"):
            found["bullish"] = int(index)
        elif "neu" in text:
            found["neutral"] = int(index)
    if len(found) == 3:
        return [found[label] for label in LABELS]
    if len(id2label) == 3 and all(str(v).upper().startswith("LABEL_") for v in id2label.values()):
        log.warning(
            "model has generic labels %s: assuming CryptoBERT's order (0 bearish, 1 neutral, 2 bullish)",
            sorted(id2label.values()),
        )
        return [0, 1, 2]
    raise ValueError(f"cannot map the model's labels {id2label} onto bearish/neutral/bullish")


def _hash_files(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _model_revision(model: Any, directory: Path | None) -> str:
    # A private attribute of transformers' PretrainedConfig (the hub revision it was loaded at), read
    # with a default: where a release drops it, the weights' hash below names the revision instead.
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        return str(commit)[:12]
    if directory is not None:
        weights = sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
        if weights:
            return _hash_files(weights)
    digest = hashlib.sha256(model.config.to_json_string().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


class TransformersScorer(SentimentScorer):
    """A 3-label ``transformers`` sequence classifier (CryptoBERT), loaded from a directory or hub id.

    Texts are scored in batches of ``batch_size`` (sorted by length, so little goes to padding),
    truncated at ``max_length`` tokens, under ``torch.inference_mode()``. On a GPU the weights run
    in fp16 unless ``half_precision`` is off (the throughput: docs/benchmarks.md; probabilities
    move by about 1e-3). ``quantize_int8`` (CPU only) quantises the linear layers dynamically.
    """

    kind = "transformers"

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str = "",
        batch_size: int = 32,
        max_length: int = MAX_TOKENS,
        quantize_int8: bool = False,
        half_precision: bool = True,
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.device = resolve_device(device)
        directory = Path(name_or_path).expanduser()
        is_dir = directory.is_dir()
        source = str(directory.resolve()) if is_dir else name_or_path
        self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=is_dir)
        model = AutoModelForSequenceClassification.from_pretrained(source, local_files_only=is_dir)
        model.eval()
        self.label_order = _label_order(model.config.id2label)
        self.name = directory.resolve().name if is_dir else name_or_path
        revision = _model_revision(model, directory.resolve() if is_dir else None)
        positions = getattr(model.config, "max_position_embeddings", max_length + 2)
        # RoBERTa's positions start after the padding index: 514 positions hold 512 tokens.
        self.max_length = max(8, min(max_length, positions - 2))
        self.batch_size = max(1, batch_size)
        self.quantized = quantize_int8 and self.device == "cpu"
        if self.quantized:
            with warnings.catch_warnings():  # torch deprecates eager quantisation in favour of torchao
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            revision += "+int8"  # different numbers: scored rows of the two must not be confused
        elif self.device.startswith("cuda") and half_precision:
            model = model.half()
        self.revision = revision
        self.model = model.to(self.device)
        self._torch = torch
        self._lock = threading.Lock()

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Softmax of the model's logits, in (bearish, neutral, bullish) order, for each text."""
        torch = self._torch
        texts = [t if isinstance(t, str) and t.strip() else " " for t in texts]
        # Longest first: batches of similar length waste little on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = np.zeros((len(texts), 3), dtype=float)
        with self._lock, torch.inference_mode():
            for offset in range(0, len(order), self.batch_size):
                batch = order[offset : offset + self.batch_size]
                encoded = self.tokenizer(
                    [texts[i] for i in batch],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                encoded = {k: v.to(self.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
                logits = self.model(**encoded).logits.float()
                probs = torch.softmax(logits, dim=-1)[:, self.label_order].cpu().numpy()
                out[batch] = probs
        return out

    def describe(self) -> dict[str, Any]:
        """Model facts, with the batch size, token limit and quantisation."""
        return {
            **super().describe(),
            "batch_size": self.batch_size,
            "max_tokens": self.max_length,
            "int8": self.quantized,
        }


def load_scorer(spec: str, device: str = "", batch_size: int = 32, quantize_int8: bool = False) -> SentimentScorer:
    """The process-wide scorer for ``spec`` (``lexicon``, a model directory or a hub id): loaded
    once per process and configuration, not once per window."""
    spec = (spec or LEXICON).strip()
    if spec.lower() == LEXICON:
        return _cached_scorer(LEXICON, "cpu", 0, False)
    return _cached_scorer(spec, resolve_device(device), int(batch_size), bool(quantize_int8))


@lru_cache(maxsize=4)
def _cached_scorer(spec: str, device: str, batch_size: int, quantize_int8: bool) -> SentimentScorer:
    if spec == LEXICON:
        return LexiconScorer()
    return TransformersScorer(spec, device=device, batch_size=batch_size, quantize_int8=quantize_int8)


class SentimentModelResource(ConfigurableResource):
    """The sentiment model of ``sentiment_data``: ``model`` (``CRYPTO_SENTIMENT_MODEL`` through
    :meth:`from_settings`) is ``lexicon``, a model directory or a hub id.

    ``device`` empty: the GPU when there is one. ``quantize_int8``: dynamic int8 quantisation of the
    linear layers on CPU (faster, slightly different numbers; recorded in the model revision).
    """

    model: str = setting_default("sentiment_model")
    device: str = ""
    batch_size: int = 32
    quantize_int8: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SentimentModelResource:
        """The model ``settings`` name; ``overrides`` replace fields (the device, the batch size)."""
        values: dict[str, Any] = dict(model=settings.sentiment_model)
        return cls(**{**values, **overrides})

    def get(self) -> SentimentScorer:
        """The loaded scorer (cached for the process)."""
        return load_scorer(self.model, self.device, self.batch_size, self.quantize_int8)
