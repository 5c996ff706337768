#!/usr/bin/env python3
"""embed.py NAME INPUT OUTPUT: writes INPUT as `const char NAME[]` (NUL-terminated) into OUTPUT.c."""
import sys

name, src, dst = sys.argv[1:4]
data = open(src, "rb").read()
with open(dst, "w") as out:
    out.write("/* generated from %s by scripts/embed.py; do not edit */\n" % src.split("/")[-1])
    out.write("extern const char %s[];\nconst char %s[] = {\n" % (name, name))
    for i in range(0, len(data), 16):
        out.write("  " + ", ".join("0x%02x" % b for b in data[i:i + 16]) + ",\n")
    out.write("  0x00\n};\n")
