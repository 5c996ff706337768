#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generates the man pages from the programs' own --help (and, for libatel(3),
from include/atel.h), so they cannot drift from what the binaries say.

man.py help PROGRAM SECTION OUT [VERB ...]: runs `PROGRAM --help` (and
`PROGRAM VERB --help` for each VERB) and writes a roff page.
man.py header ATEL_H OUT: libatel(3) from the header's comments and prototypes.
"""
import datetime
import os
import re
import subprocess
import sys

VERSION = os.environ.get("ATEL_VERSION", "0.1.0")


def esc(line):
    line = line.replace("\\", "\\e")
    if line.startswith(".") or line.startswith("'"):
        line = "\\&" + line
    return line


def page(name, section, summary, sections):
    date = datetime.date.fromtimestamp(int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or 0).isoformat() \
        if os.environ.get("SOURCE_DATE_EPOCH") else ""
    out = ['.TH %s %s "%s" "atel %s" "Armada Telemetry"' % (name.upper(), section, date, VERSION),
           ".SH NAME", "%s \\- %s" % (name, summary)]
    for title, text in sections:
        out.append(".SH %s" % title)
        out.append(".nf")
        out.extend(esc(x) for x in text.rstrip("\n").split("\n"))
        out.append(".fi")
    return "\n".join(out) + "\n"


def run_help(argv):
    p = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=60)
    return p.stdout or p.stderr


def main():
    mode = sys.argv[1]
    if mode == "help":
        prog, section, out, verbs = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
        name = os.path.basename(prog)
        text = run_help([prog])
        summary = {"ateld": "the Armada Telemetry sidecar daemon",
                   "atel": "inspect, query and load Armada Telemetry data"}.get(name, name)
        secs = [("SYNOPSIS AND OPTIONS", text)]
        for v in verbs:
            secs.append(("%s %s" % (name.upper(), v.upper()), run_help([prog, v])))
        secs.append(("SEE ALSO", "atel(1), ateld(8), libatel(3); README.md of the project"))
        open(out, "w").write(page(name, section, summary, secs))
    elif mode == "header":
        src, out = sys.argv[2], sys.argv[3]
        text = open(src).read()
        head = re.match(r"\s*/\*(.*?)\*/", text, re.S)
        intro = "\n".join(re.sub(r"^\s?\* ?", "", x) for x in head.group(1).split("\n")).strip() if head else ""
        protos = []
        for m in re.finditer(r"^(?:ATEL_API\s+)?([A-Za-z_][\w \*]*?\b(atel_\w+)\s*\([^;{]*\))\s*;", text, re.M):
            protos.append(" ".join(m.group(1).split()) + ";")
        secs = [("SYNOPSIS", "#include <atel.h>\n\ncc agent.c $(pkg-config --cflags --libs libatel)\n\n" +
                 "\n".join(protos)),
                ("DESCRIPTION", intro),
                ("SEE ALSO", "atel(1), ateld(8); atel.h for each call's contract")]
        open(out, "w").write(page("libatel", "3", "record metrics and traces into the ateld sidecar", secs))
    else:
        sys.exit("usage: man.py help PROG SECTION OUT [VERB...] | header ATEL_H OUT")


if __name__ == "__main__":
    main()
