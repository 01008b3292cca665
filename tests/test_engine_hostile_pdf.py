"""PDFs whose page tree loops, written by hand, through every operation that reads PDFs, in a real
`manage.py db_worker` process.

What the tools did with them, found by trying (pypdfium2 5.15 / pdfium 159, Ghostscript 10.0,
LibreOffice's PDF import): no hang and no crash in pdfium, but no sentence either. pdfium walks a
/Kids loop without remembering it: it fails to find the pages /Count promised ("Failed to load
page", which reached users as INTERNAL_ERROR), or, when /Count matches what the loop yields, serves
the same page again and again (12 KB passing for a million pages, the lookups taking minutes).
Ghostscript segfaults on a tree 100 000 levels deep. A /Parent cycle leaves the /Kids walk intact:
pdfium, Ghostscript and LibreOffice convert the page (inherited attributes fall back to defaults),
so it is converted, not refused.

Figures for README's RELIABILITY section: 8 looping trees × 8 PDF readers = 64 tasks, all refused
with INVALID_FILE and a sentence. Before: 24 INTERNAL_ERROR, 2 still rendering a million copies of
one page after 60 s (plus 3 taking 14-50 s), 30 "finished" on a damaged file. 8 tasks on a /Parent
cycle finish; one worker process survives all 72.
"""

from __future__ import annotations

import base64
import zlib

import pytest

from engine.models import Task
from tests.conftest import wait_for
from tests.test_engine_helpers import Api
from tests.test_engine_recovery import start_worker  # noqa: F401 - a fixture used below

pytestmark = pytest.mark.django_db(transaction=True)

CATALOG = "<< /Type /Catalog /Pages 2 0 R >>"
PAGE = "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>"
DRAWING = "0 0 1 rg 10 10 50 50 re f"  # a blue square
CONTENT = f"<< /Length {len(DRAWING)} >>\nstream\n{DRAWING}\nendstream"


def pdf(objects: dict[int, str]) -> bytes:
    """A PDF of the numbered objects (object 1 the catalog), with a classic xref table."""
    body, offsets = bytearray(b"%PDF-1.4\n"), {}
    for number in sorted(objects):
        offsets[number] = len(body)
        body += f"{number} 0 obj\n{objects[number]}\nendobj\n".encode()
    size = max(objects) + 1
    xref = len(body)
    body += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for number in range(1, size):
        body += f"{offsets[number]:010d} 00000 n \n".encode() if number in offsets else b"0000000000 65535 f \n"
    body += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(body)


def compressed_pdf(packed: dict[int, str], plain: dict[int, str]) -> bytes:
    """A PDF 1.5 whose `packed` objects sit in a compressed object stream (object 90), indexed by a
    compressed cross-reference stream (object 91): how most PDFs written today hide their tree."""
    numbers = sorted(packed)
    texts = [packed[number].encode() + b" " for number in numbers]
    starts = [sum(len(text) for text in texts[:i]) for i in range(len(texts))]
    header = " ".join(f"{number} {start}" for number, start in zip(numbers, starts)).encode() + b" "
    stream = zlib.compress(header + b"".join(texts))
    body, offsets = bytearray(b"%PDF-1.5\n"), {}
    for number in sorted(plain):
        offsets[number] = len(body)
        body += f"{number} 0 obj\n{plain[number]}\nendobj\n".encode()
    offsets[90] = len(body)
    body += (
        f"90 0 obj\n<< /Type /ObjStm /N {len(numbers)} /First {len(header)} /Length {len(stream)}"
        " /Filter /FlateDecode >>\nstream\n"
    ).encode() + stream + b"\nendstream\nendobj\n"
    offsets[91] = len(body)
    rows = b""
    for number in range(92):
        if number in offsets:
            rows += b"\x01" + offsets[number].to_bytes(4, "big") + b"\x00"
        elif number in packed:
            rows += b"\x02" + (90).to_bytes(4, "big") + bytes([numbers.index(number)])
        else:
            rows += b"\x00" * 6
    rows = zlib.compress(rows)
    body += (
        f"91 0 obj\n<< /Type /XRef /Size 92 /W [1 4 1] /Root 1 0 R /Length {len(rows)} /Filter /FlateDecode >>"
        "\nstream\n"
    ).encode() + rows + f"\nendstream\nendobj\nstartxref\n{offsets[91]}\n%%EOF\n".encode()
    return bytes(body)


def deep_tree(depth: int) -> dict[int, str]:
    """One page at the bottom of `depth` nested Pages nodes."""
    objects = {1: "<< /Type /Catalog /Pages 10 0 R >>", 3: PAGE.replace("2 0 R", f"{9 + depth} 0 R"), 4: CONTENT}
    for level in range(depth):
        kid = 11 + level if level < depth - 1 else 3
        objects[10 + level] = f"<< /Type /Pages /Kids [{kid} 0 R] /Count 1 >>"
    return objects


def two_node_loop(pages_per_node: int, count: int) -> dict[int, str]:
    """Nodes 2 and 5 each list the page `pages_per_node` times, then each other."""
    kids = "3 0 R " * pages_per_node
    return {
        1: CATALOG,
        2: f"<< /Type /Pages /Kids [{kids}5 0 R] /Count {count} >>",
        5: f"<< /Type /Pages /Parent 2 0 R /Kids [{kids}2 0 R] /Count {count} >>",
        3: PAGE,
        4: CONTENT,
    }


SELF_LISTING = {1: CATALOG, 2: "<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 >>", 3: PAGE, 4: CONTENT}
LOOPING_PDFS = {
    "a Pages node listing itself": pdf(SELF_LISTING),
    # pdfium serves page 3 twice here: the loop goes unnoticed without a walk of the tree.
    "a grandchild listing the root": pdf(two_node_loop(1, 2)),
    # 12 KB that pdfium counts as a million pages, each lookup slower than the last.
    "two nodes listing each other after 1000 pages": pdf(two_node_loop(1000, 1_000_000)),
    "a node listing itself fifty times": pdf(
        {1: CATALOG, 2: "<< /Type /Pages /Kids [" + "2 0 R " * 50 + "3 0 R] /Count 1000 >>", 3: PAGE, 4: CONTENT}
    ),
    "a page node that is its own kid": pdf(
        {1: CATALOG, 2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 3: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>"}
    ),
    "a tree 100 000 levels deep": pdf(deep_tree(100_000)),  # Ghostscript segfaults on it
    "a loop behind an escaped name and a comment": pdf(
        {1: CATALOG, 2: "<< /Type /Pages % (a comment\n /K#69ds [3 0 R 2 0 R] /Count 2 >>", 3: PAGE, 4: CONTENT}
    ),
    "a loop inside a compressed object stream": compressed_pdf(
        {number: text for number, text in SELF_LISTING.items() if number != 4}, {4: CONTENT}
    ),
}
PARENT_CYCLE = pdf(
    {
        1: CATALOG,
        2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: "<< /Type /Page /Parent 5 0 R /Contents 4 0 R >>",  # its MediaBox would be inherited through the cycle
        4: CONTENT,
        5: "<< /Type /Pages /Parent 6 0 R >>",
        6: "<< /Type /Pages /Parent 5 0 R >>",
    }
)
READERS = {
    "png": {"operation": "convert", "input": "in", "output_format": "png"},
    "txt": {"operation": "convert", "input": "in", "output_format": "txt"},
    "docx": {"operation": "convert", "input": "in", "output_format": "docx"},
    "thumbnail": {"operation": "thumbnail", "input": "in", "output_format": "png"},
    "merge": {"operation": "merge", "input": ["in"], "output_format": "pdf"},
    "watermark": {"operation": "watermark", "input": "in", "text": "DRAFT"},
    "metadata": {"operation": "metadata", "input": "in"},
    "optimize": {"operation": "optimize", "input": "in"},
}


def submit(api: Api, content: bytes) -> dict:
    source = {"operation": "import/base64", "file": base64.b64encode(content).decode(), "filename": "in.pdf"}
    return api.create_job({"in": source, **READERS})


def ended(job: dict) -> dict[str, Task]:
    """The job's reading tasks once every one of them has ended, else {}."""
    tasks = {task.name: task for task in Task.objects.filter(job_id=job["id"]).exclude(name="in")}
    return tasks if all(task.is_terminal for task in tasks.values()) else {}


def test_a_looping_page_tree_fails_every_pdf_reader_with_a_sentence_and_the_worker_lives_on(
    live_engine: str,
    start_worker,
) -> None:
    api = Api(live_engine)
    worker = start_worker()
    jobs = {name: submit(api, content) for name, content in LOOPING_PDFS.items()}
    cycle = submit(api, PARENT_CYCLE)

    for name, job in jobs.items():
        tasks = wait_for(lambda job=job: ended(job), timeout=120)
        for reader, task in tasks.items():
            assert (task.status, task.code) == ("error", "INVALID_FILE"), (name, reader, task.message)
            assert task.message.startswith("The PDF is damaged: its page tree"), task.message
            assert "Repair the file" in task.message
    tasks = wait_for(lambda: ended(cycle), timeout=120)
    assert {reader: task.status for reader, task in tasks.items()} == dict.fromkeys(READERS, "finished")
    assert tasks["metadata"].result["metadata"]["PageCount"] == "1"
    assert worker.poll() is None  # the same worker process ran all of them
