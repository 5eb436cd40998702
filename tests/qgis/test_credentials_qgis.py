"""A password in a store URL never shows in QGIS: the dialog's messages, the message log, the
message bar, task descriptions, an invalid layer's error and the layer's metadata."""
from __future__ import annotations

import pytest
from qgis.core import QgsApplication, QgsRasterLayer

from support.qgis_helpers import wait_for
from support.servers import Faults, free_port
from tessera_qgis.core.connections import Connection
from tessera_qgis.dialog import TesseraSourceWidget
from tessera_qgis.layers import make_layer
from tessera_qgis.log import log, notifier, report
from tessera_qgis.settings import upsert_connection
from tessera_qgis import tasks

pytestmark = pytest.mark.usefixtures("provider_active", "no_saved_connections")
PASSWORD = "hunter2"


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


def connect(qgis_iface, url: str) -> TesseraSourceWidget:
    upsert_connection(Connection("with a password", url))
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
    url = f"{srv.url}/{sample_store.name}".replace("http://", f"http://alice:{PASSWORD}@")
    w = connect(qgis_iface, url)
    assert w.store is not None, w.last_failure
    assert "http://alice:***@127.0.0.1:" in w.info.toPlainText() and PASSWORD not in w.info.toPlainText()
    w.mode.setCurrentIndex(2)  # 3 bands
    w.addButtonClicked()
    wait_for(w.add_task)
    layer = w.last_layer
    assert layer.isValid()
    meta = layer.dataProvider().htmlMetadata()
    assert "alice:***@" in meta and PASSWORD not in meta
    other_year = make_layer(url, 2025, bands=[1, 2, 3], stretch=[(-2, 2)] * 3)  # nothing of it read yet
    srv.faults = Faults("503", match="/embeddings/")
    other_year.dataProvider().block(1, other_year.extent(), 40, 30)
    QgsApplication.processEvents()
    assert any("could not be drawn" in m for m in seen) and not [m for m in seen if PASSWORD in m]


def test_an_invalid_layer_says_why_without_the_password():
    layer = QgsRasterLayer(f"url=http://alice:{PASSWORD}@127.0.0.1:{free_port()}/x.zarr&year=2024&bands=1",
                           "tessera layer", "tessera")
    assert not layer.isValid()
    error = layer.dataProvider().lastError()
    assert "cannot reach the store at http://alice:***@127.0.0.1:" in error and PASSWORD not in error, error


def test_log_report_and_task_descriptions_are_the_last_line_of_defence(seen):
    url = f"https://bob:{PASSWORD}@example.org/s.zarr"
    log(f"opening {url}")
    report(f"title {url}", f"text {url}")
    task = tasks.start(f"Open {url}", lambda cancel, progress: None, lambda result: None)
    assert task.description() == "Open https://bob:***@example.org/s.zarr"
    wait_for(task)
    QgsApplication.processEvents()
    assert "opening https://bob:***@example.org/s.zarr" in seen and "text https://bob:***@example.org/s.zarr" in seen
    assert not [m for m in seen if PASSWORD in m]
