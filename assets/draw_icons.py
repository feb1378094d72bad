"""Draw the app icon, favicon and splash as PNGs with the standard library only.

Run from this directory: ``python draw_icons.py``. Kept beside the images so they can be
redrawn (a shield with a check mark: the governor's approval) without any download.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable

Pixel = tuple[int, int, int, int]
NAVY: Pixel = (11, 31, 58, 255)
GOLD: Pixel = (242, 184, 51, 255)
WHITE: Pixel = (255, 255, 255, 255)
CLEAR: Pixel = (0, 0, 0, 0)


def write_png(path: str, width: int, height: int, pixel: Callable[[int, int], Pixel]) -> None:
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter type "none" for each scanline
        for x in range(width):
            raw.extend(pixel(x, y))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                  + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


def shield(u: float, v: float) -> bool:
    """A shield in [-1, 1]²: flat top, sides curving into a point."""
    if v < -0.75 or v > 0.95:
        return False
    half = 0.7 if v < 0.1 else 0.7 * math.sqrt(max(0.0, 1 - ((v - 0.1) / 0.85) ** 2))
    return abs(u) <= half


def check(u: float, v: float) -> bool:
    def stroke(ax: float, ay: float, bx: float, by: float) -> bool:
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((u - ax) * dx + (v - ay) * dy) / (dx * dx + dy * dy)))
        return math.hypot(u - (ax + t * dx), v - (ay + t * dy)) < 0.09

    return stroke(-0.35, 0.02, -0.1, 0.3) or stroke(-0.1, 0.3, 0.38, -0.32)


def icon(size: int) -> Callable[[int, int], Pixel]:
    radius = size * 0.18

    def pixel(x: int, y: int) -> Pixel:
        cx, cy = x + 0.5, y + 0.5
        dx = max(radius - cx, 0, cx - (size - radius))
        dy = max(radius - cy, 0, cy - (size - radius))
        if dx * dx + dy * dy > radius * radius:
            return CLEAR
        u, v = (cx / size - 0.5) * 2.5, (cy / size - 0.5) * 2.5
        if shield(u, v):
            return WHITE if check(u, v) else GOLD
        return NAVY

    return pixel


def splash(size: int) -> Callable[[int, int], Pixel]:
    def pixel(x: int, y: int) -> Pixel:
        u, v = ((x + 0.5) / size * 2 - 1) / 0.8, ((y + 0.5) / size * 2 - 1) / 0.8
        if shield(u, v):
            return NAVY if check(u, v) else GOLD
        return CLEAR

    return pixel


if __name__ == "__main__":
    write_png("icon.png", 512, 512, icon(512))
    write_png("favicon.png", 64, 64, icon(64))
    write_png("splash.png", 384, 384, splash(384))
