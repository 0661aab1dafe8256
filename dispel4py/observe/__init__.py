"""Watching a run and describing it afterwards: live counters, the progress table and lines,
stats as JSON, the bottleneck hint, the timed mappings' files, concrete drawings.
Imports the engine and the user model, never a mapping."""
