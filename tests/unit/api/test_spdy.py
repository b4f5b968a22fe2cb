"""SPDY/3.1 frames and header blocks: round trips, kubectl's real bytes, and refusals."""

from __future__ import annotations

import zlib

import pytest

from nestlab.api import spdy

# The first header block kubectl 1.20 and 1.30 send (SYN_STREAM of the exec error stream),
# captured by tests/integration/api/test_spdy_kubectl.py: zlib header 78 f9 (FDICT set), then
# the dictionary's adler32, then {"streamtype": ["error"]} deflated and sync-flushed.
KUBECTL_FIRST_BLOCK = bytes.fromhex("78f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff")

FRAMES: list[spdy.Frame] = [
    spdy.SynStream(1, {"streamtype": ["error"], "port": ["8080"]}, fin=True, unidirectional=True, priority=3),
    spdy.SynReply(1, {}),
    spdy.SynReply(3, {"a": ["x", "y"]}, fin=True),
    spdy.HeadersFrame(5, {"b": ["1"]}, fin=True),
    spdy.RstStream(7, spdy.RstStatus.CANCEL),
    spdy.Settings(((0, 7, 65536), (1, 4, 100)), clear=True),
    spdy.Ping(9),
    spdy.GoAway(11, spdy.GoAwayStatus.PROTOCOL_ERROR),
    spdy.WindowUpdate(0, 32768),
    spdy.Data(13, b"payload", fin=True),
    spdy.Data(15, b""),
]


def roundtrip(frames: list[spdy.Frame]) -> list[spdy.Frame | None]:
    compressor, decompressor = spdy.HeaderCompressor(), spdy.HeaderDecompressor()
    wire = b"".join(spdy.encode(frame, compressor) for frame in frames)
    decoded = []
    while wire:
        header = spdy.parse_header(wire[: spdy.HEADER_SIZE])
        end = spdy.HEADER_SIZE + header.length
        decoded.append(spdy.decode(header, wire[spdy.HEADER_SIZE : end], decompressor))
        wire = wire[end:]
    return decoded


def test_every_frame_round_trips_on_one_connection() -> None:
    assert roundtrip(FRAMES) == FRAMES


def test_dictionary_is_the_one_kubectl_uses() -> None:
    assert KUBECTL_FIRST_BLOCK[1] & 0x20, "FDICT: the block names a preset dictionary"
    assert int.from_bytes(KUBECTL_FIRST_BLOCK[2:6], "big") == zlib.adler32(spdy.HEADER_DICTIONARY)
    assert len(spdy.HEADER_DICTIONARY) == 1423


def test_kubectl_header_block_decompresses() -> None:
    assert spdy.HeaderDecompressor().decompress(KUBECTL_FIRST_BLOCK) == {"streamtype": ["error"]}


def test_our_header_blocks_announce_the_same_dictionary() -> None:
    block = spdy.HeaderCompressor().compress({"x": ["y"]})
    assert block[:6] == KUBECTL_FIRST_BLOCK[:6]
    assert block.endswith(b"\x00\x00\xff\xff"), "each block ends with a sync flush"


def test_header_blocks_share_one_zlib_stream_per_direction() -> None:
    compressor = spdy.HeaderCompressor()
    first, second = compressor.compress({"port": ["80"]}), compressor.compress({"port": ["80"]})
    assert len(second) < len(first), "the second block refers back to the first"
    with pytest.raises(spdy.SpdyError):
        spdy.HeaderDecompressor().decompress(second)  # a fresh stream cannot start mid-way
    decompressor = spdy.HeaderDecompressor()
    assert [decompressor.decompress(first), decompressor.decompress(second)] == [{"port": ["80"]}] * 2


def test_header_names_go_lower_case_and_values_nul_separated() -> None:
    block = spdy.HeaderCompressor().compress({"StreamType": ["data", "error"]})
    raw = zlib.decompressobj(zdict=spdy.HEADER_DICTIONARY).decompress(block)
    assert raw == b"\0\0\0\x01\0\0\0\x0astreamtype\0\0\0\x0adata\0error"


def test_unsupported_version_is_refused_with_the_reason() -> None:
    with pytest.raises(spdy.SpdyError, match=r"SPDY version 2 is not supported"):
        spdy.parse_header(bytes.fromhex("8002000100000000"))


def test_malformed_and_oversized_header_blocks_are_refused() -> None:
    with pytest.raises(spdy.SpdyError, match=r"truncated|malformed"):
        spdy.parse_header_block(b"\0\0\0\x01\0\0\0\x09abc")
    bomb = zlib.compressobj(zdict=spdy.HEADER_DICTIONARY)
    block = bomb.compress(b"\0" * (spdy.MAX_HEADER_BLOCK + 10)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(spdy.SpdyError, match=r"larger than"):
        spdy.HeaderDecompressor().decompress(block)


def test_short_control_frame_is_refused() -> None:
    header = spdy.FrameHeader(True, spdy.FrameType.PING, 0, 2)
    with pytest.raises(spdy.SpdyError, match=r"too short"):
        spdy.decode(header, b"\0\0", spdy.HeaderDecompressor())


def test_unknown_control_frames_are_ignored() -> None:
    header = spdy.FrameHeader(True, 0x77, 0, 0)
    assert spdy.decode(header, b"", spdy.HeaderDecompressor()) is None


def test_data_larger_than_a_frame_is_refused() -> None:
    with pytest.raises(spdy.SpdyError, match=r"cannot carry"):
        spdy.encode(spdy.Data(1, bytes(spdy.MAX_LENGTH + 1)), spdy.HeaderCompressor())
