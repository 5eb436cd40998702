"""A password in a store URL never shows in QGIS: the dialog's messages, the message log, the
message bar, task descriptions, an invalid layer's error and the layer's metadata; and it is
never saved in plain text: a connection's or a new layer's URL password moves into QGIS's
authentication database (saved connections, layer URIs and projects hold the configuration's id)."""
from __future__ import annotations

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsProject, QgsRasterLayer, QgsSettings

from support.qgis_helpers import auth_manager, wait_for
from support.servers import Faults, free_port
from tessera_qgis.core.connections import Connection
from tessera_qgis.core.urls import with_credentials
from tessera_qgis.credentials import store_password
from tessera_qgis.dialog import ConnectionEditor, TesseraSourceWidget
from tessera_qgis.layers import make_layer
from tessera_qgis.log import log, notifier, report
from tessera_qgis.settings import custom_connections, upsert_connection
from tessera_qgis import tasks

pytestmark = pytest.mark.usefixtures("provider_active", "no_saved_connections")
PASSWORD = "hunter2"


@pytest.fixture(autouse=True)
def unlocked_auth_manager():
    """QGIS's authentication database unlocked (in the desktop, QGIS asks for its master
    password the first time a password is stored)."""
    return auth_manager()


@pytest.fixture
def seen():
    """Every message-log line and message-bar text from now on."""
    out: list[str] = []

    def logged(msg, tag, level):
        out.append(msg)

    def shown(title, text, level):
        out.extend((title, text))

    QgsApplication.messageLog().messageReceived.connect(logged)
    notifier.message.connect(shown)
    yield out
    QgsApplication.messageLog().messageReceived.disconnect(logged)
    notifier.message.disconnect(shown)


def connect(qgis_iface, url: str, authcfg: str = "") -> TesseraSourceWidget:
    upsert_connection(Connection("with a password", url, authcfg=authcfg))
    w = TesseraSourceWidget(iface=qgis_iface)
    w.reload_connections("with a password")
    w.connect_button.click()
    w.task_description = w.task.description()  # the task manager's entry (the task is deleted when done)
    wait_for(w.task)
    return w


def test_a_failed_connect_shows_and_logs_the_url_masked(qgis_iface, seen):
    port = free_port()
    w = connect(qgis_iface, f"http://alice:{PASSWORD}@127.0.0.1:{port}/x.zarr")
    assert w.store is None and w.last_failure[0] == "unreachable"
    text = w.info.toPlainText()
    assert f"http://alice:***@127.0.0.1:{port}/x.zarr" in text, text
    QgsApplication.processEvents()
    assert seen and not [m for m in seen + [text, w.last_failure[1], w.task_description] if PASSWORD in m]


def test_a_connected_store_its_layer_and_a_failed_render_mask_the_password(qgis_iface, sample_store, range_server,
                                                                           seen):
    srv = range_server(sample_store.parent)
    url = with_credentials(f"{srv.url}/{sample_store.name}", "alice", PASSWORD)
    w = connect(qgis_iface, url)
    assert w.store is not None, w.last_failure
    assert "http://alice:***@127.0.0.1:" in w.info.toPlainText() and PASSWORD not in w.info.toPlainText()
    w.mode.setCurrentIndex(2)  # 3 bands
    w.addButtonClicked()
    wait_for(w.add_task)
    layer = w.last_layer
    assert layer.isValid()
    meta = layer.dataProvider().htmlMetadata()
    assert PASSWORD not in meta and PASSWORD not in layer.source()
    other_year = make_layer(url, 2025, bands=[1, 2, 3], stretch=[(-2, 2)] * 3)  # nothing of it read yet
    srv.faults = Faults("503", match="/embeddings/")
    other_year.dataProvider().block(1, other_year.extent(), 40, 30)
    QgsApplication.processEvents()
    assert any("could not be drawn" in m for m in seen) and not [m for m in seen if PASSWORD in m]


def test_a_layer_uri_with_a_password_in_its_url_is_refused_without_showing_it(sample_store, range_server):
    srv = range_server(sample_store.parent)
    url = f"{srv.url}/{sample_store.name}"
    assert QgsRasterLayer(f"url={url}&year=2024&bands=1", "tessera layer", "tessera").isValid()
    layer = QgsRasterLayer(f"url={with_credentials(url, 'alice', PASSWORD)}&year=2024&bands=1",
                           "tessera layer", "tessera")
    assert not layer.isValid()
    error = layer.dataProvider().lastError()
    assert "password in the store URL does not belong in a layer URI" in error and "authcfg" in error, error
    assert PASSWORD not in error


def test_log_report_and_task_descriptions_are_the_last_line_of_defence(seen):
    url = f"https://bob:{PASSWORD}@127.0.0.1:9/s.zarr"
    log(f"opening {url}")
    report(f"title {url}", f"text {url}")
    task = tasks.start(f"Open {url}", lambda cancel, progress: None, lambda result: None)
    assert task.description() == "Open https://bob:***@127.0.0.1:9/s.zarr"
    wait_for(task)
    QgsApplication.processEvents()
    assert "opening https://bob:***@127.0.0.1:9/s.zarr" in seen and "text https://bob:***@127.0.0.1:9/s.zarr" in seen
    assert not [m for m in seen if PASSWORD in m]


def saved_config(authcfg: str) -> tuple[str, str]:
    cfg = QgsAuthMethodConfig()
    assert QgsApplication.authManager().loadAuthenticationConfig(authcfg, cfg, True)
    return cfg.config("username"), cfg.config("password")


def test_a_connections_password_goes_to_the_auth_database_not_the_settings_or_project(
        qgis_iface, sample_store, range_server, tmp_path):
    """A connection saved with a user name and password in its URL keeps the URL without the
    password and a QGIS authentication configuration holding it; connecting to a server that
    wants HTTP Basic works with it, the layer added, the project and the exported connections
    hold no password."""
    srv = range_server(sample_store.parent)
    srv.basic_auth = ("alice", PASSWORD)
    clean = f"{srv.url}/{sample_store.name}"
    upsert_connection(Connection("with a password", with_credentials(clean, "alice", PASSWORD)))
    raw = str(QgsSettings().value("tessera/connections", ""))
    assert PASSWORD not in raw and clean in raw, "saved without the password (before any Connect)"
    saved, = custom_connections()
    w = connect(qgis_iface, saved.url, saved.authcfg)
    assert w.store is not None, w.last_failure
    assert saved.url == clean and saved.authcfg
    assert saved_config(saved.authcfg) == ("alice", PASSWORD)
    assert [r.status for r in srv.requests()] and all(r.status in (200, 206) for r in srv.requests())
    w.mode.setCurrentIndex(2)  # 3 bands
    w.addButtonClicked()
    wait_for(w.add_task)
    layer = w.last_layer
    assert layer.isValid() and PASSWORD not in layer.source() and f"authcfg={saved.authcfg}" in layer.source()
    block = layer.dataProvider().block(1, layer.extent(), 40, 30)
    values = np.frombuffer(bytes(block.data()), np.float32)
    assert np.isfinite(values).mean() > 0.5, "drawn through the server that wants the password"
    assert all(r.status in (200, 206) for r in srv.requests()), "no request without it"
    project = QgsProject.instance()
    project.addMapLayer(layer)
    project.write(str(tmp_path / "p.qgs"))
    text = (tmp_path / "p.qgs").read_text()
    assert PASSWORD not in text and saved.authcfg in text
    w.export_connections(str(tmp_path / "c.xml"))
    assert PASSWORD not in (tmp_path / "c.xml").read_text()
    project.clear()
    QgsApplication.authManager().removeAuthenticationConfig(saved.authcfg)


def test_make_layer_moves_a_urls_password_into_the_auth_database(sample_store, range_server, tmp_path):
    srv = range_server(sample_store.parent)
    srv.basic_auth = ("alice", PASSWORD)
    clean = f"{srv.url}/{sample_store.name}"
    layer = make_layer(with_credentials(clean, "alice", PASSWORD), 2024, bands=[1, 2, 3],
                       stretch=[(-2, 2)] * 3)
    assert layer.isValid() and PASSWORD not in layer.source() and f"url={clean}&" in layer.source()
    authcfg = dict(p.split("=", 1) for p in layer.source().split("&"))["authcfg"]
    assert saved_config(authcfg) == ("alice", PASSWORD)
    project = QgsProject.instance()
    project.addMapLayer(layer)
    project.write(str(tmp_path / "p.qgs"))
    assert PASSWORD not in (tmp_path / "p.qgs").read_text()
    project.clear()
    QgsApplication.authManager().removeAuthenticationConfig(authcfg)


def test_the_connection_editor_moves_the_password_and_refuses_two_credentials():
    editor = ConnectionEditor()
    editor.name.setText("typed")
    editor.url.setText(f"https://alice:{PASSWORD}@127.0.0.1:9/s.zarr")
    editor._accept()
    conn = editor.result_connection
    assert conn.url == "https://127.0.0.1:9/s.zarr" and editor.url.text() == conn.url
    assert conn.authcfg and editor.auth.configId() == conn.authcfg
    assert saved_config(conn.authcfg) == ("alice", PASSWORD)
    QgsApplication.authManager().removeAuthenticationConfig(conn.authcfg)
    with pytest.raises(ValueError, match="remove the password from the URL") as err:
        store_password(f"https://alice:{PASSWORD}@127.0.0.1:9/s.zarr", "abc1234")
    assert PASSWORD not in str(err.value)


def test_a_connection_saved_with_a_password_before_is_moved_on_connect(qgis_iface, sample_store, range_server):
    import json

    srv = range_server(sample_store.parent)
    srv.basic_auth = ("alice", PASSWORD)
    clean = f"{srv.url}/{sample_store.name}"
    old = Connection("saved long ago", with_credentials(clean, "alice", PASSWORD))
    QgsSettings().setValue("tessera/connections", json.dumps([old.to_dict()]))  # as versions before wrote it
    w = TesseraSourceWidget(iface=qgis_iface)
    w.reload_connections("saved long ago")
    w.connect_button.click()
    wait_for(w.task)
    assert w.store is not None, w.last_failure
    assert PASSWORD not in str(QgsSettings().value("tessera/connections", ""))
    saved, = custom_connections()
    assert (saved.name, saved.url) == ("saved long ago", clean) and saved_config(saved.authcfg) == ("alice", PASSWORD)
    assert w.current() == saved
    QgsApplication.authManager().removeAuthenticationConfig(saved.authcfg)
