"""Kept only for ``launch.py``, whose in-flight edit still imports ``parse_quantity`` from here.

The parser is ``elastrain.api.quantity``; import ``parse_float`` from there and delete this file
once ``launch.py`` does.
"""

from elastrain.api.quantity import parse_float as parse_quantity

__all__ = ["parse_quantity"]
