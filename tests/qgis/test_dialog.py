"""The data-source dialog: presets, connecting in the background (and cancelling), each
failure's message, adding layers, S3 with an auth configuration, connections in and out."""
from __future__ import annotations

import shutil

import pytest
import zarr
from qgis.core import QgsApplication, QgsProject, QgsSettings
from qgis.gui import QgsGui

from support.qgis_helpers import wait_for
from tessera_qgis import provider as prov
from tessera_qgis.core.connections import DATASETS, DIRECT, GATEWAY, Connection
from tessera_qgis.core.layerspec import LayerSpec
from tessera_qgis.dialog import TesseraSourceWidget
from tessera_qgis.settings import (Settings, custom_connections, sample_store_path, save_custom_connections,
                                   upsert_connection)

pytestmark = pytest.mark.usefixtures("provider_active", "no_saved_connections")


def widget_for(qgis_iface, conn: Connection | None = None) -> TesseraSourceWidget:
    if conn is not None:
        upsert_connection(conn)
    w = TesseraSourceWidget(iface=qgis_iface)
    if conn is not None:
        w.reload_connections(conn.name)
    return w


def connect(w: TesseraSourceWidget) -> None:
    w.connect_button.click()
    assert w.progress.isVisibleTo(w) or w.task is not None, "busy while connecting"
    wait_for(w.task)


def test_presets_and_the_sample_connection_are_listed(qgis_iface):
    w = widget_for(qgis_iface)
    names = [w.connections.itemText(i) for i in range(w.connections.count())]
    urls = [w.connections.itemData(i).url for i in range(w.connections.count())]
    assert names[0] == "Sample data (offline)"
    for ds in DATASETS:
        assert DIRECT.format(dataset=ds) in urls and GATEWAY.format(dataset=ds) in urls
    assert not w.edit_button.isEnabled() and not w.remove_button.isEnabled(), "presets are not editable"


def test_custom_http_store_connects_lists_years_zones_and_adds_a_layer(sample_http, qgis_iface, qgis_canvas):
    w = widget_for(qgis_iface, Connection("local http", sample_http.store_url))
    assert w.edit_button.isEnabled()
    connect(w)
    assert w.store is not None and w.last_failure is None
    assert [w.year.itemData(i) for i in range(w.year.count())] == [2024, 2025]
    assert [w.zone.itemData(i) for i in range(w.zone.count())] == [None, "utm30", "utm31"]
    text = w.info.toPlainText()
    assert "utm30" in text and "EPSG:32631" in text and "sample" in text
    w.mode.setCurrentIndex(2)  # 3 bands
    for box, b in zip(w.bands, (5, 6, 7)):
        box.setValue(b)
    w.addButtonClicked()
    wait_for(w.add_task)
    layer = w.last_layer
    assert layer is not None and layer.isValid() and layer.id() in QgsProject.instance().mapLayers()
    assert LayerSpec.from_uri(layer.source()).bands == (5, 6, 7)


@pytest.mark.parametrize("case", ["unreachable", "not found", "forbidden", "not zarr v3", "not tessera", "timeout"])
def test_each_failure_has_its_own_message(case, qgis_iface, range_server, tmp_path, sample_store):
    url = "http://127.0.0.1:9/none.zarr"
    if case == "not found":
        url = f"{range_server(tmp_path).url}/missing.zarr"
    elif case == "forbidden":
        url = f"{range_server(sample_store.parent, deny=('/',)).url}/{sample_store.name}"
    elif case == "not zarr v3":
        zarr.open_group(str(tmp_path / "v2.zarr"), mode="w", zarr_format=2).create_array("a", shape=(1,), dtype="i1")
        url = f"{range_server(tmp_path).url}/v2.zarr"
    elif case == "not tessera":
        zarr.open_group(str(tmp_path / "v3.zarr"), mode="w", zarr_format=3).create_array("a", shape=(1,), dtype="i1")
        url = f"{range_server(tmp_path).url}/v3.zarr"
    elif case == "timeout":
        settings = Settings.load()
        settings.timeout_s = 1
        settings.save()
        url = f"{range_server(sample_store.parent, latency=3).url}/{sample_store.name}"
    try:
        w = widget_for(qgis_iface, Connection(f"bad {case}", url))
        connect(w)
    finally:
        Settings().save()  # defaults again
    assert w.store is None and w.last_failure is not None
    assert w.last_failure[0] == case, w.last_failure
    assert not w.add_button.isEnabled()
    titles = {"unreachable": "Cannot reach", "not found": "Nothing found", "forbidden": "Access denied",
              "not zarr v3": "Not a Zarr v3", "not tessera": "Not a TESSERA", "timeout": "did not answer in time"}
    assert titles[case] in w.info.toPlainText()


def test_cancel_frees_the_dialog_at_once(qgis_iface, range_server, sample_store):
    srv = range_server(sample_store.parent, latency=2.0)
    w = widget_for(qgis_iface, Connection("slow", f"{srv.url}/{sample_store.name}"))
    w.connect_button.click()
    assert w.progress.isVisibleTo(w) and w.cancel_button.isVisibleTo(w)
    w.cancel_button.click()
    assert not w.progress.isVisibleTo(w) and w.connect_button.isEnabled()
    assert "Cancelled" in w.info.toPlainText()
    wait_for(w.task)
    assert w.task.outcome == "cancelled", "the dialog's Cancel cancels the task"
    assert w.store is None and w.last_failure is None and "Cancelled" in w.info.toPlainText()


def test_cancel_stops_a_connect_within_a_second(qgis_iface, range_server, sample_store):
    """Cancel while the store's first object is on its way (1.5 s a request): the connect
    asks for nothing more (a connect that went on would ask for the years 1.5 s in)."""
    import time

    srv = range_server(sample_store.parent, latency=1.5)
    w = widget_for(qgis_iface, Connection("slow", f"{srv.url}/{sample_store.name}"))
    w.connect_button.click()
    t0 = time.monotonic()
    while not srv.arrivals():
        QgsApplication.processEvents()
        assert time.monotonic() - t0 < 10, "the connect made no request"
        time.sleep(0.01)
    cancelled_at = time.monotonic()
    w.cancel_button.click()
    while time.monotonic() < cancelled_at + 4.0:  # past the first answer and two more round trips
        QgsApplication.processEvents()
        time.sleep(0.01)
    late = [(round(t - cancelled_at, 2), path) for t, path in srv.arrivals() if t > cancelled_at + 1.0]
    assert not late, f"requests after Cancel: {late}"
    assert w.task.outcome == "cancelled" and w.store is None


def test_cancel_from_qgis_task_list_frees_the_dialog_too(qgis_iface, range_server, sample_store):
    srv = range_server(sample_store.parent, latency=1.0)
    w = widget_for(qgis_iface, Connection("slow", f"{srv.url}/{sample_store.name}"))
    w.connect_button.click()
    assert w.progress.isVisibleTo(w)
    w.task.cancel()  # what the Cancel button of QGIS's task list does
    wait_for(w.task)
    assert not w.progress.isVisibleTo(w) and w.connect_button.isEnabled()
    assert w.store is None and w.last_failure is None and "Cancelled" in w.info.toPlainText()


def test_sample_connection_works_offline_and_is_built_on_first_use(qgis_iface, v2_store, monkeypatch):
    """Built on first use by the sample generator, in the newest layout (v2); here it copies
    the session's v2 store instead of spending 15 s making it again (the generator itself:
    tests/unit/test_sample_store.py)."""
    from tessera_qgis import settings

    made = []

    def generate(out, spec, progress=None):
        assert spec == settings.SAMPLE_SPEC and spec.layout == "v2", "the bundled sample is the v2 layout"
        made.append(out)
        shutil.copytree(v2_store, out)

    monkeypatch.setattr(settings, "generate", generate)
    path = sample_store_path()
    shutil.rmtree(path, ignore_errors=True)
    w = widget_for(qgis_iface)
    assert w.current().kind == "sample"
    connect(w)
    assert w.store is not None and (path / "zarr.json").exists() and len(made) == 1
    assert [w.year.itemData(i) for i in range(w.year.count())] == [2024, 2025]
    w.addButtonClicked()
    wait_for(w.add_task)
    assert w.last_layer.isValid()


def test_s3_connection_with_an_auth_configuration_keeps_the_secret_out(qgis_iface, sample_s3, s3_server,
                                                                       s3_authcfg, tmp_path):
    url, opts = sample_s3
    authcfg, _, _ = s3_authcfg
    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda msg, tag, level: logged.append(msg))
    conn = Connection("moto", url, s3_endpoint=s3_server.endpoint_url, s3_region="us-east-1", authcfg=authcfg)
    w = widget_for(qgis_iface, conn)
    connect(w)
    assert w.store is not None, w.last_failure
    w.addButtonClicked()
    wait_for(w.add_task)
    layer = w.last_layer
    project = QgsProject.instance()
    project.write(str(tmp_path / "p.qgs"))
    QgsSettings().sync()
    settings_text = open(QgsSettings().fileName(), encoding="utf-8", errors="replace").read()
    for secret in (opts["secret"], opts["key"]):
        assert secret not in layer.source()
        assert secret not in (tmp_path / "p.qgs").read_text()
        assert secret not in settings_text
        assert not any(secret in m for m in logged)
    assert authcfg in layer.source()


def test_connections_export_and_import(qgis_iface, tmp_path):
    w = widget_for(qgis_iface, Connection("one", "/data/a.zarr"))
    upsert_connection(Connection("two", "s3://b/c.zarr", anon=True))
    w.export_connections(str(tmp_path / "c.xml"))
    save_custom_connections([])
    w.import_connections(str(tmp_path / "c.xml"))
    assert [c.name for c in custom_connections()] == ["one", "two"]
    assert custom_connections()[1].anon
    (tmp_path / "bad.xml").write_text("nonsense")
    w.import_connections(str(tmp_path / "bad.xml"))
    assert w.last_failure and "connections file" in w.last_failure[1]


def test_settings_round_trip():
    s = Settings(cache_dir="/tmp/tessera-cache", cache_limit_mb=100, memory_mb=64, concurrency=8, timeout_s=9,
                 default_year=2025)
    s.save()
    try:
        assert Settings.load() == s
        opts = Settings.load().store_options()
        assert (opts.cache_dir, opts.cache_limit_bytes, opts.concurrency, opts.timeout) == \
            ("/tmp/tessera-cache", 100 << 20, 8, 9.0)
    finally:
        Settings().save()


def test_data_source_manager_tab(qgis_iface):
    from tessera_qgis.dialog import TesseraSourceSelectProvider

    provider = TesseraSourceSelectProvider(qgis_iface)
    registry = QgsGui.sourceSelectProviderRegistry()
    registry.addProvider(provider)
    try:
        found = registry.providerByName("tessera")
        assert found is not None and found.text() == "TESSERA"
        widget = found.createDataSourceWidget()
        assert isinstance(widget, TesseraSourceWidget)
    finally:
        registry.removeProvider(provider)
    prov.forget_stores()


def test_qgis_proxy_reaches_the_http_client(qgis_iface, sample_http):
    """QGIS's proxy (Settings > Options > Network), with a user name and password: the proxy
    sees the requests with those credentials, and the password shows nowhere."""
    from support.servers import ForwardProxy

    proxy = ForwardProxy(auth=("bob", "pr0xy-s3cret")).start()
    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda msg, tag, level: logged.append(msg))
    s = QgsSettings()
    s.setValue("proxy/proxyEnabled", True)
    s.setValue("proxy/proxyType", "HttpProxy")
    s.setValue("proxy/proxyHost", "127.0.0.1")
    s.setValue("proxy/proxyPort", str(proxy.port))
    s.setValue("proxy/proxyUser", "bob")
    s.setValue("proxy/proxyPassword", "pr0xy-s3cret")
    try:
        w = widget_for(qgis_iface, Connection("through proxy", sample_http.store_url))
        connect(w)
        assert w.store is not None, w.last_failure
        assert any(u.endswith("/zarr.json") and u.startswith(sample_http.url) for u in proxy.seen), proxy.seen
        assert proxy.refused == 0, "the credentials were sent"
        s.setValue("proxy/proxyPassword", "wrong")
        w = widget_for(qgis_iface, Connection("through proxy, wrong password", f"{sample_http.url}/other.zarr"))
        connect(w)
        assert w.store is None and proxy.refused >= 1 and "HTTP 407" in w.info.toPlainText()
        assert not [m for m in logged + [w.info.toPlainText()] if "pr0xy-s3cret" in m or ":wrong@" in m]
    finally:
        for key in ("proxyEnabled", "proxyUser", "proxyPassword"):
            s.remove(f"proxy/{key}")
        s.setValue("proxy/proxyEnabled", False)
        proxy.stop()


def test_the_default_timeout_is_qgis_network_timeout():
    from qgis.core import QgsNetworkAccessManager

    old = QgsNetworkAccessManager.timeout()
    QgsNetworkAccessManager.setTimeout(7000)
    try:
        Settings().save()
        assert Settings.load().store_options().timeout == 7.0
    finally:
        QgsNetworkAccessManager.setTimeout(old)
