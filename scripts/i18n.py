#!/usr/bin/env python3
"""Translation sources of the plugin: extract the user-visible strings into Qt Linguist .ts
files and compile translated ones to .qm (`make i18n`).

    python scripts/i18n.py update [--out DIR]   write DIR/tessera_qgis_en.ts (the template) and
                                                refresh every DIR/tessera_qgis_<locale>.ts
    python scripts/i18n.py release [--out DIR]  lrelease each translated .ts to its .qm
    python scripts/i18n.py check                exit 1 if the committed template misses or
                                                keeps strings (compared with the sources)

Why not pylupdate5: the plugin's modules translate through a module-level helper,

    def tr(text):
        return QCoreApplication.translate("TesseraDialog", text)

and pylupdate5 files every `tr("...")` call outside a class under "@default" (inside a class,
under the class's name), never under "TesseraDialog", so its translations would never be
found at run time. This extractor reads the context each helper passes to translate() and
files the helper's calls under it. It understands, per module:

  * tr("literal") with a module-level helper `def tr(text)` (or a `tr` imported from another
    module of the package), and self.tr("literal") in a class whose method `tr` does the same;
  * QCoreApplication.translate("Context", "literal"[, "disambiguation"]);
  * QT_TRANSLATE_NOOP("Context", "literal") and QT_TR_NOOP("literal") markers;
  * tr(NAME), tr(NAME[...]), tr(NAME.get(...)) where NAME is a module-level string, or a dict
    whose values are strings (all values are extracted), and tr(x) inside
    `for a, x in NAME:` where NAME is a module-level tuple/list of string tuples.

Any other non-literal argument is reported on stderr with its file and line (it cannot be
extracted; `check` fails on such calls so new ones get noticed).
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "tessera_qgis"
I18N_DIR = REPO / PACKAGE / "i18n"
TEMPLATE_LOCALE = "en"  # the source language: its file is the template translators copy


def ts_name(locale: str) -> str:
    return f"{PACKAGE}_{locale}.ts"


@dataclass
class Message:
    context: str
    source: str
    comment: str = ""
    locations: list[tuple[Path, int]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.context, self.source, self.comment


@dataclass
class Skipped:
    path: Path
    line: int
    what: str


def _literal(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _helper_context(fn: ast.FunctionDef, is_method: bool) -> str | None:
    """The context of `def tr(text): ... return QCoreApplication.translate("Ctx", text)`."""
    args = [a.arg for a in fn.args.args]
    if is_method:
        args = args[1:]
    if not args:
        return None
    for node in ast.walk(fn):
        if (isinstance(node, ast.Return) and isinstance(node.value, ast.Call)
                and _is_qt_translate(node.value) and len(node.value.args) >= 2
                and isinstance(node.value.args[1], ast.Name) and node.value.args[1].id == args[0]):
            return _literal(node.value.args[0])
    return None


def _callee(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


QT_APPS = {"QCoreApplication", "QApplication", "QGuiApplication", "QgsApplication"}


def _is_qt_translate(call: ast.Call) -> bool:
    """QCoreApplication.translate(...) (or through QApplication/QgsApplication), a bare
    translate(...) or QT_TRANSLATE_NOOP(...); not other methods called translate (geometry)."""
    f = call.func
    if isinstance(f, ast.Name):
        return f.id in ("translate", "QT_TRANSLATE_NOOP")
    return (isinstance(f, ast.Attribute) and f.attr == "translate"
            and isinstance(f.value, ast.Name) and f.value.id in QT_APPS)


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([root.name, *parts])


class Module:
    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.name = _module_name(path, root)
        self.is_package = path.name == "__init__.py"
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.tr_context: str | None = None   # context of this module's `tr`
        self.tr_import: str | None = None    # or: the module `tr` is imported from
        self.constants: dict[str, ast.AST] = {}
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "tr":
                self.tr_context = _helper_context(node, is_method=False)
            elif isinstance(node, ast.ImportFrom) and any(a.name == "tr" and a.asname in (None, "tr")
                                                          for a in node.names):
                self.tr_import = self._resolve(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and node.value is not None:
                        self.constants[t.id] = node.value

    def _resolve(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.name.split(".")
        if not self.is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def strings_of(self, name: str, index: int | None = None) -> list[str] | None:
        """Strings of a module-level constant: a str, a dict's str values, or the element
        `index` of each tuple in a tuple/list of tuples. None when it is not such a constant."""
        value = self.constants.get(name)
        if value is None:
            return None
        if index is None and _literal(value) is not None:
            return [_literal(value)]
        if index is None and isinstance(value, ast.Dict):
            out = [_literal(v) for v in value.values]
        elif index is not None and isinstance(value, (ast.Tuple, ast.List)):
            out = [_literal(e.elts[index]) if isinstance(e, (ast.Tuple, ast.List)) and len(e.elts) > index
                   else None for e in value.elts]
        else:
            return None
        return out if out and None not in out else None


class Extractor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules = {m.name: m for m in (Module(p, root) for p in sorted(root.rglob("*.py"))
                                            if "__pycache__" not in p.parts)}
        self.messages: dict[tuple[str, str, str], Message] = {}
        self.skipped: list[Skipped] = []

    def context_of_tr(self, module: Module, seen=()) -> str | None:
        if module.tr_context is not None:
            return module.tr_context
        if module.tr_import and module.tr_import in self.modules and module.name not in seen:
            return self.context_of_tr(self.modules[module.tr_import], (*seen, module.name))
        return None

    def add(self, context: str, source: str, module: Module, line: int, comment: str = "") -> None:
        msg = self.messages.setdefault((context, source, comment), Message(context, source, comment))
        msg.locations.append((module.path, line))

    def run(self) -> list[Message]:
        for module in self.modules.values():
            self._visit(module, module.tree, self.context_of_tr(module), loops={})
        return list(self.messages.values())

    def _visit(self, module: Module, node: ast.AST, tr_context: str | None,
               loops: dict[str, tuple[str, int]], self_context: str | None = None) -> None:
        if isinstance(node, ast.ClassDef):
            self_context = None
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "tr":
                    self_context = _helper_context(item, is_method=True)
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Name) and isinstance(node.target, ast.Tuple):
            loops = dict(loops)
            for i, t in enumerate(node.target.elts):
                if isinstance(t, ast.Name):
                    loops[t.id] = (node.iter.id, i)
        if isinstance(node, ast.Call):
            self._call(module, node, tr_context, loops, self_context)
        for child in ast.iter_child_nodes(node):
            self._visit(module, child, tr_context, loops, self_context)

    def _call(self, module: Module, call: ast.Call, tr_context, loops, self_context) -> None:
        name = _callee(call)
        f = call.func
        line = call.lineno
        if _is_qt_translate(call) and len(call.args) >= 2:
            ctx, src = _literal(call.args[0]), _literal(call.args[1])
            comment = _literal(call.args[2]) if len(call.args) > 2 else ""
            if ctx is not None and src is not None:
                self.add(ctx, src, module, line, comment or "")
            elif not self._is_helper_body(module, call):  # the helpers' own translate() calls
                self.skipped.append(Skipped(module.path, line, ast.unparse(call)))
            return
        if name == "tr" and isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self":
            context = self_context
        elif name in ("tr", "QT_TR_NOOP") and isinstance(f, ast.Name):
            context = tr_context
        else:
            return
        if not call.args:
            return
        if context is None:
            self.skipped.append(Skipped(module.path, line, f"{ast.unparse(call)} (no translate() context found for tr)"))
            return
        sources = self._sources(module, call.args[0], loops)
        if sources is None:
            self.skipped.append(Skipped(module.path, line, ast.unparse(call)))
            return
        comment = _literal(call.args[1]) if len(call.args) > 1 else ""
        for src in sources:
            self.add(context, src, module, line, comment or "")

    def _is_helper_body(self, module: Module, call: ast.Call) -> bool:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef) and node.name == "tr":
                if any(n is call for n in ast.walk(node)):
                    return True
        return False

    def _sources(self, module: Module, arg: ast.AST, loops) -> list[str] | None:
        if _literal(arg) is not None:
            return [_literal(arg)]
        if isinstance(arg, ast.Name):
            if arg.id in loops:
                return module.strings_of(*loops[arg.id])
            return module.strings_of(arg.id)
        # NAME[...] or NAME.get(...): every value of the dict NAME
        if isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Name):
            return module.strings_of(arg.value.id)
        if (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "get"
                and isinstance(arg.func.value, ast.Name)):
            return module.strings_of(arg.func.value.id)
        return None


def extract(root: Path = REPO / PACKAGE) -> tuple[list[Message], list[Skipped]]:
    ex = Extractor(root)
    return ex.run(), ex.skipped


# --- .ts files ---------------------------------------------------------------------------

def read_ts(path: Path) -> dict[tuple[str, str, str], tuple[str, str | None]]:
    """(context, source, comment) -> (translation text, translation type attribute)."""
    out = {}
    for ctx in ET.parse(path).getroot().iter("context"):
        name = ctx.findtext("name", "")
        for msg in ctx.iter("message"):
            tr = msg.find("translation")
            key = (name, msg.findtext("source", ""), msg.findtext("comment", "") or "")
            out[key] = ((tr.text or "") if tr is not None else "", tr.get("type") if tr is not None else "unfinished")
    return out


def write_ts(path: Path, messages: list[Message], locale: str,
             old: dict[tuple[str, str, str], tuple[str, str | None]] | None = None) -> None:
    """Qt Linguist TS 2.1; translations of `old` are kept, ones whose source string is gone
    are kept as type="vanished" (lrelease leaves them out)."""
    old = dict(old or {})
    by_context: dict[str, list[Message]] = {}
    for m in messages:
        by_context.setdefault(m.context, []).append(m)
    vanished = {k: v for k, v in old.items() if k not in {m.key for m in messages} and v[0]}
    for (ctx, _, _) in vanished:
        by_context.setdefault(ctx, [])
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<!DOCTYPE TS>",
             f'<TS version="2.1" language={quoteattr(locale)} sourcelanguage="{TEMPLATE_LOCALE}">']
    for ctx in sorted(by_context):
        lines += ["<context>", f"    <name>{escape(ctx)}</name>"]
        entries = [(m.source, m.comment, m.locations, old.get(m.key, ("", "unfinished"))) for m in by_context[ctx]]
        entries += [(s, c, [], (text, "vanished")) for (cx, s, c), (text, _) in vanished.items() if cx == ctx]
        for source, comment, locations, (text, kind) in entries:
            lines.append("    <message>")
            for file, line in sorted(locations):
                rel = Path(os.path.relpath(file, path.parent)).as_posix()
                lines.append(f"        <location filename={quoteattr(rel)} line=\"{line}\"/>")
            lines.append(f"        <source>{escape(source)}</source>")
            if comment:
                lines.append(f"        <comment>{escape(comment)}</comment>")
            if kind == "unfinished" and not text:
                lines.append('        <translation type="unfinished"></translation>')
            else:
                attr = f' type="{kind}"' if kind else ""
                lines.append(f"        <translation{attr}>{escape(text)}</translation>")
            lines.append("    </message>")
        lines.append("</context>")
    lines.append("</TS>")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".ts.part")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def locale_files(folder: Path) -> dict[str, Path]:
    """locale -> .ts path, for every tessera_qgis_<locale>.ts in folder."""
    prefix = f"{PACKAGE}_"
    return {p.stem[len(prefix):]: p for p in sorted(folder.glob(f"{prefix}*.ts"))}


def update(out: Path, root: Path = REPO / PACKAGE) -> list[Path]:
    messages, skipped = extract(root)
    for s in skipped:
        print(f"i18n: not extractable: {s.path}:{s.line}: {s.what}", file=sys.stderr)
    written = []
    template = out / ts_name(TEMPLATE_LOCALE)
    write_ts(template, messages, TEMPLATE_LOCALE)
    written.append(template)
    for locale, path in locale_files(out).items():
        if locale != TEMPLATE_LOCALE:
            write_ts(path, messages, locale, read_ts(path))
            written.append(path)
    print(f"i18n: {len(messages)} strings in {len({m.context for m in messages})} contexts -> {template}", file=sys.stderr)
    return written


def release(out: Path, lrelease: str | None = None) -> list[Path]:
    tool = lrelease or shutil.which("lrelease") or shutil.which("lrelease-qt5")
    made = []
    for locale, ts in locale_files(out).items():
        if locale == TEMPLATE_LOCALE:
            continue
        if tool is None:
            raise SystemExit("i18n: lrelease not found (Debian: qttools5-dev-tools)")
        qm = ts.with_suffix(".qm")
        subprocess.run([tool, "-silent", str(ts), "-qm", str(qm)], check=True)
        made.append(qm)
        print(f"i18n: {ts.name} -> {qm.name}", file=sys.stderr)
    return made


def message_keys(path: Path) -> set[tuple[str, str, str]]:
    """The live (not vanished/obsolete) messages of a .ts file."""
    return {k for k, (_, kind) in read_ts(path).items() if kind not in ("vanished", "obsolete")}


def check(folder: Path = I18N_DIR) -> int:
    messages, skipped = extract()
    want = {m.key for m in messages}
    have = message_keys(folder / ts_name(TEMPLATE_LOCALE))
    for s in skipped:
        print(f"not extractable: {s.path}:{s.line}: {s.what}")
    for k in sorted(want - have):
        print(f"missing from the .ts: {k}")
    for k in sorted(have - want):
        print(f"no longer in the sources: {k}")
    if want != have or skipped:
        print("run `make i18n` and commit the .ts files")
        return 1
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["update", "release", "all", "check"])
    ap.add_argument("--out", type=Path, default=I18N_DIR, help="folder of the .ts files (default: %(default)s)")
    ap.add_argument("--lrelease", help="the lrelease program (default: from PATH)")
    args = ap.parse_args(argv)
    if args.command == "check":
        return check(args.out)
    if args.command in ("update", "all"):
        update(args.out)
    if args.command in ("release", "all"):
        release(args.out, args.lrelease)
    return 0


if __name__ == "__main__":
    sys.exit(main())
