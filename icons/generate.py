#!/usr/bin/env python3
"""Draws the SutazAI app icon and writes every size the bundles need.

Why a script instead of a hand-made image: the icon is a few geometric shapes (a rounded
square with a gradient, a hub node wired to three agent nodes on an orbit), so drawing it
from signed distance functions gives crisp, anti-aliased output at each size straight
from the geometry rather than a blurry downscale, needs nothing beyond the Python
standard library, and anyone can regenerate or tweak it:

    python3 icons/generate.py            # writes into icons/ beside this file

Outputs: 32x32.png, 128x128.png, 128x128@2x.png, icon.png (512), icon.ico (16-256, PNG
entries) for the Windows installers, and icon.icns (128-1024 PNG entries) for macOS.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from pathlib import Path

# Palette: indigo to cyan gradient behind white nodes.
TOP_LEFT = (79, 70, 229)  # #4F46E5
BOTTOM_RIGHT = (6, 182, 212)  # #06B6D4
WHITE = (255, 255, 255)

# Geometry in units of the icon's edge length, origin at the centre.
CORNER_RADIUS = 0.22
HALF_EDGE = 0.5
HUB_RADIUS = 0.125
ORBIT_RADIUS = 0.27
ORBIT_WIDTH = 0.018
NODE_RADIUS = 0.075
SPOKE_WIDTH = 0.05
NODE_ANGLES = (-90.0, 30.0, 150.0)


def rounded_square(x: float, y: float, half: float, radius: float) -> float:
    """Signed distance to a square of half-edge `half` with rounded corners."""
    qx = abs(x) - half + radius
    qy = abs(y) - half + radius
    outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
    inside = min(max(qx, qy), 0.0)
    return outside + inside - radius


def circle(x: float, y: float, cx: float, cy: float, r: float) -> float:
    return math.hypot(x - cx, y - cy) - r


def segment(x: float, y: float, ax: float, ay: float, bx: float, by: float, half_width: float) -> float:
    """Signed distance to a capsule (a line segment with round ends)."""
    px, py = x - ax, y - ay
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, (px * dx + py * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - dx * t, py - dy * t) - half_width


def coverage(distance_px: float) -> float:
    """Fraction of a pixel covered by a shape whose edge is `distance_px` away."""
    return max(0.0, min(1.0, 0.5 - distance_px))


def over(dst: tuple[float, float, float, float], rgb: tuple[int, int, int], alpha: float):
    """Composites a straight-alpha colour over a straight-alpha pixel."""
    if alpha <= 0.0:
        return dst
    dr, dg, db, da = dst
    out_a = alpha + da * (1.0 - alpha)
    if out_a <= 0.0:
        return (0.0, 0.0, 0.0, 0.0)
    mix = lambda s, d: (s * alpha + d * da * (1.0 - alpha)) / out_a  # noqa: E731
    return (mix(rgb[0], dr), mix(rgb[1], dg), mix(rgb[2], db), out_a)


def render(size: int) -> bytes:
    """Returns the icon as raw RGBA rows, `size` x `size`."""
    nodes = [
        (ORBIT_RADIUS * math.cos(math.radians(a)), ORBIT_RADIUS * math.sin(math.radians(a)))
        for a in NODE_ANGLES
    ]
    # At tiny sizes the thin orbit ring turns to mush: thicken strokes to at least ~1px.
    min_stroke = 1.1 / size
    orbit_half = max(ORBIT_WIDTH, min_stroke) / 2
    spoke_half = max(SPOKE_WIDTH, min_stroke * 1.5) / 2
    rows = bytearray()
    for j in range(size):
        rows.append(0)  # PNG filter type "None" for this row
        y = (j + 0.5) / size - 0.5
        for i in range(size):
            x = (i + 0.5) / size - 0.5
            px: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
            bg = coverage(rounded_square(x, y, HALF_EDGE - 0.5 / size, CORNER_RADIUS) * size)
            if bg > 0.0:
                t = max(0.0, min(1.0, (x + y) / 2 + 0.5))
                grad = tuple(round(a + (b - a) * t) for a, b in zip(TOP_LEFT, BOTTOM_RIGHT))
                px = over(px, grad, bg)
                ring = abs(circle(x, y, 0, 0, ORBIT_RADIUS)) - orbit_half
                px = over(px, WHITE, 0.35 * coverage(ring * size) * bg)
                spokes = min(segment(x, y, 0, 0, nx, ny, spoke_half) for nx, ny in nodes)
                px = over(px, WHITE, 0.85 * coverage(spokes * size) * bg)
                dots = min(circle(x, y, nx, ny, NODE_RADIUS) for nx, ny in nodes)
                dots = min(dots, circle(x, y, 0, 0, HUB_RADIUS))
                px = over(px, WHITE, coverage(dots * size) * bg)
            rows.extend(max(0, min(255, round(c))) for c in px[:3])
            rows.append(max(0, min(255, round(px[3] * 255))))
    return bytes(rows)


def png(size: int) -> bytes:
    """Encodes the icon at `size` as an RGBA PNG file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(render(size), 9))
        + chunk(b"IEND", b"")
    )


def ico(images: dict[int, bytes]) -> bytes:
    """Packs PNG images into a Windows .ico (PNG entries are valid since Vista)."""
    sizes = sorted(images)
    offset = 6 + 16 * len(sizes)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    entries, blobs = b"", b""
    for s in sizes:
        data = images[s]
        dim = 0 if s >= 256 else s  # 0 means 256 in the directory entry
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset + len(blobs))
        blobs += data
    return header + entries + blobs


def icns(images: dict[str, bytes]) -> bytes:
    """Packs PNG images into a macOS .icns keyed by OSType (ic07=128 ... ic10=1024)."""
    body = b"".join(kind.encode() + struct.pack(">I", 8 + len(d)) + d for kind, d in images.items())
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    cache: dict[int, bytes] = {}

    def at(size: int) -> bytes:
        if size not in cache:
            cache[size] = png(size)
        return cache[size]

    files = {
        "32x32.png": at(32),
        "128x128.png": at(128),
        "128x128@2x.png": at(256),
        "icon.png": at(512),
        "icon.ico": ico({s: at(s) for s in (16, 24, 32, 48, 64, 256)}),
        "icon.icns": icns({"ic07": at(128), "ic08": at(256), "ic09": at(512), "ic10": at(1024)}),
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
        print(f"{out / name}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
