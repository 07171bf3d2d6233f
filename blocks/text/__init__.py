"""The text front end: normalisation, sentence splitting, phonemes and words, and the front-end
blocks (Frontend, PiperFrontend) that turn a sentence into symbol ids."""
