"""Connections: presets, XML exchange, and failure categories (Qt-free)."""
from __future__ import annotations

import pytest

from tessera_qgis.core.connections import (DATASETS, DIRECT, GATEWAY, SAMPLE_URL, Connection, describe_failure,
                                           from_xml, presets, to_xml)
from tessera_qgis.core.errors import NotTessera, NotZarrV3, ReadError, StoreNotFound
from tessera_qgis.core.storeref import StoreRef


def test_presets_cover_every_public_dataset_both_endpoints_and_the_sample():
    urls = {c.url for c in presets()}
    for ds in DATASETS:
        assert GATEWAY.format(dataset=ds) in urls and DIRECT.format(dataset=ds) in urls
    sample = [c for c in presets() if c.kind == "sample"]
    assert len(sample) == 1 and sample[0].url == SAMPLE_URL
    assert not any(c.editable for c in presets())


def test_xml_round_trip_keeps_settings_and_no_secret():
    conns = [Connection("Local", "/data/store.zarr"),
             Connection("My S3", "s3://bucket/x.zarr", s3_endpoint="http://127.0.0.1:9000", s3_region="eu-west-1",
                        authcfg="abc1234", anon=False),
             Connection("Open S3", "s3://open/x.zarr", anon=True)]
    text = to_xml(conns)
    assert text.startswith("<!DOCTYPE connections>") and "password" not in text and "secret" not in text
    back = from_xml(text)
    assert back == conns
    assert back[1].ref() == StoreRef("s3://bucket/x.zarr", s3_endpoint="http://127.0.0.1:9000",
                                     s3_region="eu-west-1", authcfg="abc1234")
    assert back[2].ref() == StoreRef("s3://open/x.zarr", anon=True)


def test_xml_and_settings_written_before_the_rename_are_read():
    """Connections saved with the old field names (endpoint_url, region) keep their values."""
    old = ('<!DOCTYPE connections>\n<qgsTesseraConnections version="1.0">'
           '<tessera name="Old" url="s3://b/x.zarr" anon="0" endpoint_url="http://127.0.0.1:9" region="r1" '
           'authcfg="" /></qgsTesseraConnections>')
    (conn,) = from_xml(old)
    assert (conn.s3_endpoint, conn.s3_region) == ("http://127.0.0.1:9", "r1")
    assert Connection.from_dict({"name": "n", "url": "u", "endpoint_url": "e", "region": "g"}).ref().s3_region == "g"


@pytest.mark.parametrize("text", ["<notxml", "<other/>"])
def test_bad_xml_is_refused_clearly(text):
    with pytest.raises(ValueError, match="connections file"):
        from_xml(text)


def test_connections_need_a_name_and_url():
    with pytest.raises(ValueError, match="name"):
        Connection(" ", "x")
    with pytest.raises(ValueError, match="URL"):
        Connection("x", "")


@pytest.mark.parametrize("exc,category", [
    (ReadError("x", "unreachable"), "unreachable"),
    (ReadError("x", "timeout"), "timeout"),
    (ReadError("x", "forbidden"), "forbidden"),
    (StoreNotFound("x"), "not found"),
    (NotZarrV3("x"), "not zarr v3"),
    (NotTessera("x"), "not tessera"),
    (RuntimeError("boom"), "error"),
])
def test_failure_categories(exc, category):
    assert describe_failure(exc)[0] == category
