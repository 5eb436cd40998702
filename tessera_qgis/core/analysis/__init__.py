"""Analysis of embeddings beyond a single view: clusters, classifiers and their accuracy,
trajectories over years. Qt-free; the Processing algorithms call it.

    sampling.py    valid pixels of a region (a bounded random sample) and labelled points
    kmeans.py      k-means with an automatic k (silhouette), and the cluster model
    models.py      the models a class raster is made with (k-NN, random forest, k-means):
                   one predict() for blocks, saved and loaded as JSON (no pickle)
    accuracy.py    stratified and spatial (1 km blocks) k-fold, confusion matrix, metrics
    tables.py      areas read back from written rasters: transitions, change per year/class
    report.py      HTML (matrix and charts drawn in plain HTML/SVG) and CSV reports
    trajectory.py  per-pixel cosine distance of every year to a baseline

Every raster is written through the export (`core/export`, kinds "classify", "cluster" and
"trajectory"): streamed block by block, in local threads or on a Dask cluster.
"""
