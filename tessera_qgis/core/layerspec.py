"""What a TESSERA map layer shows, as a data-source URI (a query string).

    url=<store>&year=2024&bands=1,2,3          three dequantised embedding bands
    url=<store>&year=2024&pca=global           the store's global PCA (3 components)
    url=<store>&year=2024&pca=view             a PCA fitted to the first view drawn
    url=<store>&year=2024&pca=b64:<...>        a saved PCA fit (travels with the project)
    url=<store>&year=2024&similarity=b64:<...> cosine similarity to a reference embedding

Optional: crs (the layer's CRS), extent (xmin,ymin,xmax,ymax in that CRS, so a project
opens without touching the network), zone, cache (folder), budget (source pixels a view
may need), depth (a Matryoshka prefix for PCA and similarity: 4 or 16 on v2 stores), stretch
(the store's published colours: global, cdf equalised, or zone: the zone's own), authcfg (a QGIS authentication configuration id for S3 keys), s3_endpoint,
s3_region, anon. A secret never goes into a URI, nor does a password inside url=. Qt-free, so it can be tested anywhere.
"""
from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlencode

import numpy as np

from .pca import PCA
from .storeref import StoreRef
from .urls import split_password

DEFAULT_BUDGET = 4096 * 4096
FORBIDDEN = {"key", "secret", "password", "token", "aws_secret_access_key", "aws_access_key_id"}
URL_PASSWORD = ("a password in the store URL does not belong in a layer URI (the project would keep it): "
                "keep it in a QGIS authentication configuration (authcfg=)")


@dataclass(frozen=True)
class LayerSpec:
    store: StoreRef
    year: int
    bands: tuple[int, ...] | None = None
    pca: str | None = None  # "global", "view" or "b64:..."
    similarity: str | None = None  # "b64:..." reference embedding (float32)
    crs: str | None = None
    extent: tuple[float, float, float, float] | None = None
    zone: str | None = None
    budget: int = DEFAULT_BUDGET
    depth: int | None = None  # a Matryoshka prefix (4, 16) for PCA and similarity; None: all dimensions
    stretch: str | None = None  # the published stretch: None/"global", "cdf" (equalised), "zone" (the zone's own)
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.store, StoreRef):
            raise TypeError("LayerSpec.store is a StoreRef (use LayerSpec.of(url, year, ...))")
        if sum(v is not None for v in (self.bands, self.pca, self.similarity)) != 1:
            raise ValueError("a TESSERA layer needs one of bands=I,J,K, pca=global|view|<saved fit> "
                             "or similarity=<reference>")
        if self.similarity is not None and not self.similarity.startswith("b64:"):
            raise ValueError("similarity= takes an encoded reference embedding")
        if self.pca is not None and self.pca not in ("global", "view") and not self.pca.startswith("b64:"):
            raise ValueError(f"pca must be global, view or a saved fit, got {self.pca!r}")
        if self.bands is not None and not 1 <= len(self.bands) <= 128:
            raise ValueError("bands= takes 1 to 128 band numbers")
        if self.depth is not None and self.depth < 1:
            raise ValueError("depth= takes a number of dimensions like 4, 16 or 128")

    @classmethod
    def of(cls, url: str, year: int, *, cache: str | None = None, authcfg: str | None = None,
           s3_endpoint: str | None = None, s3_region: str | None = None, anon: bool = False,
           **fields_) -> "LayerSpec":
        """A spec from a URL and the connection options as keywords (scripts, tests)."""
        ref = StoreRef(str(url), s3_endpoint=s3_endpoint, s3_region=s3_region, anon=anon, authcfg=authcfg,
                       cache=cache)
        return cls(store=ref, year=int(year), **fields_)

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def band_count(self) -> int:
        if self.similarity is not None:
            return 1
        return 3 if self.pca is not None else len(self.bands or ())

    @property
    def mode(self) -> str:
        return "similarity" if self.similarity else "pca" if self.pca else "bands"

    def to_uri(self) -> str:
        if split_password(self.store.url)[2] is not None:
            raise ValueError(URL_PASSWORD)
        items: list[tuple[str, str]] = [self.store.query_items()[0], ("year", str(self.year))]
        if self.bands is not None:
            items.append(("bands", ",".join(map(str, self.bands))))
        elif self.similarity is not None:
            items.append(("similarity", self.similarity))
        else:
            items.append(("pca", self.pca or "global"))
        if self.crs:
            items.append(("crs", self.crs))
        if self.extent:
            items.append(("extent", ",".join(f"{v:.3f}" for v in self.extent)))
        if self.zone:
            items.append(("zone", self.zone))
        items.extend(self.store.query_items()[1:])
        if self.budget != DEFAULT_BUDGET:
            items.append(("budget", str(self.budget)))
        if self.depth is not None:
            items.append(("depth", str(self.depth)))
        if self.stretch and self.stretch != "global":
            items.append(("stretch", self.stretch))
        return urlencode(items, safe=",:/~")

    @classmethod
    def from_uri(cls, uri: str) -> "LayerSpec":
        params = dict(parse_qsl(uri, keep_blank_values=True))
        secret = FORBIDDEN & {k.lower() for k in params}
        if secret:
            raise ValueError("credentials do not belong in a layer URI; use a QGIS authentication "
                             "configuration (authcfg=)")
        if not params.get("url"):
            raise ValueError("a TESSERA layer needs url=")
        if split_password(params["url"])[2] is not None:
            raise ValueError(URL_PASSWORD)
        try:
            year = int(params["year"])
        except (KeyError, ValueError):
            raise ValueError("a TESSERA layer needs year=YYYY") from None
        bands = None
        if params.get("bands"):
            try:
                bands = tuple(int(b) for b in params["bands"].split(","))
            except ValueError:
                raise ValueError(f"bands= must be numbers like 1,2,3, got {params['bands']!r}") from None
        extent = None
        if params.get("extent"):
            try:
                vals = tuple(float(v) for v in params["extent"].split(","))
            except ValueError:
                vals = ()
            if len(vals) != 4:
                raise ValueError(f"extent= must be xmin,ymin,xmax,ymax, got {params['extent']!r}")
            extent = vals
        return cls(store=StoreRef.from_query(params), year=year, bands=bands, pca=params.get("pca") or None,
                   similarity=params.get("similarity") or None,
                   crs=params.get("crs") or None, extent=extent, zone=params.get("zone") or None,
                   budget=int(params.get("budget") or DEFAULT_BUDGET), depth=_int_or_none(params, "depth"),
                   stretch=params.get("stretch") or None)

    def with_(self, **changes) -> "LayerSpec":
        return replace(self, **changes)


def _int_or_none(params: dict, name: str) -> int | None:
    if not params.get(name):
        return None
    try:
        return int(params[name])
    except ValueError:
        raise ValueError(f"{name}= must be a number, got {params[name]!r}") from None


def encode_pca(pca: PCA) -> str:
    """A PCA fit as a compact URI value: b64:<zlib(float32 mean, components, lo, hi)>."""
    arr = np.concatenate([pca.mean, pca.components.ravel(), pca.lo, pca.hi]).astype("<f4")
    return "b64:" + base64.urlsafe_b64encode(zlib.compress(arr.tobytes(), 9)).decode("ascii")


def decode_pca(value: str) -> PCA:
    if not value.startswith("b64:"):
        raise ValueError("not a saved PCA fit")
    try:
        arr = np.frombuffer(zlib.decompress(base64.urlsafe_b64decode(value[4:])), dtype="<f4").astype(np.float64)
    except Exception:
        raise ValueError("the saved PCA fit in the layer URI is damaged") from None
    bands = (len(arr) - 6) // 4
    if bands < 3 or 4 * bands + 6 != len(arr):
        raise ValueError("the saved PCA fit in the layer URI has the wrong size")
    mean = arr[:bands]
    comps = arr[bands:4 * bands].reshape(3, bands)
    return PCA(mean, comps, arr[4 * bands:4 * bands + 3], arr[4 * bands + 3:], "saved")


def encode_vector(v) -> str:
    """A reference embedding as a compact URI value."""
    arr = np.asarray(v, dtype="<f4")
    return "b64:" + base64.urlsafe_b64encode(zlib.compress(arr.tobytes(), 9)).decode("ascii")


def decode_vector(value: str) -> np.ndarray:
    try:
        return np.frombuffer(zlib.decompress(base64.urlsafe_b64decode(value[4:])), dtype="<f4").astype(np.float32)
    except Exception:
        raise ValueError("the reference embedding in the layer URI is damaged") from None
