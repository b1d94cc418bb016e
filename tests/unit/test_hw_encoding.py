"""ioctl numbers per architecture and struct packing per endianness and word size.

Reference values follow the kernel headers: asm-generic/ioctl.h and arch/powerpc/include/uapi/asm/ioctl.h.
"""

import pytest

from kharness.hw.ioctl import GENERIC, POWERPC, layout_for, parse_request
from kharness.hw.payload import layout, pack, parse_description, unpack


def test_generic_and_powerpc_layouts():
    assert layout_for("x86") is GENERIC and layout_for("arm64") is GENERIC and layout_for("arm") is GENERIC
    assert layout_for("powerpc") is POWERPC
    # _IOR('T', 0x2A, 44): generic read=2<<30; powerpc read=2<<29
    assert parse_request("_IOR('T', 0x2A, 44)", GENERIC) == 0x802C542A
    assert parse_request("_IOR('T', 0x2A, 44)", POWERPC) == 0x402C542A
    # _IOW: generic write=1<<30, powerpc write=4<<29
    assert parse_request("_IOW('k', 2, 8)", GENERIC) == 0x40086B02
    assert parse_request("_IOW('k', 2, 8)", POWERPC) == 0x80086B02
    # _IOWR: generic 3<<30, powerpc 6<<29
    assert parse_request("_IOWR('k', 1, 88)", GENERIC) == 0xC0586B01
    assert parse_request("_IOWR('k', 1, 88)", POWERPC) == 0xC0586B01
    # _IO: generic none=0, powerpc none=1<<29
    assert parse_request("_IO('k', 3)", GENERIC) == 0x00006B03
    assert parse_request("_IO('k', 3)", POWERPC) == 0x20006B03


def test_request_forms_and_errors():
    assert parse_request(0x5401, GENERIC) == 0x5401
    assert parse_request("0x5401", GENERIC) == 0x5401
    assert parse_request("_IOR(0x6b, 7)", GENERIC, payload_size=12) == parse_request("_IOR('k', 7, 12)", GENERIC)
    assert parse_request("_IOR('k', 7, payload)", GENERIC, payload_size=12) == 0x800C6B07
    with pytest.raises(ValueError, match="does not fit in 13 bits"):
        parse_request("_IOR('k', 1, 8192)", POWERPC)
    assert parse_request("_IOR('k', 1, 8192)", GENERIC) == 0x80006B01 | (8192 << 16)
    with pytest.raises(ValueError, match="neither a number nor"):
        parse_request("IOWR(k)", GENERIC)
    with pytest.raises(ValueError, match="give the size"):
        parse_request("_IOW('k', 1)", GENERIC)
    with pytest.raises(ValueError, match="takes no size"):
        parse_request("_IO('k', 1, 4)", GENERIC)


MIXED = [["u8", 1], ["u32", 0x01020304], ["u16", 0xBEEF], ["u64", 0x1122334455667788], ["char[5]", "hey"]]


def test_layout_alignment_and_tail_padding():
    lay = layout([t for t, _ in MIXED], endian="little", bits=64)
    assert [f.offset for f in lay.fields] == [0, 4, 8, 16, 24]
    assert lay.size == 32  # 29 rounded up to the u64's alignment
    assert layout(["long", "u8"], endian="little", bits=64).size == 16
    assert layout(["long", "u8"], endian="little", bits=32).size == 8   # 32-bit: long is 4 bytes


def test_pack_little_and_big_endian():
    d = parse_description(MIXED, "payload")
    le = pack(d, endian="little", bits=64)
    be = pack(d, endian="big", bits=64)
    assert le[4:8] == b"\x04\x03\x02\x01" and be[4:8] == b"\x01\x02\x03\x04"
    assert le[8:10] == b"\xef\xbe" and be[8:10] == b"\xbe\xef"
    assert le[16:24] == bytes.fromhex("8877665544332211") and be[16:24] == bytes.fromhex("1122334455667788")
    assert le[24:29] == b"hey\0\0" == be[24:29]
    assert le[1:4] == b"\0\0\0"  # padding is zero
    types = [t for t, _ in MIXED]
    assert unpack(types, be, endian="big", bits=64) == [1, 0x01020304, 0xBEEF, 0x1122334455667788, "hey"]
    assert unpack(types, le, endian="little", bits=64) == unpack(types, be, endian="big", bits=64)


def test_pack_errors():
    with pytest.raises(ValueError, match="does not fit in a u8"):
        pack([("u8", 256)], endian="little", bits=64)
    with pytest.raises(ValueError, match="with its terminating NUL"):
        pack([("char[3]", "abc")], endian="little", bits=64)
    with pytest.raises(ValueError, match="unknown field type 'u24'"):
        pack([("u24", 1)], endian="little", bits=64)
    with pytest.raises(ValueError, match="list of \\[type, value\\] pairs"):
        parse_description([["u32"]], "payload")
    with pytest.raises(ValueError, match="needs an integer"):
        pack([("u32", "5")], endian="little", bits=64)
    assert pack([("u8[4]", "deadbeef")], endian="big", bits=32) == bytes.fromhex("deadbeef")
