"""Qt-free core of tessera-qgis: store access, reading, dequantising, PCA, export.

Nothing under this package imports Qt or QGIS, so plain pytest and the command line
(``python -m tessera_qgis``) can use it.
"""
