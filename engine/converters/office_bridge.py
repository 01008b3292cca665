"""A warm LibreOffice, driven over UNO; run by the Python that has LibreOffice's `uno` module.

This file is executed by /usr/bin/python3 (Debian's python3-uno), never imported by ccweb, whose
own Python cannot import `uno`. engine/converters/office.py starts it in a new session:

    python3 office_bridge.py --soffice /usr/bin/soffice --profile /tmp/ccweb-office-xyz

It starts one headless soffice listening on a private pipe, prints {"ready": true, ...}, then reads
one JSON request per line on stdin and answers one JSON line on stdout:

    {"src": "/in.docx", "dest": "/out.pdf", "filter": "writer_pdf_Export", "filter_options": "",
     "input_filter": null, "input_options": "", "service": "com.sun.star.text.TextDocument",
     "forbid_filters": ["Text"]}
    -> {"ok": true, "filter": "MS Word 2007 XML"}  or  {"ok": false, "error": "load", "detail": "..."}

It exits, taking soffice with it, when stdin closes or its parent dies: a killed worker must not
leave an office suite running.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.connection import NoConnectException

CONNECT_TIMEOUT = 60.0
MACROS_NEVER = 0  # com.sun.star.document.MacroExecMode.NEVER_EXECUTE
LINKS_NEVER = 0  # com.sun.star.document.UpdateDocMode.NO_UPDATE: no fetching of linked content


def props(**values: object) -> tuple:
    result = []
    for name, value in values.items():
        prop = PropertyValue()
        prop.Name, prop.Value = name, value
        result.append(prop)
    return tuple(result)


# Run detached, after the bridge is gone: soffice.bin keeps writing to its profile until it is
# dead, so the profile is removed only once no process of the bridge's group runs any more.
SWEEP = """
import os, shutil, sys, time
group, profile = sys.argv[1], sys.argv[2]
def running():
    for entry in os.listdir("/proc"):
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == group and fields[0] != "Z":
            return True
    return False
deadline = time.monotonic() + 60
while running() and time.monotonic() < deadline:
    time.sleep(0.05)
shutil.rmtree(profile, ignore_errors=True)
"""


def kill_session(profile: str | None = None) -> None:
    """Everything this bridge started shares its process group (it leads a new session).

    With `profile`, a detached sweeper removes that profile once the whole group has stopped.
    """
    if profile:
        subprocess.Popen(
            [sys.executable, "-c", SWEEP, str(os.getpgrp()), profile],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    os.killpg(os.getpgrp(), signal.SIGKILL)


def watch_parent(parent: int, profile: str) -> None:
    # The pool talks to us over pipes; if it is gone, nobody will ever ask us to stop or clean up.
    while os.getppid() == parent:
        time.sleep(1.0)
    kill_session(profile)


def start_office(soffice: str, profile: str) -> tuple[subprocess.Popen, object]:
    """soffice on a private pipe, and its desktop once it answers."""
    pipe = f"ccweb-office-{uuid.uuid4().hex}"
    process = subprocess.Popen(
        [
            soffice, "--headless", "--invisible", "--nologo", "--nodefault", "--norestore",
            "--nofirststartwizard", "--nolockcheck",
            f"-env:UserInstallation={uno.systemPathToFileUrl(profile)}",
            f"--accept=pipe,name={pipe};urp;StarOffice.ComponentContext",
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            context = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
            break
        except NoConnectException:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"soffice did not start (exit status {process.poll()})") from None
            time.sleep(0.05)
    desktop = context.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", context)
    return process, desktop


def convert(desktop: object, request: dict) -> dict:
    load = {"Hidden": True, "ReadOnly": True, "MacroExecutionMode": MACROS_NEVER, "UpdateDocMode": LINKS_NEVER}
    if request.get("input_filter"):
        load["FilterName"] = request["input_filter"]
        load["FilterOptions"] = request.get("input_options") or ""
    try:
        document = desktop.loadComponentFromURL(uno.systemPathToFileUrl(request["src"]), "_blank", 0, props(**load))
    except Exception as error:  # UNO raises IllegalArgumentException, IOException, ... for bad files
        if "disposed" in str(error).lower():
            raise  # soffice itself died while loading: not the file's verdict, the bridge's end
        return {"ok": False, "error": "load", "detail": str(error)}
    if document is None:
        return {"ok": False, "error": "load", "detail": "no document"}
    try:
        loaded_with = {p.Name: p.Value for p in document.getArgs()}.get("FilterName", "")
        service = request.get("service")
        if (service and not document.supportsService(service)) or loaded_with in request.get("forbid_filters", ()):
            return {"ok": False, "error": "type", "detail": loaded_with}
        store = {"FilterName": request["filter"], "Overwrite": True}
        if request.get("filter_options"):
            store["FilterOptions"] = request["filter_options"]
        try:
            document.storeToURL(uno.systemPathToFileUrl(request["dest"]), props(**store))
        except Exception as error:
            return {"ok": False, "error": "store", "detail": str(error)}
        return {"ok": True, "filter": loaded_with}
    finally:
        try:
            document.close(True)
        except Exception:
            document.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--soffice", required=True)
    parser.add_argument("--profile", required=True)
    args = parser.parse_args()
    if os.getpgrp() != os.getpid():
        os.setsid()  # lead our own process group, so killing it can only reach what we started

    # Answers go to the original stdout only; anything else that prints lands on stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    threading.Thread(target=watch_parent, args=(os.getppid(), args.profile), daemon=True).start()

    def answer(message: dict) -> None:
        answers.write(json.dumps(message) + "\n")

    try:
        process, desktop = start_office(args.soffice, args.profile)
    except Exception as error:
        answer({"ready": False, "detail": str(error)})
        kill_session()
    answer({"ready": True, "pid": process.pid})

    asked_to_quit = False
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            asked_to_quit = True
            break
        if process.poll() is not None:  # soffice died between documents: the pool restarts us
            answer({"ok": False, "error": "dead"})
            break
        try:
            answer(convert(desktop, request))
        except Exception as error:  # the office died or the bridge broke: this bridge is done
            answer({"ok": False, "error": "crash", "detail": f"{type(error).__name__}: {error}"})
            break
    try:
        desktop.terminate()
        process.wait(timeout=10)
    except Exception:
        pass
    # stdin closed without a quit: the pool died, and its profile would be left behind
    kill_session(None if asked_to_quit else args.profile)


if __name__ == "__main__":
    main()
