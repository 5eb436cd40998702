"""GDAL's Python bindings, imported on first use: the core's readers (and the command
line's info, pixel, sample and pack) run where GDAL is not installed; exports, PNG renders
and polygon masks need it."""
from __future__ import annotations


def gdal_module():
    from osgeo import gdal  # optional: see the module's docstring

    gdal.UseExceptions()
    return gdal


def driver(name: str):
    """A GDAL driver; registered again if a host application (QGIS on exit) dropped them."""
    gdal = gdal_module()
    drv = gdal.GetDriverByName(name)
    if drv is None:
        gdal.AllRegister()
        drv = gdal.GetDriverByName(name)
    if drv is None:
        raise RuntimeError(f"GDAL has no {name} driver")
    return drv
