"""Addons: the voice package format and its loader, the search path, and the
test voices. Loading an addon never runs code from it."""
