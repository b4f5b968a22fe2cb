"""TPM structures: parse a quote and key public areas recorded from a real swtpm."""

from __future__ import annotations

import hashlib
import json

import pytest

from nestlab.trust import tpmstruct
from nestlab.trust.errors import QuoteFormatError

from .helpers import FIXTURES, fixture_bytes, recorded_nonce


def test_quote_carries_the_nonce_and_the_quoted_pcrs_digest() -> None:
    quote = tpmstruct.parse_quote(fixture_bytes("quote.msg"))
    values = json.loads((FIXTURES / "pcrs.json").read_text())
    quoted = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11)  # the firmware's PCRs (zero on a swtpm) and nestlab's
    concatenated = b"".join(bytes.fromhex(values[str(index)]) for index in quoted)
    assert quote.nonce == recorded_nonce()
    assert quote.selection == ((tpmstruct.TPM_ALG_SHA256, quoted),)
    assert quote.pcr_digest == hashlib.sha256(concatenated).digest()


def test_quote_signer_is_the_ak_under_the_ek() -> None:
    quote = tpmstruct.parse_quote(fixture_bytes("quote.msg"))
    expected = tpmstruct.ak_qualified_name(fixture_bytes("ek.pub"), fixture_bytes("ak.pub"))
    assert quote.signer == expected
    # the EK's own name is not the signer, and swapping the roles gives another name
    assert tpmstruct.ak_qualified_name(fixture_bytes("ak.pub"), fixture_bytes("ek.pub")) != expected


def test_ak_is_a_restricted_signing_key_and_ek_is_not() -> None:
    ak = tpmstruct.parse_public(fixture_bytes("ak.pub"))
    ek = tpmstruct.parse_public(fixture_bytes("ek.pub"))
    assert ak.attributes & tpmstruct.AK_REQUIRED == tpmstruct.AK_REQUIRED
    assert not ek.attributes & tpmstruct.SIGN
    assert ak.name[:2] == b"\x00\x0b"
    assert ak.name[2:] == hashlib.sha256(fixture_bytes("ak.pub")[2:]).digest()


@pytest.mark.parametrize("size", [0, 5, 40, 142])
def test_truncated_quote_is_refused(size: int) -> None:
    with pytest.raises(QuoteFormatError, match="truncated"):
        tpmstruct.parse_quote(fixture_bytes("quote.msg")[:size])


def test_quote_with_trailing_bytes_is_refused() -> None:
    with pytest.raises(QuoteFormatError, match="trailing"):
        tpmstruct.parse_quote(fixture_bytes("quote.msg") + b"\x00")


def test_non_tpm_data_is_refused() -> None:
    message = bytearray(fixture_bytes("quote.msg"))
    message[0] = 0
    with pytest.raises(QuoteFormatError, match="not made by a TPM"):
        tpmstruct.parse_quote(bytes(message))


def test_other_attestation_types_are_refused() -> None:
    message = bytearray(fixture_bytes("quote.msg"))
    message[5] = 0x17  # TPM_ST_ATTEST_CERTIFY
    with pytest.raises(QuoteFormatError, match="not a quote"):
        tpmstruct.parse_quote(bytes(message))


def test_public_area_size_must_match() -> None:
    with pytest.raises(QuoteFormatError, match="trailing"):
        tpmstruct.parse_public(fixture_bytes("ak.pub") + b"\x01")
    with pytest.raises(QuoteFormatError, match="truncated"):
        tpmstruct.parse_public(fixture_bytes("ak.pub")[:100])
