"""Coin tagging on real-looking headlines and posts: found coins, and no false positives."""

import pytest

from resources.config.universe import Coin, load_universe
from resources.sources.coin_tagging import CoinTagger, symbols_field, tagger_for

TAGGER = tagger_for(load_universe())

# (text, expected symbols)
CASES = [
    # plain names, tickers, cashtags, possessives, plurals, case
    ("Bitcoin surges past $100,000 as ETH lags behind", ("BTC", "ETH")),
    ("Bitcoin's hashrate hits a record", ("BTC",)),
    ("Why I sold all my bitcoins last week", ("BTC",)),
    ("SOLANA AND CARDANO LEAD ALTCOIN GAINS", ("ADA", "SOL")),
    ("$SOL and $AVAX rip higher while $BTC consolidates", ("AVAX", "BTC", "SOL")),
    ("#XRP army celebrates the ruling", ("XRP",)),
    ("btc and eth funding rates flip negative", ("BTC", "ETH")),
    ("Ether options expiry looms", ("ETH",)),
    ("Ethereum Classic and Bitcoin Cash rally on the halving narrative", ("BCH", "ETC")),
    ("Shiba Inu burn rate jumps 900%", ("SHIB",)),
    ("Polygon's MATIC-to-POL migration is complete", ("POL",)),
    ("1inch integrates a new aggregator route", ("1INCH",)),
    ("dYdX v4 volumes climb", ("DYDX",)),
    ("yearn.finance vault exploited for $11M", ("YFI",)),
    ("Fetch.ai, SingularityNET and Ocean Protocol complete token merger", ("FET", "OCEAN")),
    # trading pairs
    ("ONE/USDT breaks out of a falling wedge", ("ONE",)),
    ("BTC-USD tests the 200-day moving average", ("BTC",)),
    ("ETH/BTC ratio at a four-year low", ("ETH",)),
    # ambiguous tickers and names that are coins because of what stands next to them
    ("Harmony (ONE) jumps 20% after the bridge relaunch", ("ONE",)),
    ("$ONE is pumping", ("ONE",)),
    ("NEAR Protocol ships sharding upgrade", ("NEAR",)),
    ("NEAR token unlock next week", ("NEAR",)),
    ("Avalanche network fees fall to a yearly low", ("AVAX",)),
    ("Stellar (XLM) price prediction for 2027", ("XLM",)),
    ("DOGE price jumps after Musk tweet", ("DOGE",)),
    ("The Graph token rallies on AI indexing demand", ("GRT",)),
    ("Cosmos Hub votes on ATOM 2.0", ("ATOM",)),
    ("Chainlink oracles secure $20B", ("LINK",)),
    ("Tether mints another $1B USDT", ("USDT",)),
    ("Ripple (XRP) wins partial victory", ("XRP",)),
    ("Maker (MKR) holders vote on the Endgame plan", ("MKR",)),
    # ordinary words, acronyms and substrings that are not coins
    ("We need a solution for the holders", ()),
    ("ONE more thing: the SEC is NOT done with exchanges", ()),
    ("OP here, I sold my stack last week. NOT financial advice.", ()),
    ("Elon Musk's DOGE cuts federal spending", ()),
    ("An avalanche of sell orders hit the order books", ()),
    ("Stellar earnings lift tech stocks", ()),
    ("The graph shows a steady decline in volumes", ()),
    ("Bitcoin trades near $100k after a quiet weekend", ("BTC",)),
    ("Jupiter is visible tonight, astronomers say", ()),
    ("One token per wallet, the team said", ()),
    ("Optimism is rising among fund managers", ()),
    ("The compound interest on savings accounts", ()),
    ("Oasis announce a reunion tour", ()),
    ("Quant funds cut equity exposure", ()),
    ("A sui generis approach to regulation", ()),
    ("Please LINK your wallet to the app", ()),
    ("AR glasses and AI lead CES announcements", ()),
    ("The DOT announces new highway funding", ()),
    ("ADA compliance is required for the website", ()),
    ("Ethics board reviews the ETF application", ()),
    ("Tron: Ares is out in cinemas", ()),
    ("The total value of $100 and $1B in deposits", ()),
    ("Mask mandates return in some hospitals", ()),
    ("Render farm prices drop for 3D studios", ()),
    ("Sushi restaurants open in the city", ()),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_tags(text, expected):
    assert TAGGER.tag(text) == expected


def test_mentions_give_positions_and_evidence():
    text = "Harmony (ONE) and $SOL rally as bitcoin holds"
    mentions = TAGGER.mentions(text)
    assert [(m.symbol, m.kind) for m in mentions] == [
        ("ONE", "name"),
        ("ONE", "ticker"),
        ("SOL", "cashtag"),
        ("BTC", "name"),
    ]
    for m in mentions:
        assert text[m.start : m.end].upper().lstrip("$").startswith(("HARMONY", "ONE", "SOL", "BITCOIN"))


def test_context_keeps_the_title_and_the_sentences_about_the_coin():
    title = "Crypto markets mixed"
    summary = "Bitcoin rallied 3% on ETF inflows. Meanwhile Solana (SOL) fell 5% after an outage. Volumes were thin."
    assert TAGGER.context(title, summary, "BTC") == "Crypto markets mixed. Bitcoin rallied 3% on ETF inflows."
    assert (
        TAGGER.context(title, summary, "SOL") == "Crypto markets mixed. Meanwhile Solana (SOL) fell 5% after an outage."
    )
    # a coin named only in the title: the whole summary is its context
    assert TAGGER.context("ETH slumps", summary, "ETH") == f"ETH slumps. {summary}"
    assert TAGGER.context("Only a title", "", "BTC") == "Only a title"


def test_another_universe_uses_its_own_names_and_flags_word_tickers():
    coins = (
        Coin("ABC", "abc-chain", "Alphabet Chain", None, None, None),
        Coin("FLOW", "flow", "Flow", None, None, None),
    )
    tagger = CoinTagger(coins)
    assert tagger.tag("Alphabet Chain launches; ABC up 4%") == ("ABC",)
    assert tagger.tag("cash flow improves") == ()
    assert tagger.tag("Flow blockchain upgrade; $FLOW up") == ("FLOW",)
    assert "FLOW" in tagger.ambiguous_tickers


def test_symbols_field_fits_the_column():
    assert symbols_field(("BTC", "ETH")) == "BTC,ETH"
    assert symbols_field(()) == ""
    long = tuple(f"S{i:04d}" for i in range(200))
    field = symbols_field(long, limit=512)
    assert len(field) <= 512 and field.split(",") == list(long[: len(field.split(","))])
