"""The sentiment model (CryptoBERT through transformers, or the offline lexicon)."""
