"""Placement: which device, Ray resources and shape policy each block type gets.

Pure config and arithmetic: nothing here starts Ray or imports torch at import time.
"""
