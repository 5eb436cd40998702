"""A password in a store URL (or a proxy URL, or an S3 URL) never reaches a message: errors,
the command line's output and exported metadata show it masked, ``http://alice:***@127.0.0.1:9``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.servers import Faults, free_port
from tessera_qgis.core.errors import ReadError, StoreNotFound, TesseraError
from tessera_qgis.core.sources import StoreOptions
from tessera_qgis.core.store import open_store
from tessera_qgis.core.urls import redact_url, with_credentials

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2"


@pytest.mark.parametrize("text,want", [
    ("http://alice:hunter2@127.0.0.1:9/x.zarr", "http://alice:***@127.0.0.1:9/x.zarr"),
    ("cannot reach the store at https://alice:hunter2@127.0.0.1:9/x.zarr: refused",
     "cannot reach the store at https://alice:***@127.0.0.1:9/x.zarr: refused"),
    ("s3://AKIDEXAMPLE:wJalr/K7MDENG+bPxRfi@bucket/x.zarr", "s3://AKIDEXAMPLE:***@bucket/x.zarr"),
    ("proxy http://bob:p%40ss@127.0.0.1:3128 then http://c:d@e/f", "proxy http://bob:***@127.0.0.1:3128 then http://c:***@e/f"),
    ("http://alice:p@ss@127.0.0.1:9/x.zarr", "http://alice:***@127.0.0.1:9/x.zarr"),  # an '@' inside the password
    ("url=http://alice:hunter2%40127.0.0.1:8080/x.zarr&year=2024", "url=http://alice:***%40127.0.0.1:8080/x.zarr&year=2024"),
    ("https://127.0.0.1:9/x?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc123&v=1",
     "https://127.0.0.1:9/x?X-Amz-Credential=***&X-Amz-Signature=***&v=1"),
    ("http://alice@127.0.0.1:9/x.zarr", "http://alice@127.0.0.1:9/x.zarr"),  # a user name alone is no secret
    ("http://127.0.0.1:8080/a/b.zarr", "http://127.0.0.1:8080/a/b.zarr"),
    ("/data/stores/x.zarr", "/data/stores/x.zarr"),
])
def test_redact_url_masks_passwords_and_signatures_only(text, want):
    assert redact_url(text) == want


def test_public_url_masks_the_password():
    from tessera_qgis.core.storeref import public_url

    assert public_url("https://user:pw@127.0.0.1:8443/a/b.zarr") == "https://user:***@127.0.0.1:8443/a/b.zarr"
    assert public_url("s3://bucket/x.zarr") == "s3://bucket/x.zarr"


def test_every_core_error_masks_a_url_whoever_wrote_the_message():
    err = ReadError("failed for http://alice:hunter2@127.0.0.1:9/x.zarr", "http")
    assert PASSWORD not in str(err) and "alice:***@127.0.0.1:9" in str(err) and err.kind == "http"
    assert PASSWORD not in str(TesseraError(f"at s3://KEY:{PASSWORD}@b/x"))


def test_an_unreachable_store_names_the_url_without_its_password():
    url = f"http://alice:{PASSWORD}@127.0.0.1:{free_port()}/x.zarr"
    with pytest.raises(ReadError, match="cannot reach the store") as err:
        open_store(url, StoreOptions(timeout=5, retries=0))
    assert PASSWORD not in str(err.value)
    assert f"http://alice:***@127.0.0.1:{url.split(':')[3]}" in str(err.value), str(err.value)


def test_not_found_and_read_errors_through_a_url_with_a_password(range_server, sample_store, tmp_path):
    srv = range_server(sample_store.parent)
    base = with_credentials(srv.url, "alice", PASSWORD)
    with pytest.raises(StoreNotFound) as err:
        open_store(f"{base}/missing.zarr")
    assert PASSWORD not in str(err.value) and "alice:***@" in str(err.value)
    store = open_store(f"{base}/{sample_store.name}", StoreOptions(retries=0))  # the server ignores the user
    assert PASSWORD not in store.info()["url"] and store.info()["url"].startswith(srv.url.replace("//", "//alice:***@", 1))
    srv.faults = Faults("503", match="/utm30/")
    with pytest.raises(ReadError) as err:
        store.zones["utm30"].read(2024, (0, 40), (0, 40))
    assert PASSWORD not in str(err.value)


def test_a_proxy_password_stays_out_of_the_message():
    with pytest.raises(TesseraError) as err:
        open_store(f"http://127.0.0.1:{free_port()}/x.zarr",
                   StoreOptions(proxy=f"http://bob:{PASSWORD}@127.0.0.1:{free_port()}", timeout=5, retries=0))
    assert PASSWORD not in str(err.value)


def test_an_s3_url_with_credentials_opens_and_stays_out_of_messages(sample_s3, s3_server):
    """s3://KEY:SECRET@bucket/...: the keys are used (not taken as part of the bucket name,
    which put them into botocore's messages) and masked wherever the URL is shown."""
    url, _ = sample_s3
    keyed = url.replace("s3://", f"s3://{s3_server.KEY}:{s3_server.SECRET}@")
    options = StoreOptions(endpoint_url=s3_server.endpoint_url, region="us-east-1", timeout=5, retries=0)
    store = open_store(keyed, options)
    assert store.years == [2024, 2025] and s3_server.SECRET not in store.info()["url"]
    with pytest.raises(StoreNotFound) as err:
        open_store(keyed.replace("sample.zarr", "none.zarr"), options)
    assert s3_server.SECRET not in str(err.value) and f"{s3_server.KEY}:***@tessera/none.zarr" in str(err.value)
    with pytest.raises(TesseraError) as err:
        open_store(f"s3://AKIDEXAMPLE:{PASSWORD}@tessera/none.zarr", options)  # keys the server refuses
    assert PASSWORD not in str(err.value) and "AKIDEXAMPLE:***@" in str(err.value), str(err.value)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tessera_qgis", *args], capture_output=True, text=True, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "PROJ_DATA": "/usr/share/proj"})


def test_command_line_output_masks_the_password(sample_store, sample_http):
    """(An error with such a URL: test_cli_and_purity.py, test_cli_bad_input_one_line_no_traceback.)"""
    good = with_credentials(sample_http.store_url, "alice", PASSWORD)
    res = cli("info", good)
    assert res.returncode == 0, res.stderr
    assert PASSWORD not in res.stdout + res.stderr and res.stdout.startswith("http://alice:***@127.0.0.1:")


@pytest.mark.gdal
def test_exported_metadata_masks_the_password(sample_store, sample_http, tmp_path):
    from osgeo import gdal

    from tessera_qgis.core.export import ExportRequest, export

    gdal.UseExceptions()
    url = with_credentials(sample_http.store_url, "alice", PASSWORD)
    out, = export(open_store(url), ExportRequest((-0.02, 52.2, -0.015, 52.203), "EPSG:4326", 2024,
                                                 str(tmp_path / "a.tif"), bands=[1]))
    ds = gdal.Open(str(out))
    assert ds.GetMetadata()["TESSERA_STORE"] == sample_http.store_url.replace("//", "//alice:***@", 1)
    assert PASSWORD not in gdal.Info(str(out)) and PASSWORD.encode() not in out.read_bytes()


# -- a password in a URL never goes into a layer URI; HTTP Basic from the options -------------
@pytest.mark.parametrize("url,want", [
    ("http://alice:hunter2@127.0.0.1:9/x.zarr", ("http://127.0.0.1:9/x.zarr", "alice", "hunter2")),
    ("https://alice:p%40ss@127.0.0.1:9/x.zarr", ("https://127.0.0.1:9/x.zarr", "alice", "p@ss")),
    ("http://alice:p@ss@127.0.0.1:9/x.zarr", ("http://127.0.0.1:9/x.zarr", "alice", "p@ss")),
    ("s3://AKIA1:s3cr3t@bucket/x.zarr", ("s3://bucket/x.zarr", "AKIA1", "s3cr3t")),
    ("http://alice@127.0.0.1:9/x.zarr", ("http://alice@127.0.0.1:9/x.zarr", None, None)),  # a user name alone
    ("/data/a@b:c/x.zarr", ("/data/a@b:c/x.zarr", None, None)),  # a folder
])
def test_split_password(url, want):
    from tessera_qgis.core.urls import split_password

    assert split_password(url) == want


def test_with_credentials_puts_them_into_http_urls_only():

    assert with_credentials("http://127.0.0.1:8/x.zarr", "alice", "p@ss:w/rd") == "http://alice:p%40ss%3Aw%2Frd@127.0.0.1:8/x.zarr"
    assert with_credentials("s3://bucket/x.zarr", "AKIA1", "s") == "s3://bucket/x.zarr"  # S3 keys go elsewhere
    assert with_credentials("http://bob:x@127.0.0.1:9/x.zarr", "alice", "y") == "http://bob:x@127.0.0.1:9/x.zarr"
    assert with_credentials("http://127.0.0.1:9/x.zarr", None, None) == "http://127.0.0.1:9/x.zarr"


def test_a_layer_uri_never_holds_a_password_from_the_url(sample_store):
    from tessera_qgis.core.layerspec import LayerSpec

    spec = LayerSpec.of(f"http://alice:{PASSWORD}@127.0.0.1:9/x.zarr", 2024, bands=(1, 2, 3))
    with pytest.raises(ValueError, match="password in the store URL does not belong in a layer URI") as err:
        spec.to_uri()
    assert PASSWORD not in str(err.value)
    with pytest.raises(ValueError, match="authcfg") as err:
        LayerSpec.from_uri(f"url=http://alice:{PASSWORD}@127.0.0.1:9/x.zarr&year=2024&bands=1")
    assert PASSWORD not in str(err.value)
    ok = LayerSpec.of("http://alice@127.0.0.1:9/x.zarr", 2024, bands=(1,), authcfg="abc1234")
    assert LayerSpec.from_uri(ok.to_uri()) == ok, "a user name alone, and an authcfg, are fine"


def test_http_basic_credentials_from_the_options(range_server, sample_store):
    """User name and password given apart from the URL (as a QGIS authentication configuration
    gives them) reach a server that wants HTTP Basic; without them it refuses."""
    srv = range_server(sample_store.parent)
    srv.basic_auth = ("alice", PASSWORD)
    url = f"{srv.url}/{sample_store.name}"
    with pytest.raises(TesseraError) as err:
        open_store(url, StoreOptions(timeout=5, retries=0))
    assert "access denied (HTTP 401" in str(err.value), str(err.value)
    with pytest.raises(TesseraError) as err:
        open_store(url, StoreOptions(timeout=5, retries=0, key="alice", secret="wrong"))
    assert "HTTP 401" in str(err.value) and "wrong" not in str(err.value), str(err.value)
    store = open_store(url, StoreOptions(timeout=5, key="alice", secret=PASSWORD))
    assert store.years == [2024, 2025]
    assert PASSWORD not in store.info()["url"] and PASSWORD not in repr(store.info())
    assert all(r.status in (200, 206) for r in srv.requests()[2:]), "every request after the refusals had them"


def test_a_refusal_says_which(range_server, sample_store):
    """A server that refuses a path outright (403) is told apart from one that wants
    credentials (401, above)."""
    srv = range_server(sample_store.parent, deny=("/",))
    with pytest.raises(TesseraError) as err:
        open_store(f"{srv.url}/{sample_store.name}", StoreOptions(timeout=5, retries=0))
    assert "access denied (HTTP 403)" in str(err.value) and err.value.kind == "forbidden", str(err.value)
