"""Sources: the clients of every external service (exchanges, CoinGecko, news, macro) and the simulated market."""
