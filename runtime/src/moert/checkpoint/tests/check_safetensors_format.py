#!/usr/bin/env python3
"""Cross-checks the runtime's safetensors files against an independent
reader and writer written here from the format description alone (struct,
json and numpy; no safetensors package):

  1. the C++ tool writes a fixed checkpoint; this script parses it byte by
     byte, checks the layout rules (8-byte length, JSON header with unique
     keys, data start 8-byte aligned, tensors in sorted name order, tiling
     the data exactly, no trailing bytes), the metadata and every value;
  2. this script writes a checkpoint the way other producers do (no header
     padding, tensors not in name order) and the C++ tool must load it and
     find the same bytes;
  3. a copy with trailing garbage and one with a duplicate key must be
     refused by the C++ reader.

Exit status 77 (skip) when numpy is missing.
"""
import argparse
import json
import os
import struct
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("numpy is not available; skipping")
    sys.exit(77)

DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16,
    "U16": np.uint16, "F16": np.float16, "I32": np.int32, "U32": np.uint32,
    "F32": np.float32, "F64": np.float64, "I64": np.int64, "U64": np.uint64,
}


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def reject_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        fail("duplicate keys in the header: %r" % keys)
    return dict(pairs)


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail("file shorter than 8 bytes")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if 8 + header_len > len(blob):
        fail("header length beyond the file")
    header_bytes = blob[8:8 + header_len]
    header = json.loads(header_bytes.decode("utf-8"),
                        object_pairs_hook=reject_duplicates)
    data = blob[8 + header_len:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        if set(info) != {"dtype", "shape", "data_offsets"}:
            fail("tensor %s has fields %r" % (name, sorted(info)))
        begin, end = info["data_offsets"]
        dtype = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        count = int(np.prod(info["shape"], dtype=np.int64))
        if end - begin != count * dtype.itemsize:
            fail("tensor %s: offsets do not match the shape" % name)
        array = np.frombuffer(data[begin:end], dtype=dtype).reshape(
            info["shape"])
        tensors[name] = (info["dtype"], begin, end, array)
    return blob, header_len, metadata, tensors, len(data)


def check_cpp_checkpoint(tool, work_dir):
    path = os.path.join(work_dir, "from_cpp.safetensors")
    subprocess.run([tool, "write", path], check=True)
    blob, header_len, metadata, tensors, data_len = read_safetensors(path)

    if (8 + header_len) % 8 != 0:
        fail("data does not start 8-byte aligned (header length %d)"
             % header_len)
    if metadata.get("moert.step") != "42":
        fail("metadata step is %r" % metadata.get("moert.step"))
    if "unsharded" not in metadata.get("moert.manifest", ""):
        fail("metadata manifest is %r" % metadata.get("moert.manifest"))
    if metadata.get("moert.layout") != "logical":
        fail("metadata layout is %r" % metadata.get("moert.layout"))

    names = sorted(tensors)
    spans = [(tensors[n][1], tensors[n][2]) for n in names]
    position = 0
    for name, (begin, end) in zip(names, spans):
        if begin != position:
            fail("tensor %s starts at %d, expected %d (sorted, packed)"
                 % (name, begin, position))
        position = end
    if position != data_len:
        fail("%d trailing bytes" % (data_len - position))

    expected = {
        "decoder.proj.weight": ("F32", (np.arange(12, dtype=np.float32) * 0.5
                                        - 1.0).reshape(3, 4)),
        "b.special": ("F32", np.array([0.0, -0.0, 1e30, -2.5, 1.0e-45],
                                      dtype=np.float32)),
        "c.ids": ("I32", np.arange(-3, 3, dtype=np.int32).reshape(2, 3)),
        "a.counters": ("I64", np.array([1 << 40, -7], dtype=np.int64)),
        "e.mask": ("BOOL", np.array([True, False, True, True])),
        "f.empty": ("F32", np.zeros((0, 3), dtype=np.float32)),
        "g.scalar": ("F32", np.array(3.25, dtype=np.float32)),
    }
    if set(expected) != set(tensors):
        fail("tensor names %r" % sorted(tensors))
    for name, (dtype, values) in expected.items():
        got_dtype, _, _, array = tensors[name]
        if got_dtype != dtype:
            fail("%s has dtype %s, expected %s" % (name, got_dtype, dtype))
        if array.shape != values.shape:
            fail("%s has shape %r, expected %r"
                 % (name, array.shape, values.shape))
        if array.tobytes() != values.astype(array.dtype).tobytes():
            fail("%s values differ: %r vs %r" % (name, array, values))
    print("C++ -> Python: %d tensors, layout and values match" % len(tensors))


def write_safetensors(path, tensors, metadata, extra=b"", raw_header=None):
    """tensors: list of (name, dtype name, numpy array) in file order."""
    header = {"__metadata__": metadata}
    chunks, offset = [], 0
    for name, dtype, array in tensors:
        data = np.ascontiguousarray(array).astype(
            np.dtype(DTYPES[dtype]).newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = (raw_header or json.dumps(header)).encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)
        f.write(extra)
    return header


def check_python_checkpoint(tool, work_dir):
    tensors = [
        ("z.weight", "F32", np.array([[1, 2], [3, 4]], dtype=np.float32)),
        ("m.half", "F16", np.array([1.5, -2.0], dtype=np.float16)),
        ("a.ids", "I64", np.array([5, -6, 7], dtype=np.int64)),
        ("u.bytes", "U8", np.array([0, 127, 255], dtype=np.uint8)),
    ]
    metadata = {"moert.step": "7", "note": "written by python"}
    path = os.path.join(work_dir, "from_python.safetensors")
    header = write_safetensors(path, tensors, metadata)
    result = subprocess.run([tool, "check", path], capture_output=True,
                            text=True)
    if result.returncode != 0:
        fail("C++ reader refused the Python file: " + result.stderr)
    print("Python -> C++: " + result.stdout.strip())

    garbage = os.path.join(work_dir, "trailing.safetensors")
    write_safetensors(garbage, tensors, metadata, extra=b"\0\0\0")
    result = subprocess.run([tool, "check", garbage], capture_output=True,
                            text=True)
    if result.returncode == 0 or "trailing data" not in result.stderr:
        fail("trailing garbage not refused: " + result.stderr)

    duplicate = os.path.join(work_dir, "duplicate.safetensors")
    text = json.dumps(header)
    entry = json.dumps(header["u.bytes"])
    text = text[:-1] + ', "u.bytes": ' + entry + "}"
    write_safetensors(duplicate, tensors, metadata, raw_header=text)
    result = subprocess.run([tool, "check", duplicate], capture_output=True,
                            text=True)
    if result.returncode == 0 or "duplicate key" not in result.stderr:
        fail("duplicate key not refused: " + result.stderr)
    print("C++ reader refuses trailing garbage and duplicate keys")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tool", required=True)
    parser.add_argument("--work-dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    check_cpp_checkpoint(args.tool, args.work_dir)
    check_python_checkpoint(args.tool, args.work_dir)
    print("PASS")


if __name__ == "__main__":
    main()
