"""A tiny baseline grayscale JPEG, written by hand (no imaging library is
installed here): 32x16 pixels, eight 8x8 blocks of flat gray levels (DC only,
standard luminance DC Huffman table, an AC table holding only end-of-block).
Used as the thumbnailer target's seed; `python3 make_jpeg.py OUT` writes it."""

import struct
import sys

# Standard luminance DC table (ITU T.81, Table K.3).
DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
DC_VALS = list(range(12))


def codes(bits, vals):
    out, code, k = {}, 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            out[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return out


def segment(marker, payload):
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def jpeg(width, height, levels):
    dc = codes(DC_BITS, DC_VALS)
    bits = []

    def put(value, length):
        bits.extend((value >> (length - 1 - i)) & 1 for i in range(length))

    previous = 0
    for level in levels:
        # A flat block at `level` has DC (level - 128) x 8; quantised by 8.
        coefficient = level - 128
        diff, previous = coefficient - previous, coefficient
        size = abs(diff).bit_length()
        put(*dc[size])
        if size:
            put(diff if diff > 0 else diff + (1 << size) - 1, size)
        put(0, 1)  # AC: end of block
    bits.extend([1] * (-len(bits) % 8))
    data = bytearray()
    for i in range(0, len(bits), 8):
        byte = int("".join(map(str, bits[i : i + 8])), 2)
        data.append(byte)
        if byte == 0xFF:
            data.append(0)
    out = b"\xff\xd8"
    out += segment(0xFFDB, bytes([0]) + bytes([8] * 64))
    out += segment(0xFFC0, struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0]))
    out += segment(0xFFC4, bytes([0x00]) + bytes(DC_BITS) + bytes(DC_VALS))
    out += segment(0xFFC4, bytes([0x10]) + bytes([1] + [0] * 15) + bytes([0x00]))
    out += segment(0xFFDA, bytes([1, 1, 0x00, 0, 63, 0]))
    return out + bytes(data) + b"\xff\xd9"


if __name__ == "__main__":
    with open(sys.argv[1], "wb") as f:
        f.write(jpeg(32, 16, [40, 80, 120, 160, 200, 240, 128, 16]))
