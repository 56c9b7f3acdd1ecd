"""Fuzzing herostore's reader of spec `.npy` dicts; see ``tests/fuzz/__main__.py`` for the command line."""
