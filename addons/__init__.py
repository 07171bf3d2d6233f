"""Addons: the voice package format, its validator and loader, the search path, and the
test voices. Loading an addon never runs code from it."""
