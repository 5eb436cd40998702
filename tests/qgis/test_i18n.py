"""Translations: scripts/i18n.py files every string under the context its module's tr() helper
passes to Qt at run time, lrelease compiles a translated .ts, and the plugin loads it."""
from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from qgis.PyQt.QtCore import QCoreApplication, QTranslator

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "i18n.py"
COMMITTED = REPO / "tessera_qgis" / "i18n" / "tessera_qgis_en.ts"

# Real strings of several modules, some passed to tr() through module-level tables.
KNOWN = {
    "tessera_qgis.plugin": ["About TESSERA embeddings", "Add TESSERA embeddings layer…"],
    "tessera_qgis.dialog": ["Connect", "Cannot reach the store", "3 bands as RGB"],
    "tessera_qgis.processing.base": ["Export embeddings", "Similarity to a reference", "Embeddings"],
    "tessera_qgis.options": ["Cache folder"],
    "tessera_qgis.style_dock": ["Year"],
}
GERMAN = {("TesseraProcessing", "Export embeddings"): "Einbettungen exportieren",
          ("TesseraPlugin", "About TESSERA embeddings"): "Über TESSERA-Einbettungen"}


@pytest.fixture
def work():
    """A scratch folder under build/ (the test root's /tmp is private to each run)."""
    path = REPO / "build" / "test-i18n" / uuid.uuid4().hex[:12]
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def i18n(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True)


def messages(ts: Path) -> dict[tuple[str, str], dict]:
    """(context, source) -> {"files": {...}, "translation": str, "type": str|None}."""
    out = {}
    for ctx in ET.parse(ts).getroot().iter("context"):
        for msg in ctx.iter("message"):
            tr = msg.find("translation")
            out[(ctx.findtext("name"), msg.findtext("source"))] = {
                "files": {Path(loc.get("filename")).name for loc in msg.iter("location")},
                "translation": tr.text or "", "type": tr.get("type")}
    return out


class RecordingTranslator(QTranslator):
    """Sees the context of every QCoreApplication.translate() call; translates nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str]] = []

    def translate(self, context, source, disambiguation=None, n=-1):  # noqa: N802 (Qt's name)
        self.seen.append((context, source))
        return None  # a null string: "not translated here", Qt goes on with the source text

    def isEmpty(self) -> bool:  # noqa: N802 (Qt's name): an empty translator is never asked
        return False


def runtime_context(module_name: str, text: str = "probe string") -> str:
    module = importlib.import_module(module_name)
    recorder = RecordingTranslator()
    assert QCoreApplication.installTranslator(recorder)
    try:
        assert module.tr(text) == text
    finally:
        QCoreApplication.removeTranslator(recorder)
    contexts = {c for c, s in recorder.seen if s == text}
    assert len(contexts) == 1, recorder.seen
    return contexts.pop()


@pytest.fixture
def generated(work):
    result = i18n("update", "--out", str(work))
    assert result.returncode == 0, result.stderr
    assert "not extractable" not in result.stderr, result.stderr
    return work / "tessera_qgis_en.ts"


def test_strings_are_filed_under_the_context_qt_sees_at_run_time(generated):
    msgs = messages(generated)
    contexts = {}
    for module_name, strings in KNOWN.items():
        contexts[module_name] = runtime_context(module_name)
        for text in strings:
            assert (contexts[module_name], text) in msgs, f"{text!r} not under {contexts[module_name]}"
    assert len(set(contexts.values())) == len(contexts), "each module has its own context"
    # Every extracted message of a module with a tr() helper sits under that helper's context.
    by_file = {name.rsplit(".", 1)[1] + ".py": ctx for name, ctx in contexts.items()}
    by_file["inspector.py"] = runtime_context("tessera_qgis.inspector")
    for algorithm in ("export", "similarity", "change", "sample", "classify"):  # they use base's tr()
        by_file[f"{algorithm}.py"] = runtime_context(f"tessera_qgis.processing.{algorithm}")
    for (ctx, source), info in msgs.items():
        for file in info["files"] & by_file.keys():
            assert ctx == by_file[file], f"{source!r} from {file} filed under {ctx}"
    assert all(info["type"] == "unfinished" and not info["translation"] for info in msgs.values())


def test_a_translated_locale_is_kept_compiled_and_used_by_tr(generated):
    work = generated.parent
    # A translator's German file: the template with two strings translated.
    tree = ET.parse(generated)
    tree.getroot().set("language", "de")
    for ctx in tree.getroot().iter("context"):
        for msg in ctx.iter("message"):
            german = GERMAN.get((ctx.findtext("name"), msg.findtext("source")))
            if german:
                tr = msg.find("translation")
                tr.text = german
                del tr.attrib["type"]
    de_ts = work / "tessera_qgis_de.ts"
    tree.write(de_ts, encoding="utf-8", xml_declaration=True)
    # `make i18n`: refresh every .ts from the sources (translations survive), then lrelease.
    result = i18n("all", "--out", str(work))
    assert result.returncode == 0, result.stderr
    refreshed = messages(de_ts)
    for key, german in GERMAN.items():
        assert refreshed[key]["translation"] == german and refreshed[key]["type"] is None
    assert refreshed[("TesseraDialog", "Connect")]["type"] == "unfinished"
    qm = work / "tessera_qgis_de.qm"
    assert qm.is_file() and qm.stat().st_size > 0
    assert not (work / "tessera_qgis_en.qm").exists(), "the source language is not compiled"

    from tessera_qgis import plugin
    from tessera_qgis.processing import base as processing_base

    translator = QTranslator()
    assert translator.load(str(qm))
    assert QCoreApplication.installTranslator(translator)
    try:
        assert processing_base.tr("Export embeddings") == "Einbettungen exportieren"
        assert plugin.tr("About TESSERA embeddings") == "Über TESSERA-Einbettungen"
        assert plugin.tr("Export embeddings") == "Export embeddings", "another context's translation"
        assert processing_base.tr("Embeddings") == "Embeddings", "untranslated stays English"
    finally:
        QCoreApplication.removeTranslator(translator)
    assert processing_base.tr("Export embeddings") == "Export embeddings"


def test_the_plugin_loads_the_users_locale_and_removes_it_on_unload(generated, recording_iface, monkeypatch):
    from tessera_qgis import plugin as plugin_module

    work = generated.parent
    ts = ET.parse(generated)
    for ctx in ts.getroot().iter("context"):
        for msg in ctx.iter("message"):
            german = GERMAN.get((ctx.findtext("name"), msg.findtext("source")))
            if german:
                msg.find("translation").text = german
                del msg.find("translation").attrib["type"]
    ts.write(work / "tessera_qgis_de.ts", encoding="utf-8", xml_declaration=True)
    assert i18n("release", "--out", str(work)).returncode == 0
    monkeypatch.setattr(plugin_module, "I18N_DIR", work)
    monkeypatch.setattr(plugin_module, "ui_locale", lambda: "de_AT")  # no de_AT file: falls back to de

    p = plugin_module.TesseraPlugin(recording_iface)
    try:
        assert p.translator is not None
        p.initGui()
        assert p.actions[-1].text() == "Über TESSERA-Einbettungen"
    finally:
        p.unload()
    assert p.translator is None
    assert plugin_module.tr("About TESSERA embeddings") == "About TESSERA embeddings"
    assert plugin_module.load_translator("fr", work) is None
    assert plugin_module.load_translator("", work) is None


def test_committed_template_is_up_to_date_with_the_sources():
    """A new tr("...") string (or a removed one) without `make i18n` fails here; so does a
    tr(variable) the extractor cannot follow."""
    assert COMMITTED.is_file()
    result = i18n("check")
    assert result.returncode == 0, result.stdout + result.stderr
