"""The `voicestack` command line."""
