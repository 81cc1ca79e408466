"""Helpers shared by the test suite: a scripted engine, test media, polling."""
