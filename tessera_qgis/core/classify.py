"""k-nearest-neighbour classification of embeddings (numpy only), and polygon masks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .quant import valid_scales


@dataclass
class KNNClassifier:
    """Cosine kNN over labelled embeddings. Class codes are 1..n (0 = no data)."""

    vectors: np.ndarray  # (n, bands) unit vectors
    labels: np.ndarray  # (n,) codes 1..len(names)
    names: list[str]
    k: int = 5

    @classmethod
    def fit(cls, vectors, labels, k: int = 5) -> "KNNClassifier":
        v = np.asarray(vectors, dtype=np.float32)
        keep = np.isfinite(v).all(axis=1) & (np.linalg.norm(v, axis=1) > 0)
        v, labels = v[keep], [labels[i] for i in np.nonzero(keep)[0]]
        if len(v) == 0:
            raise ValueError("no labelled point has an embedding (all are nodata)")
        names = sorted({str(lab) for lab in labels})
        if len(names) > 255:
            raise ValueError("at most 255 classes")
        codes = np.array([names.index(str(lab)) + 1 for lab in labels], dtype=np.uint8)
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return cls(v, codes, names, max(1, min(int(k), len(v))))

    def predict(self, q: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class codes uint8 (h, w), confidence float32 (h, w)): the majority class of the k
        nearest labelled embeddings and the share of the k that voted for it."""
        b, h, w = q.shape
        valid = valid_scales(scales).ravel()
        cls = np.zeros(h * w, dtype=np.uint8)
        conf = np.full(h * w, np.nan, dtype=np.float32)
        if valid.any():
            x = q.reshape(b, -1)[:, valid].T.astype(np.float32)
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            sims = x @ self.vectors.T  # (n_px, n_train)
            nearest = np.argpartition(-sims, self.k - 1, axis=1)[:, :self.k]
            votes = self.labels[nearest]
            counts = np.stack([(votes == c).sum(axis=1) for c in range(1, len(self.names) + 1)], axis=1)
            best = counts.argmax(axis=1)
            cls[valid] = (best + 1).astype(np.uint8)
            conf[valid] = counts[np.arange(len(best)), best] / self.k
        return cls.reshape(h, w), conf.reshape(h, w)


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
