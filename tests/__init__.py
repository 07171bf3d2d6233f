"""voicestack tests: each module specifies one part of the behaviour."""
