"""Guided exercises: the Markdown in docs/exercises/ run as steps, with a check and a reset each."""
