"""Kept so that ``from dispel4py.progress import progress_line`` (in docs of earlier versions)
works: the progress table and lines are :mod:`dispel4py.observe.progress`."""

from dispel4py.observe.progress import *  # noqa: F403
from dispel4py.observe.progress import __all__  # noqa: F401
