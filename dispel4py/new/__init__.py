"""Thin shims keeping the original ``dispel4py.new.*`` import paths working."""
