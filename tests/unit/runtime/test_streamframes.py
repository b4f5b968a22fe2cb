"""The pod stream protocol's codec: frames, requests, exit payloads (pure)."""

from __future__ import annotations

import pytest

from nestlab.runtime import streamframes as sf
from nestlab.runtime.poddesc import unquote
from nestlab.runtime.streamframes import Frame, FrameDecoder, FrameType, StreamProtocolError


def test_frame_layout_is_id_type_length_payload_big_endian() -> None:
    wire = sf.encode(Frame(0x01020304, FrameType.DATA, b"hi"))
    assert wire == b"\x01\x02\x03\x04" + b"\x02" + b"\x00\x00\x00\x02" + b"hi"


def test_decoder_reassembles_frames_split_anywhere() -> None:
    frames = [
        Frame(7, FrameType.STDOUT, b"hello"),
        Frame(8, FrameType.EXIT, b"0 0"),
        Frame(7, FrameType.OPENED),
    ]
    wire = b"".join(sf.encode(f) for f in frames)
    for cut in range(len(wire) + 1):
        decoder = FrameDecoder()
        assert decoder.feed(wire[:cut]) + decoder.feed(wire[cut:]) == frames
    decoder = FrameDecoder()
    assert [f for byte in wire for f in decoder.feed(bytes([byte]))] == frames


def test_decoder_refuses_oversized_zero_id_and_unknown_type() -> None:
    with pytest.raises(StreamProtocolError, match="announces 65537 bytes"):
        FrameDecoder().feed(sf.HEADER.pack(1, FrameType.STDOUT, sf.MAX_PAYLOAD + 1))
    with pytest.raises(StreamProtocolError, match="session id 0"):
        FrameDecoder().feed(sf.HEADER.pack(0, FrameType.STDOUT, 0))
    with pytest.raises(StreamProtocolError, match="unknown type 99"):
        FrameDecoder().feed(sf.HEADER.pack(3, 99, 0))


def test_encode_refuses_what_pod_init_could_not_read() -> None:
    with pytest.raises(ValueError, match="out of range"):
        sf.encode(Frame(0, FrameType.DATA))
    with pytest.raises(ValueError, match="exceeds 65536"):
        sf.encode(Frame(1, FrameType.DATA, b"x" * (sf.MAX_PAYLOAD + 1)))


def test_data_is_split_at_the_frame_limit() -> None:
    data = bytes(range(256)) * 600  # 153600 bytes: 65536 + 65536 + 22528
    wire = b"".join(sf.encode_data(5, FrameType.DATA, data))
    frames = FrameDecoder().feed(wire)
    assert [len(f.payload) for f in frames] == [65536, 65536, 22528]
    assert b"".join(f.payload for f in frames) == data
    assert sf.encode_data(5, FrameType.DATA, b"") == []


def test_exec_request_quotes_every_token_and_keeps_empty_arguments() -> None:
    payload = sf.exec_request("web", ["sh", "-c", "echo a b; exit 3", ""], tty=True, stdin=False)
    words = payload.decode().split(" ")
    assert words[:4] == ["exec", "web", "1", "0"]
    assert [unquote(w) for w in words[4:]] == ["sh", "-c", "echo a b; exit 3", "\0"]  # %00: pod-init's ""
    assert words[-1] == "%00"
    with pytest.raises(ValueError, match="needs a command"):
        sf.exec_request("web", [], tty=False, stdin=False)


def test_attach_and_port_requests() -> None:
    assert sf.attach_request("main", tty=False, stdin=True) == b"attach main 0 1"
    assert sf.port_request(8080) == b"port 8080"
    with pytest.raises(ValueError, match="not a TCP port"):
        sf.port_request(70000)


def test_resize_payload_is_cols_rows() -> None:
    assert sf.resize_payload(120, 40) == b"120 40"
    assert sf.resize_payload(-1, 1 << 20) == b"0 65535"


def test_exit_payload_gives_code_and_signal_killed_is_128_plus() -> None:
    assert sf.parse_exit(b"3 0") == (3, 0)
    assert sf.parse_exit(b"137 9") == (137, 9)
    assert sf.parse_exit(b"0 9") == (137, 9)
    with pytest.raises(StreamProtocolError, match="not 'CODE SIGNAL'"):
        sf.parse_exit(b"three")
