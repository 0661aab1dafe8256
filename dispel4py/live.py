"""Kept so that ``from dispel4py.live import LiveBoard`` (in docs of earlier versions) works:
the live counters are :mod:`dispel4py.observe.live`."""

from dispel4py.observe.live import *  # noqa: F403
from dispel4py.observe.live import __all__  # noqa: F401
