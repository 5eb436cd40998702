"""UTM zone arithmetic shared by the sample generator and the reader."""
from __future__ import annotations

import math


def zone_of_lon(lon: float) -> int:
    """UTM zone (1..60) of a longitude, as TESSERA assigns pixels to zone groups."""
    return min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))


def zone_lon_bounds(zone: int) -> tuple[float, float]:
    """West and east meridians of a UTM zone."""
    west = -180.0 + 6.0 * (zone - 1)
    return west, west + 6.0


def zone_epsg(zone: int) -> str:
    """TESSERA always uses the northern code; southern areas have negative northings."""
    return f"EPSG:{32600 + zone}"


def zone_group(zone: int) -> str:
    return f"utm{zone:02d}"
