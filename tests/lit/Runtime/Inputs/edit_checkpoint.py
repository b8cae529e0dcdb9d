"""Writes a copy of a safetensors checkpoint with one thing changed.

  edit_checkpoint.py IN OUT nan TENSOR   element 0 of TENSOR becomes NaN
  edit_checkpoint.py IN OUT step VALUE   the "moert.step" metadata is VALUE
  edit_checkpoint.py IN OUT model NAME   the "moert.model" metadata is NAME
"""
import json
import struct
import sys

src, dst, what, arg = sys.argv[1:5]
data = open(src, "rb").read()
(header_len,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + header_len])
body = bytearray(data[8 + header_len:])
if what == "nan":
    begin = header[arg]["data_offsets"][0]
    body[begin:begin + 4] = struct.pack("<f", float("nan"))
elif what == "step":
    header["__metadata__"]["moert.step"] = arg
elif what == "model":
    header["__metadata__"]["moert.model"] = arg
else:
    sys.exit("unknown edit " + what)
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(dst, "wb") as out:
    out.write(struct.pack("<Q", len(text)) + text + bytes(body))
