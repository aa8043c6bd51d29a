"""Configuration: the settings read from the environment, and the coin universe."""
