"""The shared fake runner (tests/fakes.py), under the name the trust tests import."""

from tests.fakes import Answer, FakeRunner

__all__ = ["Answer", "FakeRunner"]
