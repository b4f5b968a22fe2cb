"""Pure parsers for the few TPM 2.0 wire structures a verifier must read itself.

A verifier cannot take the attested host's word for what a quote says: the nonce, the signing
key's qualified name and the PCR digest are read here from the signed TPMS_ATTEST bytes, and the AK's
name is recomputed from its public area. Layouts follow the TPM 2.0 Library spec, part 2
(big-endian, TPM2B = 16-bit size + bytes).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from nestlab.trust.errors import QuoteFormatError

TPM_GENERATED: Final = 0xFF544347  # "\xffTCG": marks data the TPM itself produced
TPM_ST_ATTEST_QUOTE: Final = 0x8018
TPM_ALG_SHA256: Final = 0x000B
TPM_RH_ENDORSEMENT: Final = 0x4000000B

# TPMA_OBJECT bits (part 2, 8.3)
FIXED_TPM: Final = 1 << 1
FIXED_PARENT: Final = 1 << 4
SENSITIVE_DATA_ORIGIN: Final = 1 << 5
RESTRICTED: Final = 1 << 16
SIGN: Final = 1 << 18
AK_REQUIRED: Final = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN


class _Reader:
    """Sequential big-endian reads that fail with the structure's name instead of IndexError."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def take(self, size: int) -> bytes:
        if self._pos + size > len(self._data):
            raise QuoteFormatError(f"{self._what} is truncated at byte {self._pos} (needs {size} more)")
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def u8(self) -> int:
        return int(self.take(1)[0])

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def tpm2b(self) -> bytes:
        return self.take(self.u16())

    def done(self) -> bool:
        return self._pos == len(self._data)


@dataclass(frozen=True)
class PublicArea:
    """The parts of a TPM2B_PUBLIC a verifier looks at."""

    object_type: int
    """TPM_ALG_ID of the key type (1 = RSA, 0x23 = ECC)."""
    name_alg: int
    """Hash algorithm of the key's name."""
    attributes: int
    """TPMA_OBJECT bits."""
    name: bytes
    """nameAlg || H(TPMT_PUBLIC): how the TPM refers to this key in signed structures."""


def parse_public(tpm2b_public: bytes) -> PublicArea:
    """Parse a TPM2B_PUBLIC (as written by tpm2_createak -u / tpm2_readpublic -o)."""
    reader = _Reader(tpm2b_public, "TPM2B_PUBLIC")
    body = reader.tpm2b()
    if not reader.done():
        raise QuoteFormatError("TPM2B_PUBLIC has trailing bytes after its declared size")
    inner = _Reader(body, "TPMT_PUBLIC")
    object_type, name_alg, attributes = inner.u16(), inner.u16(), inner.u32()
    if name_alg != TPM_ALG_SHA256:
        raise QuoteFormatError(f"key name algorithm {name_alg:#06x} is not sha256")
    name = struct.pack(">H", name_alg) + hashlib.sha256(body).digest()
    return PublicArea(object_type, name_alg, attributes, name)


def qualified_name(parent_qualified_name: bytes, name: bytes) -> bytes:
    """QN(child) = nameAlg || H(QN(parent) || name(child)) (part 1, 16: Names)."""
    return struct.pack(">H", TPM_ALG_SHA256) + hashlib.sha256(parent_qualified_name + name).digest()


def ak_qualified_name(ek_public: bytes, ak_public: bytes) -> bytes:
    """The qualified name a quote carries when the AK is a child of this EK in the endorsement hierarchy."""
    endorsement = struct.pack(">I", TPM_RH_ENDORSEMENT)
    ek_qn = qualified_name(endorsement, parse_public(ek_public).name)
    return qualified_name(ek_qn, parse_public(ak_public).name)


@dataclass(frozen=True)
class Quote:
    """A parsed TPMS_ATTEST of type quote."""

    signer: bytes
    """Qualified name of the key that signed it."""
    nonce: bytes
    """extraData: the verifier's challenge."""
    reset_count: int
    """TPM resets (reboots) so far; clockInfo.resetCount."""
    restart_count: int
    """clockInfo.restartCount."""
    selection: tuple[tuple[int, tuple[int, ...]], ...]
    """(hash algorithm, PCR indexes) pairs, in the order the TPM concatenated them."""
    pcr_digest: bytes
    """H(concatenation of the selected PCR values)."""


def parse_quote(message: bytes) -> Quote:
    """Parse the signed message tpm2_quote writes with -m."""
    reader = _Reader(message, "quote message")
    if reader.u32() != TPM_GENERATED:
        raise QuoteFormatError("quote message does not start with TPM_GENERATED_VALUE: not made by a TPM")
    kind = reader.u16()
    if kind != TPM_ST_ATTEST_QUOTE:
        raise QuoteFormatError(f"attestation structure type {kind:#06x} is not a quote (0x8018)")
    signer = reader.tpm2b()
    nonce = reader.tpm2b()
    reader.take(8)  # clockInfo.clock
    reset_count, restart_count = reader.u32(), reader.u32()
    reader.take(1)  # clockInfo.safe
    reader.take(8)  # firmwareVersion
    selection = []
    for _ in range(reader.u32()):
        alg = reader.u16()
        bitmap = reader.take(reader.u8())
        indexes = tuple(
            byte_index * 8 + bit
            for byte_index, byte in enumerate(bitmap)
            for bit in range(8)
            if byte & (1 << bit)
        )
        selection.append((alg, indexes))
    pcr_digest = reader.tpm2b()
    if not reader.done():
        raise QuoteFormatError("quote message has trailing bytes")
    return Quote(signer, nonce, reset_count, restart_count, tuple(selection), pcr_digest)
