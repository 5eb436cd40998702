"""Saved connections to TESSERA stores, the public presets, and their XML exchange format
(like QGIS's other connection types). Qt-free; the QGIS side stores them in QgsSettings.

A connection never holds a secret: S3 keys live in a QGIS authentication configuration,
referenced by its id (`authcfg`).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field, fields

from .errors import NotTessera, NotZarrV3, ReadError, StoreNotFound, TesseraError
from .storeref import StoreRef
from .urls import redact_url

GATEWAY = "https://data.source.coop/tessera/tessera/zarr/{dataset}"
DIRECT = "https://s3.us-west-2.amazonaws.com/us-west-2.opendata.source.coop/tessera/tessera/zarr/{dataset}"
DATASETS = ("v1", "v1.1", "v1.1-dclimate", "v2-2B-L~beta1")
SAMPLE_NAME = "Sample data (offline)"
SAMPLE_URL = "sample:"  # resolved to the bundled sample store, built on first use
OLD_NAMES = {"endpoint_url": "s3_endpoint", "region": "s3_region"}


@dataclass(frozen=True)
class Connection:
    name: str
    url: str
    kind: str = "custom"  # "preset", "sample" or "custom"
    anon: bool = False
    s3_endpoint: str = ""
    s3_region: str = ""
    authcfg: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a connection needs a name")
        if not self.url.strip():
            raise ValueError("a connection needs a URL or folder")

    @property
    def editable(self) -> bool:
        return self.kind == "custom"

    def ref(self, url: str | None = None) -> StoreRef:
        """The StoreRef of this connection (`url`: its resolved URL, for the sample)."""
        return StoreRef(url or self.url, s3_endpoint=self.s3_endpoint, s3_region=self.s3_region, anon=self.anon,
                        authcfg=self.authcfg)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra", None)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Connection":
        """From settings or XML attributes; the names saved before 0.3 (endpoint_url,
        region) are read too."""
        d = {OLD_NAMES.get(k, k): v for k, v in d.items()}
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in names})


def presets() -> list[Connection]:
    """The public TESSERA datasets (gateway and direct bucket) and the offline sample."""
    out = [Connection(SAMPLE_NAME, SAMPLE_URL, kind="sample")]
    for ds in DATASETS:
        out.append(Connection(f"TESSERA {ds} (direct bucket)", DIRECT.format(dataset=ds), kind="preset"))
        out.append(Connection(f"TESSERA {ds} (gateway)", GATEWAY.format(dataset=ds), kind="preset"))
    return out


def to_xml(connections: list[Connection]) -> str:
    root = ET.Element("qgsTesseraConnections", version="1.0")
    for c in connections:
        attrs = {k: ("1" if v is True else "0" if v is False else str(v)) for k, v in c.to_dict().items()
                 if k != "kind"}
        ET.SubElement(root, "tessera", attrs)
    ET.indent(root)
    return "<!DOCTYPE connections>\n" + ET.tostring(root, encoding="unicode") + "\n"


def from_xml(text: str) -> list[Connection]:
    """Connections from an exported XML file (imported as custom connections)."""
    try:
        root = ET.fromstring(text.replace("<!DOCTYPE connections>", ""))
    except ET.ParseError as exc:
        raise ValueError(f"not a connections file: {exc}") from None
    if root.tag != "qgsTesseraConnections":
        raise ValueError("not a TESSERA connections file (expected <qgsTesseraConnections>)")
    out = []
    for el in root.findall("tessera"):
        a = el.attrib
        out.append(Connection.from_dict({**a, "anon": a.get("anon") == "1", "kind": "custom"}))
    return out


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """(category, message) for a failed connect: unreachable, timeout, forbidden, certificate,
    not found, not Zarr v3, not TESSERA, or error."""
    text = redact_url(str(exc))
    if isinstance(exc, NotZarrV3):
        return "not zarr v3", text
    if isinstance(exc, NotTessera):
        return "not tessera", text
    if isinstance(exc, StoreNotFound):
        return "not found", text
    if isinstance(exc, ReadError):
        kind = getattr(exc, "kind", "") or ""
        if kind in ("timeout", "unreachable", "forbidden", "not found", "certificate"):
            return kind, text
        return "error", text
    if isinstance(exc, TesseraError):
        return "error", text
    return "error", f"{type(exc).__name__}: {text}"
