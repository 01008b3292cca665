"""DOCX → PDF throughput: the engine's warm LibreOffice pool against the tools a user would pick instead.

    .venv/bin/python bench/office.py [--files 20] [--rounds 3]

Three sides convert the same DOCX files to PDF with LibreOffice's default PDF export, one document
after another, in the same run:
- the engine's pool (engine/converters/office.py: a warm soffice behind a UNO bridge, inside its
  bubblewrap sandbox; each document hard-linked in and the PDF moved out, as in production);
- unoserver (PyPI), the usual way to keep LibreOffice warm: its server started once, each document
  sent by its XML-RPC `convert` call with paths, as its own client does (the server and its soffice
  run under Debian's python3 with python3-uno, in a venv made here under var/bench/);
- `soffice --headless --convert-to pdf`, one process per document (the profile made beforehand).
Each side starts (and converts one document) untimed first; the rounds rotate the order of the
sides, and each side's best round counts. Prints documents per second and the ratios (target: the
pool at least 4x soffice per file, and on a par with unoserver).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ccweb.settings")

import django  # noqa: E402

django.setup()

from engine.converters import office  # noqa: E402

PARAGRAPH = "A short business letter with a few paragraphs, as most documents that people convert are. "
UNOSERVER_VENV = ROOT / "var" / "bench" / "unoserver"
UNOSERVER_VERSION = "3.7"


def make_documents(folder: Path, count: int) -> list[Path]:
    """count different DOCX files of about two pages, made by LibreOffice from text."""
    documents = []
    for n in range(count):
        text = folder / f"letter-{n}.txt"
        paragraphs = [f"Letter {n}, paragraph {p}. " + PARAGRAPH * 5 for p in range(12)]
        text.write_text("\n\n".join(paragraphs), encoding="utf-8")
        docx = folder / f"letter-{n}.docx"
        documents.append(office.office_convert(text, docx, input_format="txt", output_format="docx"))
        text.unlink()
    return documents


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Pool:
    name = "engine pool"

    def start(self, sample: Path, out: Path) -> float:
        self.pool = office.OfficePool(size=1, max_documents=10_000, timeout=120)
        started = time.perf_counter()
        self.convert(sample, out / "warm-up.pdf")
        return time.perf_counter() - started

    def convert(self, document: Path, dest: Path) -> None:
        answer = self.pool.convert({
            "src": str(document), "dest": str(dest), "extension": "docx", "filter": "writer_pdf_Export",
            "service": office.TEXT, "forbid_filters": list(office.TEXT_FILTERS),
        })
        assert answer["ok"], answer

    def stop(self) -> None:
        self.pool.close()


class Unoserver:
    name = "unoserver"

    def start(self, sample: Path, out: Path) -> float:
        python = UNOSERVER_VENV / "bin" / "python"
        if not (UNOSERVER_VENV / "bin" / "unoserver").exists():
            print(f"(installing unoserver {UNOSERVER_VERSION} into {UNOSERVER_VENV})")
            subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(UNOSERVER_VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", f"unoserver=={UNOSERVER_VERSION}"], check=True)
        self.profile = Path(tempfile.mkdtemp(prefix="ccweb-bench-unoserver-"))
        port = free_port()
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [str(UNOSERVER_VENV / "bin" / "unoserver"), "--interface", "127.0.0.1", "--port", str(port),
             "--uno-port", str(free_port()), "--user-installation", str(self.profile), "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}", allow_none=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.proxy.info()
                break
            except (OSError, xmlrpc.client.Error):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("unoserver did not start; run it by hand to see why") from None
                time.sleep(0.1)
        self.convert(sample, out / "warm-up.pdf")
        return time.perf_counter() - started

    def convert(self, document: Path, dest: Path) -> None:
        # unoserver's client sends (inpath, indata, outpath, convert_to, filtername, filter_options,
        # update_index, infiltername, password); its default update_index=True re-lays indexes,
        # which the engine never asks for.
        self.proxy.convert(str(document), None, str(dest), "pdf", None, [], False, None, None)

    def stop(self) -> None:
        os.killpg(self.process.pid, 9)
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class SofficePerFile:
    name = "soffice per file"

    def start(self, sample: Path, out: Path) -> float:
        self.profile = Path(tempfile.mkdtemp(prefix="ccweb-bench-soffice-"))
        self.command = [
            shutil.which("soffice") or "soffice", "--headless", "--norestore",
            f"-env:UserInstallation={self.profile.as_uri()}", "--convert-to", "pdf",
        ]
        started = time.perf_counter()
        self.convert(sample, out / "warm-up.pdf")  # makes the profile: the timed runs do not pay for it
        return time.perf_counter() - started

    def convert(self, document: Path, dest: Path) -> None:
        subprocess.run([*self.command, "--outdir", str(dest.parent), str(document)], check=True, capture_output=True)

    def stop(self) -> None:
        shutil.rmtree(self.profile, ignore_errors=True)


def run_round(side: object, documents: list[Path], out: Path) -> float:
    out.mkdir()
    started = time.perf_counter()
    for document in documents:
        side.convert(document, out / f"{document.stem}.pdf")
    seconds = time.perf_counter() - started
    produced = len(list(out.glob("*.pdf")))
    assert produced == len(documents), f"{side.name} made {produced} PDFs for {len(documents)} documents"
    shutil.rmtree(out)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not office.installed():
        sys.exit("LibreOffice with python3-uno is not installed; nothing to measure.")

    sides: list = [Pool(), Unoserver(), SofficePerFile()]
    with tempfile.TemporaryDirectory(prefix="ccweb-bench-office-") as tmp:
        folder = Path(tmp)
        documents = make_documents(folder, args.files + 1)
        sample, documents = documents[0], documents[1:]
        startup: dict[str, float] = {}
        best: dict[str, float] = {}
        try:
            for side in sides:
                startup[side.name] = side.start(sample, folder)
            for round_ in range(args.rounds):
                shift = round_ % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    seconds = run_round(side, documents, folder / f"{side.name}-{round_}".replace(" ", "-"))
                    best[side.name] = min(best.get(side.name, float("inf")), seconds)
        finally:
            for side in sides:
                if side.name in startup:
                    side.stop()

    count = len(documents)
    print(f"{count} DOCX files → PDF, one after another, best of {args.rounds} rounds, order rotating")
    for side in sides:
        seconds = best[side.name]
        print(f"  {side.name:17s} {seconds:7.2f} s  {count / seconds:6.2f} docs/s"
              f"  (start and first document, untimed: {startup[side.name]:.2f} s)")
    pool: Callable[[str], float] = lambda other: best[other] / best["engine pool"]  # noqa: E731
    print(f"  ratio engine pool / soffice per file: {pool('soffice per file'):.1f}x (target >= 4x)")
    print(f"  ratio engine pool / unoserver:        {pool('unoserver'):.2f}x (target: on a par, ~1x)")


if __name__ == "__main__":
    main()
