"""The analysis jobs on the sample store, checked against its ground truth and against numbers
computed here from zarr-python reads: clusters (adjusted Rand index), classification (map
accuracy, transitions), trajectories (distances, the changed block), reports, depth, and
cancel at every step leaving nothing behind."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from osgeo import gdal  # the oldest-dependencies run has no GDAL: it leaves this module out (conftest)
import zarr

from support.analysis import (EXTENT_BOUNDS, NAMES, TOWN_BOUNDS, ari, declare_depths, iou, labelled_points, truth,
                              valid_truth, window_of, with_root_attrs)
from tessera_qgis.core.analysis import jobs, tables
from tessera_qgis.core.analysis.models import load_model
from tessera_qgis.core.analysis.sampling import labelled_pixels, sample_pixels
from tessera_qgis.core.errors import BandError, Cancelled, ExportError
from tessera_qgis.core.export import ExportRequest, export
from tessera_qgis.core.store import open_store


gdal.UseExceptions()
pytestmark = pytest.mark.gdal
WGS84 = "EPSG:4326"


def read(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def left(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def req(out, year=2024, bounds=EXTENT_BOUNDS, **kw) -> ExportRequest:
    return ExportRequest(bounds, WGS84, year, str(out), **kw)


# -- sampling ----------------------------------------------------------------------------------
def test_the_sample_is_bounded_valid_and_real(store, sample_store):
    x = sample_pixels(store, EXTENT_BOUNDS, WGS84, 2024, max_samples=5000, seed=1)
    assert x.shape == (5000, 128) and np.isfinite(x).all()
    assert np.array_equal(x, sample_pixels(store, EXTENT_BOUNDS, WGS84, 2024, max_samples=5000, seed=1))
    # every sampled vector is a pixel of the region (zarr-python: int8 * scale)
    g = zarr.open_group(str(sample_store), mode="r")
    part = [p for p in __import__("tessera_qgis.core.region", fromlist=["plan"]).plan(store, EXTENT_BOUNDS, WGS84)][0]
    (r0, r1), (c0, c1) = part.rows, part.cols
    q = np.asarray(g["utm30/embeddings"][0, :, r0:r1, c0:c1]).reshape(128, -1).T
    s = np.asarray(g["utm30/scales"][0, r0:r1, c0:c1]).ravel()
    ok = np.isfinite(s)
    pool = {tuple(v) for v in (q[ok].astype(np.float32) * s[ok, None]).round(4)}
    assert all(tuple(v) in pool for v in x[:300].round(4))
    # a region larger than twice the sample is read through random cells, still bounded
    y = sample_pixels(store, EXTENT_BOUNDS, WGS84, 2024, max_samples=1000, seed=2)
    assert y.shape == (1000, 128) and np.isfinite(y).all()


def test_labelled_pixels_skip_nodata_and_know_their_blocks(store):
    pts = [(-0.03, 52.2, "a"), (-0.03, 52.2, "a"), (-0.0301, 52.2001, None), (10.0, 45.0, "b"),
           (-0.02, 52.19, "b"), (-0.04, 52.18, "c")]
    lab = labelled_pixels(store, 2024, pts)
    assert lab.labels == ["a", "b", "c"] and lab.skipped == 3  # a pixel twice, no label, outside
    assert lab.vectors.shape == (3, 128)
    px = store.pixel(-0.02, 52.19, 2024)
    assert lab.vectors[1] == pytest.approx(np.array(px["embedding"], dtype=np.float32))
    # 1 km blocks from the pixel's position in its zone
    zone = store.zones["utm30"]
    xs = [zone.transform[2] + 10 * (c + 0.5) for _, _, c in lab.cells]
    ys = [zone.transform[5] - 10 * (r + 0.5) for _, r, _ in lab.cells]
    keys = [(int(x // 1000), int(y // 1000)) for x, y in zip(xs, ys)]
    assert (len(set(keys)) == len(set(lab.blocks.tolist())))


# -- clusters ----------------------------------------------------------------------------------
def test_automatic_k_means_matches_the_land_cover(store, sample_store, tmp_path):
    res = jobs.cluster(store, req(tmp_path / "c.tif", bounds=TOWN_BOUNDS), k=0, centroids=tmp_path / "c.json")
    assert [p.name for p in res.paths] == ["c.tif"]
    got = read(res.paths[0])
    lc = truth(sample_store, res.paths[0], zone="utm31")
    valid = valid_truth(sample_store, res.paths[0], zone="utm31")
    assert (got[~valid] == 0).all() and (got[valid] > 0).all()
    score = ari(got[valid], lc[valid])
    print(f"adjusted Rand index of {len(res.model.names)} clusters: {score:.3f}")
    assert score >= 0.8
    assert 2 <= len(res.model.names) <= 12 and set(res.scores) == set(range(2, 13))
    assert (tmp_path / "c.qml").read_text().count("paletteEntry") == len(res.model.names)
    model, meta = load_model(tmp_path / "c.json")
    assert meta["year"] == 2024 and meta["samples"] == res.samples <= 200_000
    assert np.allclose(model.centroids, res.model.centroids, atol=1e-5)


def test_centroids_apply_to_another_year(store, sample_store, tmp_path):
    res = jobs.cluster(store, req(tmp_path / "c.tif"), k=4, centroids=tmp_path / "c.json")
    model, _ = load_model(tmp_path / "c.json")
    out = jobs.apply_model(store, req(tmp_path / "c25.tif", year=2025), model)
    assert [p.name for p in out] == ["c25.tif"] and (tmp_path / "c25.qml").exists()
    # the nearest centroid of each 2025 pixel, worked out from zarr-python's values
    r0, c0, h, w = window_of(out[0], sample_store)
    g = zarr.open_group(str(sample_store), mode="r")
    q = np.asarray(g["utm30/embeddings"][1, :, r0:r0 + h, c0:c0 + w]).astype(np.float64)
    s = np.asarray(g["utm30/scales"][1, r0:r0 + h, c0:c0 + w]).astype(np.float64)
    v = q * s[None]
    cent = np.asarray(json.loads((tmp_path / "c.json").read_text())["centroids"])
    want = np.argmin(((v[None] - cent[:, :, None, None]) ** 2).sum(1), axis=0) + 1
    got = read(out[0])
    ok = np.isfinite(s)
    assert (got[~ok] == 0).all()
    assert (got[ok] == want[ok]).mean() > 0.9999  # float32 rounding may move a pixel on a tie
    assert res.model.dims == 128


# -- classification ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["knn", pytest.param("random_forest", marks=pytest.mark.sklearn)])
def test_classification_from_20_points_per_class(store, sample_store, tmp_path, method):
    pts = labelled_points(sample_store, 20, zone="utm31", bounds=TOWN_BOUNDS)
    said = []
    res = jobs.classify(store, req(tmp_path / "k.tif", bounds=TOWN_BOUNDS), pts, WGS84, method,
                        other_years=[2025], report_path=tmp_path / "k_report.html",
                        model_path=tmp_path / "k_model.json", log=said.append)
    assert [p.name for p in res.paths] == ["k.tif", "k_confidence.tif", "k_2025.tif", "k_2025_confidence.tif"]
    assert res.used == 100 and res.names == ["built-up", "cropland", "forest", "grassland", "wetland"]
    got = read(res.paths[0])
    lc = truth(sample_store, res.paths[0], zone="utm31")
    valid = valid_truth(sample_store, res.paths[0], zone="utm31")
    code = np.array([0] + [NAMES[n] for n in res.names])
    overall = (code[got[valid]] == lc[valid]).mean()
    print(f"{method}: map accuracy {100 * overall:.2f} %; {said[1]}")
    assert overall >= 0.95
    assert said[1].startswith("overall accuracy ") and "stratified 5-fold" in said[1] and "spatial" in said[1]
    # the report's figures agree with its own confusion matrix (worked out here)
    rows = list(csv.DictReader((tmp_path / "k_report.csv").open()))
    for name in ("stratified 5-fold", "spatial"):
        mine = [r for r in rows if r["assessment"].startswith(name)]
        m = np.zeros((5, 5))
        for r in mine:
            if r["measure"] == "count":
                m[res.names.index(r["reference"]), res.names.index(r["predicted"])] = int(r["value"])
        oa = np.trace(m) / m.sum()
        pe = (m.sum(0) * m.sum(1)).sum() / m.sum() ** 2
        value = {r["measure"]: float(r["value"]) for r in mine if r["measure"] in ("overall_accuracy", "kappa")}
        assert value["overall_accuracy"] == pytest.approx(oa, abs=1e-6)
        assert value["kappa"] == pytest.approx((oa - pe) / (1 - pe), abs=1e-6)
        assert m.sum() == 100
    html = (tmp_path / "k_report.html").read_text()
    assert "Transitions 2024 → 2025" in html and html.count("class=\"matrix\"") == 3
    # transitions: the CSV's hectares equal a cross-tabulation of the two rasters (10 m pixels)
    a, b = read(res.paths[0]).astype(int), read(res.paths[2]).astype(int)
    everything = ["no data", *res.names]
    trans = {(r["reference"], r["predicted"]): float(r["value"]) for r in rows
             if r["assessment"] == "transition 2024-2025" and r["measure"] == "hectares"}
    want = {(everything[i], everything[j]): ((a == i) & (b == j)).sum() * 0.01
            for i in range(6) for j in range(6) if ((a == i) & (b == j)).any()}
    assert trans == pytest.approx(want, abs=1e-3)
    model, meta = load_model(tmp_path / "k_model.json")
    assert meta["method"] == method and model.names == res.names
    again = jobs.apply_model(store, req(tmp_path / "again.tif", bounds=TOWN_BOUNDS), model)
    assert np.array_equal(read(again[0]), got)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_transitions_show_the_development(store, sample_store, tmp_path):
    """Trained in the town, applied to the west of the area in 2024 and 2025: the cropland
    built over in 2025 is the cropland -> built-up transition."""
    pts = labelled_points(sample_store, 20, zone="utm31", bounds=TOWN_BOUNDS)
    res = jobs.classify(store, req(tmp_path / "k.tif"), pts, WGS84, other_years=[2025])
    _, _, px, ha = res.transitions[0]
    crop, built = res.names.index("cropland") + 1, res.names.index("built-up") + 1
    lc24, lc25 = truth(sample_store, res.paths[0], 0), truth(sample_store, res.paths[0], 1)
    both = valid_truth(sample_store, res.paths[0], 0) & valid_truth(sample_store, res.paths[0], 1)
    real = ((lc24 == 3) & (lc25 == 2) & both).sum()
    print(f"cropland -> built-up: {px[crop, built]} pixels classified, {real} in the ground truth")
    assert px[crop, built] == pytest.approx(real, rel=0.05)
    assert ha[crop, built] == pytest.approx(px[crop, built] * 0.01)
    assert px[crop, crop] == pytest.approx(((lc24 == 3) & (lc25 == 3) & both).sum(), rel=0.01)


def test_classification_needs_two_classes(store, tmp_path):
    with pytest.raises(ExportError, match="at least two classes"):
        jobs.classify(store, req(tmp_path / "k.tif"), [(-0.03, 52.2, "a"), (10.0, 45.0, "b")], WGS84)
    assert left(tmp_path) == []


# -- trajectories ------------------------------------------------------------------------------
def test_trajectory_finds_the_changed_block(store, sample_store, tmp_path):
    res = jobs.trajectory(store, req(tmp_path / "t.tif"), report_path=tmp_path / "t.html")
    assert [p.name for p in res.paths] == ["t.tif", "t_year.tif"]
    dist, year = read(res.paths[0]), read(res.paths[1])
    lc24, lc25 = truth(sample_store, res.paths[0], 0), truth(sample_store, res.paths[0], 1)
    both = valid_truth(sample_store, res.paths[0], 0) & valid_truth(sample_store, res.paths[0], 1)
    changed = dist >= 0.25
    # the development: every pixel whose land cover changed (cropland, grassland, forest and
    # wetland built over in 2025)
    score = iou(changed & both, (lc24 != lc25) & both)
    # and, as the issue puts it, cropland of 2024 that is built-up in 2025, among 2024's cropland
    crop = (lc24 == 3) & both
    score_crop = iou(changed & crop, (lc25 == 2) & crop)
    print(f"IoU with the change: {score:.3f}; among 2024's cropland: {score_crop:.3f}")
    assert score >= 0.7 and score_crop >= 0.7
    assert set(np.unique(year).tolist()) == {0, 2025} and np.array_equal(year == 2025, changed)
    # the report: hectares of 10 m pixels
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert rows[0]["year"] == "2025" and rows[0]["class"] == "all"
    assert float(rows[0]["changed_ha"]) == pytest.approx(changed.sum() * 0.01, abs=1e-6)
    assert int(rows[0]["valid_pixels"]) == np.isfinite(dist).sum()
    assert "<svg" in (tmp_path / "t.html").read_text()
    assert (tmp_path / "t_year.qml").exists()


def _years_of(g, zone: str) -> list[int]:
    return [int(v) for v in np.asarray(g[f"{zone}/time"][:])]


def test_trajectory_distances_against_both_baselines(south_store, tmp_path):
    """Three years (stored in descending order): each year against 2023, and each year against
    the mean of the years before it, worked out from zarr-python's values."""
    st = open_store(south_store)
    bounds = (36.80, -1.31, 36.83, -1.29)
    g = zarr.open_group(str(south_store), mode="r")
    zone = next(iter(st.zones))
    years = _years_of(g, zone)

    def values(year, r0, c0, h, w):
        t = years.index(year)
        q = np.asarray(g[f"{zone}/embeddings"][t, :, r0:r0 + h, c0:c0 + w]).astype(np.float64)
        s = np.asarray(g[f"{zone}/scales"][t, r0:r0 + h, c0:c0 + w]).astype(np.float64)
        return np.where(np.isfinite(s), 1.0, np.nan)[None] * q * s[None]

    def cos_dist(a, b):
        return 1 - (a * b).sum(0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))

    one = jobs.trajectory(st, ExportRequest(bounds, WGS84, 2023, str(tmp_path / "one.tif")), baseline=2023)
    r0, c0, h, w = window_of(one.paths[0], south_store, zone)
    v = {y: values(y, r0, c0, h, w) for y in (2023, 2024, 2025)}
    d = read(one.paths[0])
    assert d.shape == (2, h, w)
    for i, y in enumerate((2024, 2025)):
        want = cos_dist(v[y], v[2023])
        assert np.array_equal(np.isnan(d[i]), np.isnan(want))
        assert np.nanmax(np.abs(d[i] - want)) < 1e-5
    mean = jobs.trajectory(st, ExportRequest(bounds, WGS84, 2023, str(tmp_path / "mean.tif")))
    d = read(mean.paths[0])
    want = [cos_dist(v[2024], v[2023]), cos_dist(v[2025], (v[2023] + v[2024]) / 2)]
    for i in range(2):
        ok = np.isfinite(want[i])
        assert np.nanmax(np.abs(d[i][ok] - want[i][ok])) < 1e-5
    assert gdal.Open(str(mean.paths[0])).GetRasterBand(2).GetDescription() == \
        "cosine distance 2025 to mean of the years before"
    # the year of the largest change, among years reaching the threshold
    yr = read(mean.paths[1])
    top = np.nanargmax(np.where(np.isnan(d), -1, d), axis=0)
    reach = np.nanmax(np.where(np.isnan(d), -1, d), axis=0) >= 0.25
    assert np.array_equal(yr, np.where(reach, np.array([2024, 2025])[top], 0))


def test_change_table_per_class(store, sample_store, tmp_path):
    traj = jobs.trajectory(store, req(tmp_path / "t.tif"))
    classes = export(store, req(tmp_path / "c.tif", kind="cluster",
                                classifier=jobs.KMeansModel(sample_pixels(store, EXTENT_BOUNDS, WGS84, 2024,
                                                                          max_samples=4)[:3])))[0]
    table = tables.change_table(traj.paths[0], traj.paths[1], [2025], 0.25, classes)
    dist, cls = read(traj.paths[0]), read(classes)
    assert table.classes == ["cluster 1", "cluster 2", "cluster 3"]
    for c in (1, 2, 3):
        assert table.changed_px[0, c] == ((dist >= 0.25) & (cls == c)).sum()
        assert table.valid_ha[0, c] == pytest.approx((np.isfinite(dist) & (cls == c)).sum() * 0.01)
    assert table.changed_px[0, 0] == (dist >= 0.25).sum()


# -- depth ---------------------------------------------------------------------------------------
def test_depth_reads_only_the_first_dimensions(sample_store, tmp_path):
    deep = open_store(with_root_attrs(sample_store, tmp_path / "v2.zarr", declare_depths))
    out = tmp_path / "out"
    out.mkdir()
    res = jobs.cluster(deep, req(out / "c.tif", depth=16), k=3, centroids=out / "c.json")
    assert res.model.dims == 16 and json.loads((out / "c.json").read_text())["dimensions"] == 16
    assert gdal.Open(str(res.paths[0])).GetMetadataItem("TESSERA_DEPTH") == "16"
    r0, c0, h, w = window_of(res.paths[0], sample_store)
    g = zarr.open_group(str(sample_store), mode="r")
    q = np.asarray(g["utm30/embeddings"][0, :16, r0:r0 + h, c0:c0 + w]).astype(np.float64)
    s = np.asarray(g["utm30/scales"][0, r0:r0 + h, c0:c0 + w]).astype(np.float64)
    cent = res.model.centroids.astype(np.float64)
    want = np.argmin((((q * s[None])[None] - cent[:, :, None, None]) ** 2).sum(1), axis=0) + 1
    got = read(res.paths[0])
    assert (got[np.isfinite(s)] == want[np.isfinite(s)]).mean() > 0.9999
    # similarity at depth 16: the cosine over the first 16 dimensions
    ref = np.array(deep.pixel(-0.03, 52.2, 2024)["embedding"][:16])
    sim = read(export(deep, req(out / "s.tif", kind="similarity", reference=list(ref), depth=16))[0])
    qq = q * s[None]
    want = (qq * ref[:, None, None]).sum(0) / (np.linalg.norm(qq, axis=0) * np.linalg.norm(ref))
    assert np.nanmax(np.abs(sim - want)) < 1e-5
    # a 16-d model needs depth 16; a depth the store lacks, or a prefix of a store without
    # depths, is refused with a message
    with pytest.raises(ExportError, match="reads 16 embedding dimensions"):
        export(deep, req(out / "x.tif", kind="cluster", classifier=res.model))
    with pytest.raises(BandError, match="depth 8 is not in this store"):
        jobs.cluster(deep, req(out / "x.tif", depth=8), k=2)
    with pytest.raises(BandError, match="no Matryoshka depths"):
        jobs.cluster(open_store(sample_store), req(out / "x.tif", depth=16), k=2)
    applied = jobs.apply_model(deep, req(out / "a.tif"), res.model)
    assert np.array_equal(read(applied[0]), got)
    assert sorted(p.name for p in out.iterdir()) == ["a.qml", "a.tif", "a.tif.aux.xml", "c.json", "c.qml", "c.tif",
                                                     "c.tif.aux.xml", "s.tif"]


def test_depth_on_a_v2_store(v2_store, tmp_path):
    """A v2 store (embeddings_d4 / embeddings_d16 beside embeddings): clusters at depth 16 and a
    trajectory at depth 4 equal numpy on zarr-python's reads of the shallow arrays."""
    st = open_store(v2_store)
    assert st.depths == [4, 16, 128]
    bounds = (-0.02, 52.19, -0.002, 52.205)  # utm30: the zone's own grid
    g = zarr.open_group(str(v2_store), mode="r")
    years = _years_of(g, "utm30")
    res = jobs.cluster(st, ExportRequest(bounds, WGS84, 2024, str(tmp_path / "c.tif"), depth=16), k=3)
    r0, c0, h, w = window_of(res.paths[0], v2_store)

    def values(name, year):
        q = np.asarray(g[f"utm30/{name}"][years.index(year), :, r0:r0 + h, c0:c0 + w]).astype(np.float64)
        s = np.asarray(g["utm30/scales"][years.index(year), r0:r0 + h, c0:c0 + w]).astype(np.float64)
        with np.errstate(invalid="ignore"):
            ok = (s > 0) & (s < 1)
        return q * np.where(ok, s, np.nan)[None], ok

    v, ok = values("embeddings_d16", 2024)
    cent = res.model.centroids.astype(np.float64)
    want = np.argmin(((v[None] - cent[:, :, None, None]) ** 2).sum(1), axis=0) + 1
    got = read(res.paths[0])
    assert (got[~ok] == 0).all() and (got[ok] == want[ok]).mean() > 0.9999
    traj = jobs.trajectory(st, ExportRequest(bounds, WGS84, 2024, str(tmp_path / "t.tif"), depth=4), baseline=2024)
    a, _ = values("embeddings_d4", 2024)
    b, _ = values("embeddings_d4", 2025)
    want = 1 - (a * b).sum(0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    d = read(traj.paths[0])
    assert np.array_equal(np.isnan(d), np.isnan(want)) and np.nanmax(np.abs(d - want)) < 1e-5


# -- cancel --------------------------------------------------------------------------------------
class CancelAt:
    """cancel() turns true once progress has passed `at` (0 = at once)."""

    def __init__(self, at: float) -> None:
        self.at, self.seen = at, 0.0

    def progress(self, f: float) -> None:
        self.seen = max(self.seen, f)

    def __call__(self) -> bool:
        return self.at == 0 or self.seen > self.at


@pytest.mark.parametrize("at", [0, 0.2, 0.5, 0.8])
def test_cancel_leaves_nothing(store, sample_store, tmp_path, at):
    pts = labelled_points(sample_store, 5)
    runs = {
        "cluster": lambda c: jobs.cluster(store, req(tmp_path / "c.tif"), k=3, centroids=tmp_path / "c.json",
                                          progress=c.progress, cancel=c),
        "classify": lambda c: jobs.classify(store, req(tmp_path / "k.tif"), pts, WGS84, other_years=[2025],
                                            report_path=tmp_path / "k.html", model_path=tmp_path / "k.json",
                                            progress=c.progress, cancel=c),
        "trajectory": lambda c: jobs.trajectory(store, req(tmp_path / "t.tif"), report_path=tmp_path / "t.html",
                                                progress=c.progress, cancel=c),
    }
    for name, run in runs.items():
        c = CancelAt(at)
        with pytest.raises(Cancelled):
            run(c)
        assert left(tmp_path) == [], (name, at, c.seen)


@pytest.mark.parametrize("job", ["trajectory", "classify"])
def test_cancel_while_the_rasters_are_read_back(store, sample_store, tmp_path, monkeypatch, job):
    """The rasters are complete and renamed into place when the change table or the
    transitions are read from them: cancelling then still removes them."""
    state = {"reading": False}
    name = "change_table" if job == "trajectory" else "transitions"
    original = getattr(tables, name)

    def reading(*a, **kw):
        state["reading"] = True
        return original(*a, **kw)

    monkeypatch.setattr(tables, name, reading)
    with pytest.raises(Cancelled):
        if job == "trajectory":
            jobs.trajectory(store, req(tmp_path / "t.tif"), report_path=tmp_path / "t.html",
                            cancel=lambda: state["reading"])
        else:
            jobs.classify(store, req(tmp_path / "k.tif"), labelled_points(sample_store, 5), WGS84,
                          other_years=[2025], cancel=lambda: state["reading"])
    assert state["reading"] and left(tmp_path) == []
