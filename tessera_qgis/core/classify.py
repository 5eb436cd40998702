"""k-nearest-neighbour classification of embeddings (numpy only), and polygon masks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .quant import valid_scales

CHUNK_VALUES = 16_000_000  # similarities held at once while predicting a block (64 MB)
CHUNK = 65_536  # pixels predicted at once where a model does not say (its `chunk`)


def predict_block(model, q: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class codes uint8 (h, w) and confidence float32 (h, w) of a block (int8 q (bands, h,
    w), of which the model reads its first `dims`), from the model's `predict_vectors` on the
    valid pixels, `model.chunk` (else CHUNK) pixels at a time, so that a block's memory does
    not grow with the model. The embeddings are dequantised, unless the model is
    `scale_free` (a cosine: the per-pixel scale cancels)."""
    b, h, w = q.shape
    valid = valid_scales(scales).ravel()
    cls = np.zeros(h * w, dtype=np.uint8)
    conf = np.full(h * w, np.nan, dtype=np.float32)
    where = np.nonzero(valid)[0]
    flat = q.reshape(b, -1)
    s = scales.ravel().astype(np.float32, copy=False)
    step = getattr(model, "chunk", CHUNK)
    scaled = not getattr(model, "scale_free", False)
    for i in range(0, len(where), step):
        idx = where[i:i + step]
        x = flat[:model.dims, idx].T.astype(np.float32)
        if scaled:
            x *= s[idx, None]
        cls[idx], conf[idx] = model.predict_vectors(x)
    return cls.reshape(h, w), conf.reshape(h, w)


@dataclass
class KNNClassifier:
    """Cosine kNN over labelled embeddings. Class codes are 1..n (0 = no data)."""

    vectors: np.ndarray  # (n, bands) unit vectors
    labels: np.ndarray  # (n,) codes 1..len(names)
    names: list[str]
    k: int = 5

    @classmethod
    def fit(cls, vectors, labels, k: int = 5, names: list[str] | None = None) -> "KNNClassifier":
        """Fit on vectors (n, dims) and their labels; `names` fixes the class list (and so
        the codes, 1..n) when the labels may not show every class (a fold of a k-fold)."""
        v = np.asarray(vectors, dtype=np.float32)
        keep = np.isfinite(v).all(axis=1) & (np.linalg.norm(v, axis=1) > 0)
        v, labels = v[keep], [labels[i] for i in np.nonzero(keep)[0]]
        if len(v) == 0:
            raise ValueError("no labelled point has an embedding (all are nodata)")
        names = list(names) if names is not None else sorted({str(lab) for lab in labels})
        if len(names) > 255:
            raise ValueError("at most 255 classes")
        codes = np.array([names.index(str(lab)) + 1 for lab in labels], dtype=np.uint8)
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return cls(v, codes, names, max(1, min(int(k), len(v))))

    @property
    def dims(self) -> int:
        """Embedding dimensions the model reads (its depth)."""
        return int(self.vectors.shape[1])

    def predict_vectors(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes uint8 (n,), confidence float32 (n,)) of embeddings x (n, dims): the majority
        class of the k most cosine-similar labelled embeddings, and the share that voted for it
        (ties go to the lower code)."""
        x = np.asarray(x, dtype=np.float32)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sims = x @ self.vectors.T  # (n, n_train)
        nearest = np.argpartition(-sims, self.k - 1, axis=1)[:, :self.k]
        votes = self.labels[nearest]
        counts = np.stack([(votes == c).sum(axis=1) for c in range(1, len(self.names) + 1)], axis=1)
        best = counts.argmax(axis=1)
        return (best + 1).astype(np.uint8), (counts[np.arange(len(best)), best] / self.k).astype(np.float32)

    scale_free = True  # cosine similarity: see predict_block

    @property
    def chunk(self) -> int:
        """Pixels predicted at once: their similarities to every labelled embedding are held
        together (CHUNK_VALUES of them at most)."""
        return max(1024, CHUNK_VALUES // max(len(self.vectors), 1))

    def predict(self, q: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class codes uint8 (h, w), confidence float32 (h, w)) of a block: see predict_block."""
        return predict_block(self, q, scales)


def _vector_memory():
    """GDAL >= 3.11 has vector support in "MEM" and deprecates "Memory"."""
    from osgeo import gdal, ogr  # GDAL: the core's readers and the oldest set run without it

    drv = gdal.GetDriverByName("MEM")
    if drv is not None and drv.GetMetadataItem("DCAP_VECTOR") == "YES":
        return drv
    return ogr.GetDriverByName("Memory")


class PolygonMask:
    """A mask function for ExportRequest.mask: pixels whose centre is inside any polygon.
    Holds the polygons as WKT, so it can be sent to the workers of a cluster export."""

    def __init__(self, wkts: list[str], crs_of_wkts: str) -> None:
        self.wkts, self.crs = list(wkts), crs_of_wkts

    def __call__(self, transform, width: int, height: int, crs: str) -> np.ndarray:
        from osgeo import gdal, ogr, osr  # GDAL: the core's readers and the oldest set run without it

        gdal.UseExceptions()
        src = osr.SpatialReference()
        src.SetFromUserInput(self.crs)
        src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        dst = osr.SpatialReference()
        dst.SetFromUserInput(crs)
        dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        ds = gdal.GetDriverByName("MEM").Create("", width, height, 1, gdal.GDT_Byte)
        a, b, c, d, e, f = transform
        ds.SetGeoTransform((c, a, b, f, d, e))
        ds.SetProjection(dst.ExportToWkt())
        mem = _vector_memory().CreateDataSource("")
        layer = mem.CreateLayer("p", dst, ogr.wkbUnknown)
        ct = osr.CoordinateTransformation(src, dst)
        for wkt in self.wkts:
            g = ogr.CreateGeometryFromWkt(wkt)
            g.Transform(ct)
            feat = ogr.Feature(layer.GetLayerDefn())
            feat.SetGeometry(g)
            layer.CreateFeature(feat)
        gdal.RasterizeLayer(ds, [1], layer, burn_values=[1])
        return ds.GetRasterBand(1).ReadAsArray().astype(bool)


def polygon_mask(wkts: list[str], crs_of_wkts: str) -> PolygonMask:
    """A mask function for ExportRequest.mask: pixels whose centre is inside any polygon."""
    return PolygonMask(wkts, crs_of_wkts)
