"""voicestack."""
