"""voicestack: text-to-speech voices of different architectures served side by side on Ray
Serve, streaming audio as it is made. The code lives in the repository's top-level folders
(blocks/, addons/, placement/, runtime/, serve_app/, cli/), installed as subpackages of this
one: see pyproject.toml's package mapping."""
