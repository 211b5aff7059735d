"""The wire format: 4-byte big-endian length, then one UTF-8 JSON object; bad frames cost only themselves."""

import pytest

from relieve_app.pool.framing import HEADER, MAX_FRAME, FrameDecoder, FrameError, encode

FIRST = {"e": "first", "a": [1, 2.5, "é ✓", None, True, {"nested": [[]]}]}
SECOND = {"e": "second", "a": ["x" * 40]}
AFTER = {"e": "after", "a": []}


def raw(payload):
    """A frame around any bytes, as a broken or hostile peer could send it."""
    return HEADER.pack(len(payload)) + payload


def feed_chunks(decoder, data, cuts):
    out = []
    start = 0
    for cut in [*cuts, len(data)]:
        out += decoder.feed(data[start:cut])
        start = cut
    return out


def test_round_trip():
    assert FrameDecoder().feed(encode(FIRST)) == [FIRST]


def test_header_is_the_payload_length_big_endian():
    data = encode({"a": 1})
    assert data[:4] == (len(data) - 4).to_bytes(4, "big")
    assert data[4:] == b'{"a":1}'


def test_a_frame_split_at_every_byte_boundary_decodes_once():
    data = encode(FIRST) + encode(SECOND)
    for cut in range(len(data) + 1):
        decoder = FrameDecoder()
        assert feed_chunks(decoder, data, [cut]) == [FIRST, SECOND], cut
        assert decoder.pending == 0


def test_frames_fed_one_byte_at_a_time():
    data = encode(FIRST) + encode(SECOND)
    decoder = FrameDecoder()
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
        if i < len(data) - 1:
            assert out in ([], [FIRST]), i
    assert out == [FIRST, SECOND]


def test_several_frames_in_one_chunk_come_out_in_order():
    frames = [{"e": "n", "a": [i]} for i in range(50)]
    assert FrameDecoder().feed(b"".join(encode(f) for f in frames)) == frames


def test_an_incomplete_frame_waits_for_its_rest():
    data = encode(FIRST)
    decoder = FrameDecoder()
    assert decoder.feed(data[:-1]) == []
    assert decoder.pending == len(data) - 1
    assert decoder.feed(data[-1:]) == [FIRST]


def test_oversized_frame_is_refused_on_encode():
    with pytest.raises(FrameError, match="exceeds the 50-byte cap"):
        encode({"a": "x" * 100}, max_frame=50)
    exact = {"a": "x" * 42}  # {"a":"…"} is 50 bytes
    assert len(encode(exact, max_frame=50)) == 4 + 50


def test_default_cap_is_one_mebibyte():
    assert MAX_FRAME == 1 << 20
    with pytest.raises(FrameError):
        encode({"a": "x" * MAX_FRAME})


def test_oversized_frame_is_skipped_and_the_next_one_decoded():
    data = raw(b'{"a":"' + b"x" * 200 + b'"}') + encode(AFTER)
    out = FrameDecoder(max_frame=50).feed(data)
    assert len(out) == 2
    assert isinstance(out[0], FrameError)
    assert "exceeds the 50-byte cap" in str(out[0])
    assert out[1] == AFTER


def test_oversized_frame_split_anywhere_is_reported_once_and_skipped():
    data = raw(b"y" * 120) + encode(AFTER) + encode(SECOND)
    for cut in range(len(data) + 1):
        decoder = FrameDecoder(max_frame=100)
        out = feed_chunks(decoder, data, [cut])
        assert [type(o) for o in out] == [FrameError, dict, dict], cut
        assert out[1:] == [AFTER, SECOND]
        assert decoder.pending == 0


def test_oversized_frame_fed_one_byte_at_a_time_is_skipped():
    data = raw(b"z" * 300) + encode(AFTER)
    decoder = FrameDecoder(max_frame=100)
    out = feed_chunks(decoder, data, range(1, len(data)))
    assert len(out) == 2 and isinstance(out[0], FrameError) and out[1] == AFTER


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe{}", "not UTF-8 JSON"),
        (b"", "not UTF-8 JSON"),
        (b"[1, 2]", "holds a list"),
        (b"3", "holds a int"),
        (b'"text"', "holds a str"),
        (b"null", "holds a NoneType"),
    ],
)
def test_a_payload_that_is_not_a_json_object_is_a_frame_error_and_the_next_frame_decodes(payload, message):
    out = FrameDecoder().feed(raw(payload) + encode(AFTER))
    assert len(out) == 2
    assert isinstance(out[0], FrameError)
    assert message in str(out[0])
    assert out[1] == AFTER


def test_values_json_cannot_carry_are_refused_on_encode():
    with pytest.raises(FrameError, match="not JSON serialisable"):
        encode({"a": [object()]})
    with pytest.raises(FrameError, match="not JSON serialisable"):
        encode({"a": float("nan")})


def test_frame_error_is_a_value_error():
    assert issubclass(FrameError, ValueError)
