"""Example workflows shipped with dispel4py."""
