"""The original ``config`` table: short mapping name -> module path."""

from dispel4py.mappings import ALIASES

config = {name: module for module, name in ALIASES.items()}
