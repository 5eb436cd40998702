"""Background jobs (tasks.py): results and failures arrive on the main thread, a task nobody
holds still runs, and Cancel stops the downloads: against a slow HTTP server on 127.0.0.1, no
request arrives later than one second after Cancel, and nothing is reported as an error."""
from __future__ import annotations

import gc
import os
import sys
import threading
import time

import pytest
from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject,
                       QgsRectangle, QgsTask)
from qgis.PyQt.QtCore import QThread

from support.qgis_helpers import wait_for
from tessera_qgis import missing, tasks
from tessera_qgis import provider as prov
from tessera_qgis.core.sample import SampleSpec
from tessera_qgis.layers import make_layer
from tessera_qgis.log import notifier
from tessera_qgis.missing import MissingDependenciesPlugin
from tessera_qgis.settings import Settings
from tessera_qgis.style_dock import StyleDock
from tessera_qgis.tools import fit_pca_to

pytestmark = pytest.mark.usefixtures("provider_active")
WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def on_main_thread() -> bool:
    return QThread.currentThread() is QgsApplication.instance().thread()


def process_events_until(done, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while not done():
        QgsApplication.processEvents()
        assert time.monotonic() - t0 < timeout, "gave up waiting"
        time.sleep(0.01)


def process_events_for(seconds: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        QgsApplication.processEvents()
        time.sleep(0.01)


@pytest.fixture
def messages():
    """Messages sent to the message bar (log.report) during the test (render threads of
    layers left by earlier tests may add theirs: assertions look for the jobs' own)."""
    seen: list[str] = []

    def record(title, text, level):
        seen.append(text)

    notifier.message.connect(record)
    yield seen
    notifier.message.disconnect(record)


def test_result_failure_and_progress_arrive_on_the_main_thread(messages):
    got = []
    watching = threading.Event()

    def job(cancel, progress):
        watching.wait(30)
        progress(0.5)
        return threading.current_thread() is threading.main_thread(), cancel()

    ok = tasks.start("ok job", job, lambda result: got.append(("done", result, on_main_thread())))
    seen_progress = []
    ok.progressChanged.connect(seen_progress.append)
    watching.set()
    wait_for(ok)
    assert got == [("done", (False, False), True)], "ran off the main thread, delivered on it"
    assert ok.outcome == "done" and 50.0 in seen_progress

    def boom(cancel, progress):
        raise ValueError("no embedding here")

    bad = tasks.start("bad job", boom, lambda r: got.append("done?"),
                      lambda exc: got.append(("failed", str(exc), on_main_thread())))
    wait_for(bad)
    assert got[1:] == [("failed", "no embedding here", True)] and bad.outcome == "failed"
    # Without on_failed the failure goes to the message bar and the log.
    unheard = tasks.start("unheard job", boom, lambda r: got.append("done?"))
    wait_for(unheard)
    assert [m for m in messages if "job" in m] == ["unheard job failed: no embedding here"]
    assert len(got) == 2
    # A failing result callback is reported too; nothing escapes finished().
    crash = tasks.start("crash", lambda c, p: 1, lambda r: 1 / 0)
    wait_for(crash)
    assert [m for m in messages if m.startswith("crash")] == ["crash: division by zero"]
    assert not {ok, bad, unheard, crash} & set(tasks.running()), "none kept after finishing"


def test_a_task_nobody_holds_still_runs_and_finishes():
    got = []

    def start_and_forget() -> None:
        tasks.start("forgotten", lambda c, p: 42, got.append)

    start_and_forget()
    gc.collect()
    process_events_until(lambda: got)
    assert got == [42] and "forgotten" not in [t.description() for t in tasks.running()]


def test_cancelling_a_queued_task_reports_it_as_cancelled(messages):
    got = []
    gate = threading.Event()
    # Fill the task manager's threads so the last task waits in the queue.
    blockers = [tasks.start(f"blocker {i}", lambda c, p: gate.wait(30)) for i in range(QThread.idealThreadCount() + 2)]
    queued = tasks.start("queued", lambda c, p: got.append("ran"), got.append,
                         lambda exc: got.append(exc), lambda: got.append("cancelled"))
    assert queued.status() == QgsTask.TaskStatus.Queued
    queued.cancel()
    gate.set()
    process_events_until(lambda: not set(blockers + [queued]) & set(tasks.running()))
    assert got == ["cancelled"] and queued.outcome == "cancelled" and len(blockers) > 2
    assert not [m for m in messages if "queued" in m]


@pytest.fixture
def slow_layer(sample_store, range_server):
    """A PCA layer on the sample store behind a slow server (0.15 s per request, 4 at a time),
    and the server."""
    settings = Settings.load()
    settings.concurrency = 4
    settings.save()
    srv = range_server(sample_store.parent, latency=0.15)
    try:
        layer = make_layer(f"{srv.url}/{sample_store.name}", 2024, pca="global", name="slow")
    finally:
        Settings().save()
    # Not in the project nor on a canvas: only the job under test may ask this server for data.
    return layer, srv


def whole_store_rect() -> QgsRectangle:
    """The sample store's area (lon/lat)."""
    return QgsRectangle(*SampleSpec().bbox)


def cancel_after_some_requests(task: tasks.Task, srv, before: int, n: int = 4) -> float:
    """Wait until the job has made `n` requests, cancel it; returns when (time.monotonic())."""
    process_events_until(lambda: len(srv.arrivals()) >= before + n or task.status() in (
        QgsTask.TaskStatus.Complete, QgsTask.TaskStatus.Terminated))
    assert task.status() == QgsTask.TaskStatus.Running, "the job ended before it could be cancelled"
    t = time.monotonic()
    task.cancel()
    return t


def assert_stopped(srv, cancelled_at: float) -> None:
    """No request arrives later than one second after Cancel (watched for 2.5 s more)."""
    process_events_for(max(0.0, cancelled_at + 2.5 - time.monotonic()))
    late = [(round(t - cancelled_at, 2), path) for t, path in srv.arrivals() if t > cancelled_at + 1.0]
    assert not late, f"requests after Cancel: {late[:5]} ({len(late)})"


def test_cancel_stops_a_pca_fit_within_a_second(slow_layer, sample_store, qgis_iface, messages):
    layer, srv = slow_layer
    state = prov.state_for(layer.source())
    before = len(srv.arrivals())
    done = []
    task = fit_pca_to(qgis_iface, layer, whole_store_rect(), WGS84, on_done=lambda: done.append(1))
    cancelled_at = cancel_after_some_requests(task, srv, before)
    wait_for(task)
    assert task.outcome == "cancelled"
    assert_stopped(srv, cancelled_at)
    assert done == [] and state.pca.source == "global", "a cancelled fit changes nothing"
    assert not [m for m in messages if "PCA fit" in m], "a cancelled job reports no error"


def test_cancel_stops_a_view_stretch_within_a_second(slow_layer, sample_store, qgis_iface, qgis_canvas, messages):
    layer, srv = slow_layer
    spec_uri = layer.source().replace("pca=global", "bands=1,2,3")
    layer.setDataSource(spec_uri, layer.name(), prov.PROVIDER_KEY)
    qgis_canvas.setLayers([])  # the dock reads the canvas's view; nothing is drawn from this server
    qgis_canvas.setDestinationCrs(layer.crs())
    tr = QgsCoordinateTransform(WGS84, layer.crs(), QgsProject.instance())
    qgis_canvas.setExtent(tr.transformBoundingBox(whole_store_rect()))
    dock = StyleDock(qgis_iface)
    dock.set_layer(layer)
    before_renderer = layer.renderer().clone()
    before = len(srv.arrivals())
    dock.stretch.setCurrentIndex(0)  # 2-98 % of the view: read in a task
    dock.apply_stretch()
    cancelled_at = cancel_after_some_requests(dock.last_task, srv, before)
    wait_for(dock.last_task)
    assert dock.last_task.outcome == "cancelled"
    assert_stopped(srv, cancelled_at)
    assert not [m for m in messages if "stretch" in m]
    assert layer.renderer().redContrastEnhancement().maximumValue() == \
        before_renderer.redContrastEnhancement().maximumValue(), "a cancelled stretch is not applied"


def test_the_install_task_reports_pip_failing_and_cancel_stops_pip(monkeypatch, qgis_iface, tmp_path):
    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda msg, tag, level: logged.append(msg))
    plugin = MissingDependenciesPlugin(qgis_iface, ["zarr is not installed"])
    monkeypatch.setattr(missing, "install_command",
                        lambda: [sys.executable, "-c", "import sys; sys.exit('ERROR: no matching distribution for zarr')"])
    plugin.install()
    wait_for(plugin.task)
    assert plugin.task.outcome == "failed"
    assert any("Installing the packages failed: ERROR: no matching distribution" in m for m in logged)
    # A pip that takes long: Cancel kills it, and that is no failure.
    pid_file = tmp_path / "pid"
    monkeypatch.setattr(missing, "install_command", lambda: [
        sys.executable, "-c", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"])
    logged.clear()
    plugin.install()
    process_events_until(lambda: pid_file.is_file() and pid_file.read_text())
    plugin.task.cancel()
    wait_for(plugin.task)
    assert plugin.task.outcome == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    assert not any("failed" in m for m in logged)
