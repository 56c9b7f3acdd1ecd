"""Fuzzing herostore's readers: spec `.npy` dicts and stores; see ``tests/fuzz/__main__.py`` for the command line."""
