"""Sentiment scorers: the crypto lexicon, and the transformers path on a tiny local CryptoBERT."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # the transformers path must never reach for the hub

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from resources.config.settings import load_settings  # noqa: E402
from resources.model import sentiment_scorers as sentiment_model  # noqa: E402
from resources.model.sentiment_scorers import (  # noqa: E402
    LABELS,
    LexiconScorer,
    SentimentModelResource,
    _label_order,
    load_scorer,
    model_id,
    scores_from_probabilities,
)
from testkit.fakes.tiny_model import save_tiny_cryptobert  # noqa: E402

HEADLINES = [
    ("Bitcoin surges to a new all-time high as ETF inflows jump", "bullish"),
    ("$SOL to the moon, breakout confirmed", "bullish"),
    ("Ethereum rebounds after the upgrade ships", "bullish"),
    ("Exchange hacked, $200M drained; token plunges", "bearish"),
    ("Getting rekt, $DOGE dumping again", "bearish"),
    ("Liquidations mount as bitcoin tumbles below $90k", "bearish"),
    ("Rug pull: developers vanish with investor funds", "bearish"),
    ("Bitcoin trades sideways around $95,000", "neutral"),
    ("Solana (SOL) holds near $180", "neutral"),
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_cryptobert(tmp_path_factory.mktemp("models") / "cryptobert-tiny")


@pytest.mark.parametrize(("text", "label"), HEADLINES, ids=[h[0][:30] for h in HEADLINES])
def test_lexicon_reads_crypto_language(text, label):
    assert load_scorer("lexicon").score([text])["label"].iloc[0] == label


def test_lexicon_scale_matches_the_model_scale():
    scorer = load_scorer("lexicon")
    texts = [h[0] for h in HEADLINES] + ["", "ok"]
    probs = scorer.probabilities(texts)
    scores = scorer.score(texts)
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs >= 0).all()
    assert np.allclose(scores["sentiment_score"], probs[:, 2] - probs[:, 0])
    assert np.allclose(scores["sentiment_score"], [scorer.compound(t) for t in texts])
    assert np.allclose(scores["confidence"], probs.max(axis=1))
    assert scores["label"].tolist() == [LABELS[i] for i in probs.argmax(axis=1)]
    assert scorer.model_id.startswith("lexicon-vader-crypto@") and scorer.kind == "lexicon"


def test_lexicon_revision_follows_its_content(monkeypatch):
    before = LexiconScorer().revision
    assert LexiconScorer().revision == before
    monkeypatch.setitem(sentiment_model.CRYPTO_LEXICON, "wen", 1.0)
    assert LexiconScorer().revision != before


def test_scores_from_probabilities():
    frame = scores_from_probabilities(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]]))
    assert frame["label"].tolist() == ["bearish", "bullish", "neutral"]
    assert np.allclose(frame["sentiment_score"], [-0.6, 0.5, 0.1])
    assert np.allclose(frame["confidence"], [0.7, 0.6, 0.5])
    assert scores_from_probabilities(np.zeros((0, 3))).empty


def test_label_order():
    assert _label_order({0: "Bearish", 1: "Neutral", 2: "Bullish"}) == [0, 1, 2]
    assert _label_order({0: "positive", 1: "negative", 2: "neutral"}) == [1, 2, 0]
    assert _label_order({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}) == [0, 1, 2]
    with pytest.raises(ValueError, match="cannot map"):
        _label_order({0: "spam", 1: "ham"})


def test_model_id_fits_the_column():
    assert model_id("ElKulako/cryptobert", "abc123") == "ElKulako/cryptobert@abc123"
    long = model_id("x" * 300, "abcdef123456")
    assert len(long) == 191 and long.endswith("@abcdef123456")


def test_tiny_cryptobert_loads_through_the_cryptobert_path(tiny_dir):
    scorer = load_scorer(str(tiny_dir), "cpu", 4)
    assert scorer.kind == "transformers" and scorer.device == "cpu"
    assert scorer.name == "cryptobert-tiny" and len(scorer.revision) == 12
    assert scorer.model_id == f"cryptobert-tiny@{scorer.revision}"
    assert scorer.max_length == 128 and scorer.label_order == [0, 1, 2]
    # The same process gets the same loaded model: it loads once, not once per window.
    assert load_scorer(str(tiny_dir), "cpu", 4) is scorer
    assert SentimentModelResource(model=str(tiny_dir), device="cpu", batch_size=4).get() is scorer


def test_transformer_probabilities_match_a_direct_forward_pass(tiny_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = [h[0] for h in HEADLINES]
    scorer = load_scorer(str(tiny_dir), "cpu", 4)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_dir, local_files_only=True).eval()
    with torch.no_grad():
        expected = [torch.softmax(model(**tokenizer(t, return_tensors="pt")).logits, -1)[0].numpy() for t in texts]
    assert np.allclose(scorer.probabilities(texts), np.array(expected), atol=1e-5)
    frame = scorer.score(texts)
    assert set(frame["label"]) <= set(LABELS) and len(set(frame["label"])) >= 2
    assert frame["sentiment_score"].between(-1, 1).all() and frame["confidence"].between(1 / 3, 1).all()


def test_batching_does_not_change_the_scores(tiny_dir):
    texts = [h[0] for h in HEADLINES] + ["short", "a much longer post " * 5]
    one = load_scorer(str(tiny_dir), "cpu", 1).probabilities(texts)
    many = load_scorer(str(tiny_dir), "cpu", 8).probabilities(texts)
    assert np.allclose(one, many, atol=1e-5)


def test_long_texts_are_truncated_at_128_tokens(tiny_dir):
    scorer = load_scorer(str(tiny_dir), "cpu", 4)
    head = "Bitcoin ETF inflows hit a record while miners sell. " * 2
    long = head + "filler text " * 500  # thousands of tokens; the model holds 128 positions
    probs = scorer.probabilities([long, "", "   "])
    assert np.isfinite(probs).all()
    cut = scorer.tokenizer.convert_tokens_to_string(scorer.tokenizer.tokenize(long)[:126])
    assert np.allclose(probs[0], scorer.probabilities([cut])[0], atol=1e-5)


def test_dynamic_int8_quantisation_is_recorded_and_close(tiny_dir):
    plain = load_scorer(str(tiny_dir), "cpu", 8)
    quantized = load_scorer(str(tiny_dir), "cpu", 8, True)
    assert quantized.revision == plain.revision + "+int8" and quantized.describe()["int8"] is True
    texts = [h[0] for h in HEADLINES]
    q, p = quantized.probabilities(texts), plain.probabilities(texts)
    # int8 weights move the tiny, wide-initialised model's probabilities a little, not its verdicts
    assert np.abs(q - p).mean() < 0.05 and (q.argmax(axis=1) == p.argmax(axis=1)).mean() >= 0.75


def test_a_hub_id_without_a_local_copy_fails_offline():
    with pytest.raises(OSError):
        load_scorer("ElKulako/cryptobert-not-cached", "cpu")


def test_the_resource_reads_the_environment(monkeypatch, tiny_dir):
    """Through the settings the definitions build it from (no fall-back at call time)."""
    monkeypatch.setenv("CRYPTO_SENTIMENT_MODEL", "lexicon")
    assert SentimentModelResource.from_settings(load_settings()).get() is load_scorer("lexicon")
    monkeypatch.setenv("CRYPTO_SENTIMENT_MODEL", str(tiny_dir))
    scorer = SentimentModelResource.from_settings(load_settings(), device="cpu").get()
    assert scorer.kind == "transformers" and scorer.name == "cryptobert-tiny"
