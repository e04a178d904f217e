"""An SVG site plan drawn from a site's configuration (``config/sites/*.yaml``).

Sites carry no coordinates, so the plan is a schematic: the compound is a rectangle whose
sides are the perimeter zones (by compass word in id or name: north/北, east/东, south/南,
west/西, else in order), gates sit on their side, buildings are laid out in rows, doors
along their building, and every device is a marker (``data-device``) the console colours
by its live state.
"""

from __future__ import annotations

import math
from html import escape
from xml.etree.ElementTree import Element, SubElement, tostring

from gateway.config.sites import DeviceConfig, PlaceConfig, SiteConfig

W, H = 1000, 640
X0, Y0, X1, Y1 = 70, 60, 930, 580  # the compound's fence
SIDES = ("north", "east", "south", "west")
# A gate's devices sit inside the fence, this far from the gate's label.
INWARD = {"north": (0, 26), "south": (0, -26), "east": (-58, 0), "west": (58, 0)}
FAN, STEP = 6, 20  # markers per row around their point, and their spacing
WORDS = {
    "north": ("north", "北"),
    "east": ("east", "东"),
    "south": ("south", "南"),
    "west": ("west", "西"),
}


def _side_of(place: PlaceConfig) -> str | None:
    text = f"{place.id} {place.name}".lower()
    for side, words in WORDS.items():
        if any(w in text for w in words):
            return side
    return None


def _assign_sides(places: list[PlaceConfig]) -> dict[str, str]:
    out: dict[str, str] = {}
    free = list(SIDES)
    for p in places:
        side = _side_of(p)
        if side is not None:
            out[p.id] = side
            if side in free:
                free.remove(side)
    for i, p in enumerate(x for x in places if x.id not in out):
        out[p.id] = free[i % len(free)] if free else SIDES[i % 4]
    return out


def _side_line(side: str) -> tuple[float, float, float, float]:
    return {
        "north": (X0, Y0, X1, Y0),
        "east": (X1, Y0, X1, Y1),
        "south": (X0, Y1, X1, Y1),
        "west": (X0, Y0, X0, Y1),
    }[side]


def _mid(side: str, frac: float = 0.5) -> tuple[float, float]:
    x0, y0, x1, y1 = _side_line(side)
    return x0 + (x1 - x0) * frac, y0 + (y1 - y0) * frac


def _el(parent: Element, tag: str, **attrs: object) -> Element:
    return SubElement(
        parent, tag, {k.rstrip("_").replace("_", "-"): str(v) for k, v in attrs.items()}
    )


def _text(parent: Element, x: float, y: float, text: str, cls: str = "lbl") -> None:
    t = _el(parent, "text", x=round(x, 1), y=round(y, 1), class_=cls, text_anchor="middle")
    t.text = text


def label_width(text: str, font_px: float) -> float:
    """About how wide a label is drawn: a Chinese character is as wide as the font is high,
    a Latin letter or digit a little over half of it."""
    return sum(font_px if ord(ch) > 0x2E80 else font_px * 0.6 for ch in text)


def render(site: SiteConfig) -> str:
    """The plan as an SVG document (no script, no external references)."""
    svg = Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {W} {H}",
            "class": "siteplan",
            "role": "img",
            "aria-label": site.name or site.id,
            "data-site": site.id,
        },
    )
    title = SubElement(svg, "title")
    title.text = f"{site.name} {site.address}".strip()
    by_kind: dict[str, list[PlaceConfig]] = {}
    for p in site.places:
        by_kind.setdefault(p.kind, []).append(p)
    parents = {p.id: p.parent for p in site.places}
    pos: dict[str, tuple[float, float]] = {}
    # Where a place's devices go when that is not the place's own point: beside a label
    # (gates, loose doors), never on it.
    anchor: dict[str, tuple[float, float]] = {}

    _el(svg, "rect", x=X0, y=Y0, width=X1 - X0, height=Y1 - Y0, class_="compound", rx=6)
    _text(svg, W / 2, 30, site.name or site.id, "title")

    # perimeter zones: the fence sides
    zones = by_kind.get("perimeter_zone", [])
    zone_side = _assign_sides(zones)
    for z in zones:
        side = zone_side[z.id]
        x0, y0, x1, y1 = _side_line(side)
        g = _el(svg, "g", class_="zone", data_place=z.id)
        _el(g, "line", x1=x0, y1=y0, x2=x1, y2=y1)
        mx, my = _mid(side, 0.22)
        off = {"north": (0, -12), "south": (0, 22), "east": (0, -8), "west": (0, -8)}[side]
        label_x = mx + (34 if side == "east" else -34 if side == "west" else 0)
        _text(g, label_x, my + off[1], z.name or z.id, "lbl zone-lbl")
        pos[z.id] = _mid(side, 0.8)

    # gates: on their side, spread if several share one
    gates = by_kind.get("gate", [])
    gate_side = _assign_sides(gates) if gates else {}
    per_side: dict[str, list[str]] = {}
    for gid, side in gate_side.items():
        per_side.setdefault(side, []).append(gid)
    for side, ids in per_side.items():
        for i, gid in enumerate(ids):
            gx, gy = _mid(side, (i + 1) / (len(ids) + 1))
            gate = next(p for p in gates if p.id == gid)
            g = _el(svg, "g", class_="gate", data_place=gid)
            width = max(68, label_width(gate.name or gid, 12) + 12)
            _el(g, "rect", x=round(gx - width / 2, 1), y=gy - 9, width=round(width, 1), height=18,
                rx=3)  # fmt: skip
            _text(g, gx, gy + 5, gate.name or gid, "lbl gate-lbl")
            pos[gid] = (gx, gy)
            ix, iy = INWARD[side]
            anchor[gid] = (gx + ix, gy + iy)

    # buildings in rows
    buildings = by_kind.get("building", [])
    n = len(buildings)
    if n:
        cols = max(1, math.ceil(math.sqrt(n * 1.6)))
        rows = math.ceil(n / cols)
        cw, ch = (X1 - X0 - 120) / cols, (Y1 - Y0 - 120) / rows
        bw, bh = min(170, cw * 0.7), min(120, ch * 0.55)
        for i, b in enumerate(buildings):
            r, c = divmod(i, cols)
            cx = X0 + 60 + cw * (c + 0.5)
            cy = Y0 + 60 + ch * (r + 0.5)
            g = _el(svg, "g", class_="building", data_place=b.id)
            _el(g, "rect", x=round(cx - bw / 2, 1), y=round(cy - bh / 2, 1), width=round(bw, 1),
                height=round(bh, 1), rx=4)  # fmt: skip
            _text(g, cx, cy - bh / 2 + 20, b.name or b.id, "lbl bld-lbl")
            pos[b.id] = (cx, cy)
            units = [p for p in site.places if p.parent == b.id]
            for j, u in enumerate(units):
                ux = cx - bw / 2 + bw * (j + 0.5) / max(1, len(units))
                pos[u.id] = (ux, cy + 8)
                for d in (p for p in site.places if p.parent == u.id and p.kind == "door"):
                    pos[d.id] = (ux, cy + bh / 2)
                    _el(svg, "rect", x=round(ux - 7, 1), y=round(cy + bh / 2 - 3, 1), width=14,
                        height=6, class_="door", data_place=d.id)  # fmt: skip

    # other doors: beside their gate, or in the middle band
    loose = [d for d in by_kind.get("door", []) if d.id not in pos]
    middle = [d for d in loose if parents.get(d.id) not in pos or parents.get(d.id) == "compound"]
    for i, d in enumerate(middle):
        x = X0 + (X1 - X0) * (i + 1) / (len(middle) + 1)
        y = (Y0 + Y1) / 2
        g = _el(svg, "g", class_="door-loose", data_place=d.id)
        width = max(80, label_width(d.name or d.id, 11) + 14)
        _el(g, "rect", x=round(x - width / 2, 1), y=y - 10, width=round(width, 1), height=20, rx=3,
            class_="door")  # fmt: skip
        _text(g, x, y + 5, d.name or d.id, "lbl small")
        pos[d.id] = (x, y)
        anchor[d.id] = (x, y + 24)  # under the label
    for d in loose:
        if d.id in pos:
            continue
        px, py = pos.get(parents.get(d.id) or "", ((X0 + X1) / 2, (Y0 + Y1) / 2))
        inward = 26 if py <= (Y0 + Y1) / 2 else -26
        pos[d.id] = (px + 50, py + inward)
        anchor[d.id] = (px + 50, py + inward * 1.6)  # further in: the door stays visible
        _el(svg, "rect", x=round(px + 43, 1), y=round(py + inward - 3, 1), width=14, height=6,
            class_="door", data_place=d.id)  # fmt: skip

    # devices: markers at their place (walking up the place tree), beside its label, fanned
    # out in rows of six around the point so that no two overlap
    at: dict[tuple[float, float], list[DeviceConfig]] = {}
    for dev in site.devices:
        place = dev.place
        seen: set[str] = set()
        while place is not None and place not in pos and place not in seen:
            seen.add(place)
            place = parents.get(place)
        base = anchor.get(place or "") or pos.get(place or "", ((X0 + X1) / 2, (Y0 + Y1) / 2 + 60))
        at.setdefault(base, []).append(dev)
    devices = _el(svg, "g", class_="devices")
    for (bx, by), group in at.items():
        across = min(len(group), FAN)
        for i, dev in enumerate(group):
            x = bx + (i % FAN - (across - 1) / 2) * STEP
            y = by + (i // FAN) * STEP
            g = _el(devices, "g", class_=f"dev dev-{dev.kind.value}", data_device=dev.id,
                    transform=f"translate({round(x, 1)},{round(y, 1)})")  # fmt: skip
            t = SubElement(g, "title")
            t.text = f"{dev.name or dev.id} ({dev.id})"
            if dev.kind.value == "perimeter":
                _el(g, "path", d="M-9,-6 h13 l6,-4 v20 l-6,-4 h-13 z")
            else:
                _el(g, "circle", r=5 if dev.kind.value == "alarm" else 6.5)
    return tostring(svg, encoding="unicode")


def escape_name(name: str) -> str:
    return escape(name)
