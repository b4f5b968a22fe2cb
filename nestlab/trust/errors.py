"""Errors of the trust chain, so callers can tell a bad input from a broken TPM from a failed check.

A failed *check* (a kernel whose signature does not verify, a log that does not replay) is an error
here only where the caller asked for a yes/no answer; attestation never raises for a failed check,
it returns a verdict that says why it failed.
"""

from __future__ import annotations

from nestlab.errors import NestlabError, UsageError


class TrustError(NestlabError):
    """Base of every error raised by nestlab.trust."""


class KeyStoreError(TrustError):
    """The lab key directory is incomplete, unsafe or could not be written."""


class TpmError(TrustError):
    """A tpm2-tools command or the swtpm process failed."""


class EventLogError(TrustError, UsageError):
    """An event log is truncated, malformed or internally inconsistent."""


class PolicyError(TrustError, UsageError):
    """A measurement policy document is malformed."""


class QuoteFormatError(TrustError):
    """A TPM structure (quote, public area) could not be parsed."""


class SignatureError(TrustError):
    """A signature does not verify (kernel image, quote)."""


class ManifestError(TrustError, UsageError):
    """A file manifest is malformed."""


class RegistrationError(TrustError):
    """A host could not prove its attestation key is a restricted key resident in its TPM."""


class MeasurementError(TrustError):
    """A measurement could not be extended or logged; the host will fail attestation until reboot."""
