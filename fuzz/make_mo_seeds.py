#!/usr/bin/env python3
"""Writes the seed inputs of the .mo reader fuzzer (fuzz/corpus/mo-reader/):
small GNU gettext catalogs in both byte orders with the features the reader
handles (the header entry, message contexts, plural forms, format
specifiers, markup, accelerators, non-ASCII text). The strings are made up
here; the layout is the documented .mo format (magic, revision, count,
offsets of the original and translation tables, hash table size and
offset; each table a list of (length, offset) pairs of NUL-terminated
strings).

Usage: fuzz/make_mo_seeds.py [OUTPUT_DIR]
"""
import os
import struct
import sys

MAGIC = 0x950412DE


def mo_bytes(entries, big_endian=False):
    order = ">" if big_endian else "<"
    entries = sorted(entries, key=lambda e: e[0])
    n = len(entries)
    header_size = 7 * 4
    originals_offset = header_size
    translations_offset = originals_offset + 8 * n
    strings_offset = translations_offset + 8 * n
    blob = b""
    originals, translations = [], []
    for source, target in entries:
        originals.append((len(source), strings_offset + len(blob)))
        blob += source + b"\0"
    for source, target in entries:
        translations.append((len(target), strings_offset + len(blob)))
        blob += target + b"\0"
    out = struct.pack(order + "7I", MAGIC, 0, n, originals_offset,
                      translations_offset, 0, strings_offset + len(blob))
    for length, offset in originals + translations:
        out += struct.pack(order + "2I", length, offset)
    return out + blob


HEADER = (b"", b"Content-Type: text/plain; charset=UTF-8\n"
               b"Plural-Forms: nplurals=2; plural=(n != 1);\n")
SEEDS = {
    "simple-le.mo": ([HEADER, (b"Open file", b"Datei \xc3\xb6ffnen"),
                      (b"Save", b"Speichern")], False),
    "simple-be.mo": ([HEADER, (b"Open file", b"Ouvrir le fichier"),
                      (b"Quit", b"Quitter")], True),
    "features.mo": ([
        HEADER,
        (b"menu\x04_Open", b"_\xc3\x96ffnen"),
        (b"%d file\0%d files", b"%d Datei\0%d Dateien"),
        (b"Copy <b>%s</b> to %s?", b"<b>%s</b> nach %s kopieren?"),
        (b"Line one\nline two", b"Zeile eins\nZeile zwei"),
        (b"Unchanged", b"Unchanged"),
        (b"&Cancel", b"&Abbrechen"),
    ], False),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "mo-reader")
    os.makedirs(out, exist_ok=True)
    for name, (entries, big_endian) in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(mo_bytes(entries, big_endian))
    print("wrote %d seeds to %s" % (len(SEEDS), out))


if __name__ == "__main__":
    main()
