"""Fake ``habana_frameworks.torch``: importing it loads the (fake) bridge core."""
from . import core  # noqa: F401  (the real package initialises the bridge too)
