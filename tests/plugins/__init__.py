"""Tests of the built-in framework backends (each skipped when its framework is not installed)."""
