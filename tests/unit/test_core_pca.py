"""PCA: the store's global PCA and fitted ones, colours checked against a projection and
stretch worked out by hand with numpy from zarr-python's values. No GDAL: these run on the
oldest dependencies too."""
from __future__ import annotations

import numpy as np
import pytest

from support.reference import within
from tessera_qgis.core.errors import ExtentError
from tessera_qgis.core.pca import PCA, sample_valid, stretch_bands
from tessera_qgis.core.render import render_rgba

BOX = (-0.02, 52.19, 0.02, 52.21)  # spans utm30 and utm31


def _class_values(store, ref, zone="utm30", year=2024):
    t = store.zones[zone].years[year]
    win = store.zones[zone].read(year, (0, 768), (0, 512))
    return win.dequantised(), ref[zone]["sample_landcover"][t]


def test_global_pca_from_the_store(store):
    pca = PCA.from_stretch(store.stretch(2024))
    assert pca.source == "global" and pca.components.shape == (3, 128)
    assert PCA.from_stretch({"pca_mean": [0] * 128}) is None


def test_fitted_pca_is_orthonormal_sign_stable_and_separates_classes(store, ref):
    values, lc = _class_values(store, ref)
    a = PCA.fit(sample_valid(values, 50_000, seed=1), seed=1)
    b = PCA.fit(sample_valid(values, 50_000, seed=2), seed=2)
    assert np.allclose(a.components @ a.components.T, np.eye(3), atol=1e-6)
    # Two fits on different samples agree in direction: colours do not flip between fits.
    assert (np.sum(a.components * b.components, axis=1) > 0.9).all()
    rgba = a.to_rgba(values)
    assert rgba.shape == (4, 768, 512) and rgba.dtype == np.uint8
    valid = np.isfinite(values).all(axis=0)
    assert (rgba[3][valid] == 255).all() and (rgba[3][~valid] == 0).all()
    means = [rgba[:3, (lc == c) & valid].mean(axis=1) for c in (2, 3, 4, 5)]
    gaps = [np.linalg.norm(m - n) for i, m in enumerate(means) for n in means[i + 1:]]
    assert min(gaps) > 20, "classes get clearly different colours"
    assert PCA.from_json(a.to_json()).components.tolist() == a.components.tolist()


def test_fit_refuses_too_few_pixels():
    with pytest.raises(ValueError, match="too few valid pixels"):
        PCA.fit(np.full((10, 128), np.nan))


def test_stretch_bands_2_98(store, ref):
    values, _ = _class_values(store, ref)
    out = stretch_bands(values[:3])
    valid = np.isfinite(values[:3]).all(axis=0)
    assert out.shape == (4, 768, 512)
    frac_top = (out[0][valid] == 255).mean()
    assert 0.01 < frac_top < 0.04, "about 2 % saturate at the top"


def test_fit_pca_on_a_region_samples_at_most_the_budget(store, ref):
    from tessera_qgis.core.region import fit_pca

    small = fit_pca(store, BOX, "EPSG:4326", 2024, max_samples=100_000)
    sparse = fit_pca(store, (-0.06, 52.17, 0.06, 52.23), "EPSG:4326", 2024, max_samples=20_000)
    glob = PCA.from_stretch(store.stretch(2024))
    assert small.source == sparse.source == "fit"
    assert np.allclose(small.components @ small.components.T, np.eye(3), atol=1e-6)
    # A sparse sample of the whole area finds the same main axis as the store's global PCA.
    assert abs(np.sum(sparse.components[0] * glob.components[0])) > 0.9
    values, lc = _class_values(store, ref)
    rgba = sparse.to_rgba(values)
    valid = np.isfinite(values).all(axis=0)
    means = [rgba[:3, (lc == c) & valid].mean(axis=1) for c in (2, 3, 4)]
    assert min(np.linalg.norm(a - b) for i, a in enumerate(means) for b in means[i + 1:]) > 20
    with pytest.raises(ExtentError):
        fit_pca(store, (10, 45, 10.1, 45.1), "EPSG:4326", 2024)


def test_global_pca_colours_are_the_hand_made_projection_and_stretch(store, zarr_reference):
    """PCA.to_rgba with the store's stretch attribute, against C (v - mean), then
    (p - min) / (max - min) * 255 clipped to 0-255, worked out here from zarr-python's values."""
    ref = zarr_reference(2024)
    z = ref.zones["utm30"]
    q, s = z["q"][:, 200:456, 100:356], z["s"][200:456, 100:356]
    valid = np.isfinite(s)
    values = np.where(valid, q.astype(np.float32) * s, np.nan)  # the store's dequantisation
    rgba = PCA.from_stretch(store.stretch(2024)).to_rgba(values)
    want = ref.pca_rgb(q.reshape(128, -1), np.where(valid, s, np.nan).reshape(-1)).reshape(3, *s.shape)
    assert valid.mean() > 0.6 and (~valid).any()
    assert (rgba[3] == np.where(valid, 255, 0)).all()
    assert within(rgba[:3], want, 1.0)[valid].all() and (rgba[:3, ~valid] == 0).all()
    # the stretch is used, not just the projection: some pixels saturate at both ends
    assert (want == 0)[:, valid].any() and (want == 255)[:, valid].any()


@pytest.mark.parametrize("source", ["samples", "values"])
def test_a_fitted_pca_is_the_principal_axes_and_their_2_98_percent_stretch(zarr_reference, source):
    """PCA.fit on (n, bands) samples and PCA.fit_values on (bands, h, w) values (the view's
    path, read block by block) against an SVD of the valid pixels worked out here; a pixel with
    one band missing is no sample. 25,600 pixels: a dozen blocks of the fit."""
    ref = zarr_reference(2024)
    z = ref.zones["utm31"]
    q, s = z["q"][:, 0:160, 0:160].reshape(128, -1), z["s"][0:160, 0:160].reshape(-1)
    with np.errstate(invalid="ignore"):  # 0 x inf where a scale is +inf: masked
        values = np.where(np.isfinite(s), q.astype(np.float32) * s, np.nan).astype(np.float32)
    holes = np.flatnonzero(np.isfinite(s))[::7]
    values[5, holes] = np.nan  # valid scale, one band missing
    keep = np.isfinite(values).all(axis=0)
    assert keep.sum() > 10_000 and np.isfinite(s).sum() > keep.sum()
    x = values[:, keep].T.astype(np.float64)
    if source == "samples":
        pca = PCA.fit(values.T, max_samples=len(values.T))
    else:
        pca = PCA.fit_values(values.reshape(128, 160, 160), max_samples=values.shape[1])
    assert pca.mean == pytest.approx(x.mean(axis=0), abs=1e-9)
    _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)  # principal axes by SVD
    assert np.abs(np.sum(pca.components * vt[:3], axis=1)) == pytest.approx([1, 1, 1], abs=1e-6)
    proj = (x - x.mean(axis=0)) @ pca.components.T
    assert pca.lo == pytest.approx(np.percentile(proj, 2, axis=0)) and pca.hi == pytest.approx(np.percentile(proj, 98, axis=0))
    assert (pca.components[np.arange(3), np.abs(pca.components).argmax(axis=1)] > 0).all(), "signs fixed"


def test_fit_values_samples_the_pixels_sample_valid_picks(store, ref):
    """Over its budget, fit_values fits on the very pixels sample_valid hands out (the same
    seed): the same PCA as fitting those samples by hand."""
    values, _ = _class_values(store, ref)
    picked = sample_valid(values, 20_000, seed=3)
    assert picked.shape == (20_000, 128) and np.isfinite(picked).all()
    a = PCA.fit_values(values, seed=3, max_samples=20_000)
    x = picked.astype(np.float64)
    _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    assert a.mean == pytest.approx(x.mean(axis=0), abs=1e-9)
    assert np.abs(np.sum(a.components * vt[:3], axis=1)) == pytest.approx([1, 1, 1], abs=1e-6)
    with pytest.raises(ValueError, match="too few valid pixels"):
        PCA.fit_values(np.full((128, 4, 4), np.nan, dtype=np.float32))


def test_render_draws_each_pixel_in_its_pca_colour(store, zarr_reference):
    """`render --pca` (Web Mercator): each pixel has the colour, by the store's global PCA and
    stretch worked out by hand, of the source pixel pyproj puts under its centre; pixels within
    a fifth of a source pixel of an edge, or 20 m of the zone seam, are left out."""
    from pyproj import Transformer

    rgba, info = render_rgba(store, BOX, 2024, width=500, pca=True)
    (x0, x1), (y0, y1) = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(
        [BOX[0], BOX[2]], [BOX[1], BOX[3]])
    res = (x1 - x0) / 500
    transform = (res, 0.0, x0, 0.0, -res, y1)
    assert info["transform"] == pytest.approx(transform) and info["mode"] == "PCA (global)"
    want = zarr_reference(2024).pca_colours("EPSG:3857", transform, rgba.shape[2], rgba.shape[1])
    d = want.decided
    assert d.mean() > 0.25 and want.valid[d].mean() > 0.6 and (~want.valid[d]).any()
    assert (rgba[3][d] == np.where(want.valid, 255, 0)[d]).all(), "alpha = has data"
    ok = within(rgba[:3], want.values, 1.0)
    assert ok[d].all(), f"{int((~ok & d).sum())} of {int(d.sum())} pixels off their source pixel's colour"
