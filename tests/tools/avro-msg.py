#!/usr/bin/python3
"""avro-msg.py: write JSON records as Avro messages of another writer schema.

usage: avro-msg.py --schema FILE (--registry URL --subject S | --single)
                   [--delimiter HEX] < records.ndjson > messages

Each input line is a JSON object, written with the writer schema in FILE
(Apache Avro's Python library) as one message: Confluent's wire format
(0, the id the registry gives the schema, the record) or, with --single,
single-object encoding (C3 01, the schema's CRC-64-AVRO fingerprint of its
canonical form as given in FILE.canonical). Messages follow their 4-byte
big-endian length (kcat -f '%R%s'), or end with the bytes HEX.
"""
import io
import json
import struct
import sys
import urllib.request

import avro.io
import avro.schema


def crc64(data):
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


def main():
    args = sys.argv[1:]
    opt = {"registry": None, "subject": None, "schema": None, "single": False,
           "delimiter": None}
    while args:
        a = args.pop(0)
        if a == "--single":
            opt["single"] = True
        elif a.startswith("--") and a[2:] in opt and args:
            opt[a[2:]] = args.pop(0)
        else:
            sys.exit(__doc__)
    text = open(opt["schema"]).read()
    schema = avro.schema.parse(text)
    if opt["single"]:
        canonical = open(opt["schema"] + ".canonical", "rb").read().strip()
        head = b"\xc3\x01" + struct.pack("<Q", crc64(canonical))
    else:
        req = urllib.request.Request(
            "%s/subjects/%s/versions" % (opt["registry"], opt["subject"]),
            data=json.dumps({"schema": text}).encode(),
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
        sid = json.load(urllib.request.urlopen(req))["id"]
        head = b"\x00" + struct.pack(">I", sid)
    writer = avro.io.DatumWriter(schema)
    out = sys.stdout.buffer
    delim = bytes.fromhex(opt["delimiter"]) if opt["delimiter"] else None
    for line in sys.stdin:
        if not line.strip():
            continue
        buf = io.BytesIO()
        writer.write(json.loads(line), avro.io.BinaryEncoder(buf))
        msg = head + buf.getvalue()
        if delim is None:
            out.write(struct.pack(">I", len(msg)) + msg)
        else:
            out.write(msg + delim)
    out.flush()


if __name__ == "__main__":
    main()
