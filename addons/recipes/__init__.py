"""Recipes that make addons: the test voices now, the trained reference voices later."""
