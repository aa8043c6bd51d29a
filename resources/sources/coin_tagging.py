"""Which coins of the universe a piece of text talks about.

A coin is recognised by its cashtag or hashtag (``$SOL``, ``#BTC``), its ticker in capitals
(``BTC``; a few distinctive ones in lower case too, such as "btc"), a trading pair (``ONE/USDT``, ``BTC-USD``), or its name and known aliases, in any
case (``Solana``, ``bitcoin's``, ``Ether``). Matching is on whole words only, so ``SOL`` is not
found in "solution" nor ``ETH`` in "Ethics".

Many tickers and names are ordinary words or common acronyms: ``ONE``, ``NOT``, ``NEAR``,
``OP`` (Reddit's "original poster"), ``DOGE`` (a US government department), ``LINK``, ``DOT``,
"Stellar", "Avalanche", "Jupiter", "The Graph". For those a bare occurrence is not enough: the
coin is tagged only with crypto evidence right next to it: a cashtag or hashtag, a trading pair,
a following qualifier ("NEAR token", "Avalanche network", "Stellar price", "Quant (QNT)") or,
for a name, its ticker in parentheses. Precision over recall: a missed mention costs one
sentiment row; a false one puts another coin's news into a coin's features.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from resources.config.universe import Coin

# Tickers and names that are English words, names of other things, or common acronyms. Lower
# case; a name's alias derived by dropping a suffix ("Cosmos Hub" -> "Cosmos") is checked too.
COMMON_WORDS = frozenset(
    {
        # tickers that are words or acronyms
        "one",
        "not",
        "near",
        "flow",
        "sand",
        "mask",
        "beam",
        "rose",
        "gala",
        "ape",
        "dot",
        "link",
        "uni",
        "cake",
        "bat",
        "comp",
        "ton",
        "atom",
        "ocean",
        "audio",
        "render",
        "woo",
        "pol",
        "blur",
        "alt",
        "algo",
        "rune",
        "apt",
        "iota",
        "etc",
        "ada",
        "vet",
        "doge",
        "cro",
        "tao",
        "eos",
        "mana",
        "sushi",
        "arb",
        "theta",
        "om",
        "op",
        "ar",
        "gas",
        "ray",
        "key",
        "sun",
        "cat",
        "pay",
        "ant",
        # names that are words, places or other brands
        "stellar",
        "tether",
        "avalanche",
        "quant",
        "maker",
        "compound",
        "helium",
        "optimism",
        "harmony",
        "oasis",
        "solar",
        "jupiter",
        "mantra",
        "immutable",
        "stacks",
        "the graph",
        "the sandbox",
        "sandbox",
        "cosmos",
        "curve",
        "mina",
        "lido",
        "icon",
        "tron",
        "internet computer",
        "basic attention",
        "ripple",
        "cronos",
        "kava",
        "bonk",
    }
)
# Names (not tickers) that are words or names of other things: ``SUI`` in capitals is the coin,
# "sui generis" is not; ``NEO`` is the coin, "neo-nazi" and "Neo" of the Matrix are not.
COMMON_NAMES = frozenset({"sui", "sei", "pepe", "neo", "shiba"})

# Tickers also recognised in lower case ("btc", "eth" in posts): distinctive ones only.
LOWERCASE_TICKERS = frozenset(
    {
        "btc",
        "eth",
        "xrp",
        "bnb",
        "usdt",
        "usdc",
        "ltc",
        "xmr",
        "xlm",
        "avax",
        "shib",
        "hbar",
        "bch",
        "trx",
        "aave",
        "dydx",
        "egld",
        "xtz",
    }
)

# Aliases beyond the universe's names (for the default universe; unknown symbols are ignored).
EXTRA_ALIASES: dict[str, tuple[str, ...]] = {
    "ETH": ("Ether",),
    "POL": ("Polygon", "MATIC"),
    "FET": ("Fetch.ai",),
    "MKR": ("MakerDAO",),
    "IMX": ("Immutable X",),
    "XRP": ("Ripple",),
    "BNB": ("Binance Coin",),
    "AXS": ("Axie",),
    "YFI": ("Yearn", "Yearn Finance"),
    "BAT": ("Basic Attention Token",),
    "RUNE": ("Thorchain",),
    "CRV": ("Curve Finance",),
    "COMP": ("Compound Finance",),
    "EGLD": ("Elrond",),
    "SHIB": ("Shiba",),
    "DOGE": ("Doge",),
}

# Words that make an ambiguous mention a coin when they follow it.
QUALIFIERS = (
    "token",
    "tokens",
    "coin",
    "coins",
    "price",
    "prices",
    "holders",
    "network",
    "protocol",
    "blockchain",
    "chain",
    "mainnet",
    "testnet",
    "ecosystem",
    "staking",
    "stakers",
    "airdrop",
    "etf",
    "etfs",
    "whales",
    "futures",
    "dao",
    "foundation",
    "labs",
    "validators",
    "price prediction",
    "market cap",
    "perps",
)
_NAME_SUFFIXES = (" protocol", " network", " hub", " dao", " coin", " finance", " token")
_PAIR_QUOTES = ("USDT", "USDC", "USD", "BTC", "ETH", "EUR", "BUSD")

_TAG = re.compile(r"(?<![\w$#])[$#]([A-Za-z0-9]{2,10})(?![A-Za-z0-9])")
_TICKER = re.compile(r"(?<![A-Za-z0-9$#@])([A-Za-z0-9]{2,10})(?![A-Za-z0-9])")
_PAIR = re.compile(
    r"(?<![A-Za-z0-9$#])([A-Za-z0-9]{2,10})\s?[/\-_]\s?(" + "|".join(_PAIR_QUOTES) + r")(?![A-Za-z0-9])", re.IGNORECASE
)
_QUALIFIER_AFTER = re.compile(
    r"^(?:'s)?\s*(?:\(\s*\$?[A-Za-z0-9]{2,10}\s*\)\s*)?(?:"
    + "|".join(sorted(QUALIFIERS, key=len, reverse=True))
    + r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_PAREN_TICKER_AFTER = re.compile(r"^\s*\(\s*\$?([A-Za-z0-9]{2,10})\s*\)")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'“(\[]?[A-Z0-9$#])")


@dataclass(frozen=True)
class Mention:
    """One recognised mention: the coin, where it is, and what kind of evidence found it."""

    symbol: str
    start: int
    end: int
    kind: str  # "cashtag", "pair", "ticker", "name"


def _is_common(word: str) -> bool:
    return word.lower() in COMMON_WORDS or len(word) <= 2


def _is_common_name(word: str) -> bool:
    return _is_common(word) or word.lower() in COMMON_NAMES


def _aliases(coin: Coin) -> list[str]:
    name = re.sub(r"\s*\(.*?\)\s*", " ", coin.name).strip()  # "POL (ex-MATIC)" -> "POL"
    names = {name, *EXTRA_ALIASES.get(coin.symbol, ())}
    for suffix in _NAME_SUFFIXES:
        if name.lower().endswith(suffix):
            stripped = name[: -len(suffix)].strip()
            if len(stripped) >= 3:
                names.add(stripped)
    return [n for n in names if len(n) >= 2]


class CoinTagger:
    """Finds the universe's coins in text; build once per universe (see :func:`tagger_for`)."""

    def __init__(self, coins: Sequence[Coin]):
        self.symbols = frozenset(c.symbol for c in coins)
        self.ambiguous_tickers = frozenset(c.symbol for c in coins if _is_common(c.symbol))
        self._name_to_symbol: dict[str, str] = {}
        self._canonical: dict[str, str] = {}
        self._ambiguous_names: set[str] = set()
        for coin in coins:
            for alias in _aliases(coin):
                key = alias.lower()
                # The first coin that claims an alias keeps it (the universe is ordered by size).
                if key in self._name_to_symbol:
                    continue
                self._name_to_symbol[key] = coin.symbol
                self._canonical[key] = alias
                if _is_common_name(alias):
                    self._ambiguous_names.add(key)
        names = sorted(self._name_to_symbol, key=len, reverse=True)
        self._names = (
            re.compile(
                r"(?<![\w$#.])(" + "|".join(re.escape(n) for n in names) + r")(?:'s|s)?(?![\w])",
                re.IGNORECASE,
            )
            if names
            else None
        )

    def _qualified(self, text: str, end: int) -> bool:
        return bool(_QUALIFIER_AFTER.match(text[end : end + 40]))

    def mentions(self, text: str) -> list[Mention]:
        """Every mention in ``text``, in order of position (overlaps resolved, longest first)."""
        if not text:
            return []
        found: list[Mention] = []
        taken: list[tuple[int, int]] = []

        def free(start: int, end: int) -> bool:
            return all(end <= s or start >= e for s, e in taken)

        def add(symbol: str, start: int, end: int, kind: str) -> None:
            found.append(Mention(symbol, start, end, kind))
            taken.append((start, end))

        for match in _TAG.finditer(text):
            symbol = match.group(1).upper()
            if symbol in self.symbols:
                add(symbol, match.start(), match.end(), "cashtag")
        for match in _PAIR.finditer(text):
            written = match.group(1)
            base = written.upper()
            if base not in self.symbols or not free(match.start(1), match.end(1)):
                continue
            if base in self.ambiguous_tickers and written != base:
                continue  # "one-usd" is prose; "ONE/USDT" is a pair
            add(base, match.start(1), match.end(1), "pair")
            taken.append((match.start(2), match.end(2)))  # the quote currency is not the news
        if self._names is not None:
            for match in self._names.finditer(text):
                key = match.group(1).lower()
                symbol = self._name_to_symbol[key]
                if not free(match.start(), match.end()):
                    continue
                if key in self._ambiguous_names:
                    written = match.group(1)
                    canonical = self._canonical[key]
                    if written not in (canonical, canonical.upper()):
                        continue  # "near", "stellar", "sui generis": prose, not the coin
                    paren = _PAREN_TICKER_AFTER.match(text[match.end() : match.end() + 20])
                    has_ticker = paren is not None and paren.group(1).upper() == symbol
                    if not (has_ticker or self._qualified(text, match.end())):
                        continue
                add(symbol, match.start(), match.end(), "name")
        for match in _TICKER.finditer(text):
            written = match.group(1)
            symbol = written.upper()
            if symbol not in self.symbols or not free(match.start(), match.end()):
                continue
            if written != symbol and written.lower() not in LOWERCASE_TICKERS:
                continue  # "sol" in prose; "btc" in a post is Bitcoin
            if symbol in self.ambiguous_tickers:
                before = text[max(0, match.start() - 1) : match.start()]
                after = text[match.end() : match.end() + 1]
                in_parens = before == "(" and after == ")"
                if not (in_parens or self._qualified(text, match.end())):
                    continue
            add(symbol, match.start(), match.end(), "ticker")
        found.sort(key=lambda m: m.start)
        return found

    def tag(self, text: str) -> tuple[str, ...]:
        """The coins ``text`` mentions, sorted and unique."""
        return tuple(sorted({m.symbol for m in self.mentions(text)}))

    def context(self, title: str, summary: str, symbol: str) -> str:
        """The text to score for one coin of an item: the title, then the summary's sentences
        that mention the coin (the whole summary when none does).

        Items that discuss several coins ("BTC rallies; ETH slumps after the hack") then give each
        coin the sentences about it, within the 128 tokens a sentiment model reads.
        """
        title = (title or "").strip()
        summary = (summary or "").strip()
        if not summary:
            return title
        sentences = [s for s in _SENTENCE_SPLIT.split(summary) if s.strip()]
        relevant = [s for s in sentences if symbol in self.tag(s)]
        body = " ".join(relevant) if relevant else summary
        return f"{title}. {body}" if title and not title.endswith((".", "!", "?")) else f"{title} {body}".strip()


@lru_cache(maxsize=8)
def tagger_for(coins: tuple[Coin, ...]) -> CoinTagger:
    """The process-wide tagger of a universe (building the name pattern takes a few ms)."""
    return CoinTagger(coins)


def symbols_field(symbols: Sequence[str], limit: int = 512) -> str:
    """``news_items.symbols``: comma-separated tickers, cut at whole tickers to fit ``limit``."""
    out = ""
    for symbol in symbols:
        candidate = f"{out},{symbol}" if out else symbol
        if len(candidate) > limit:
            break
        out = candidate
    return out
