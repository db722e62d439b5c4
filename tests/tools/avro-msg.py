#!/usr/bin/python3
"""avro-msg.py: Avro messages written and read by Avro's Python library.

usage: avro-msg.py --schema FILE (--registry URL --subject S | --single)
                   [--delimiter HEX] < records.ndjson > messages
       avro-msg.py --decode [--registry URL] [--schema FILE] < messages

Each input line is a JSON object, written with the writer schema in FILE
(Apache Avro's Python library) as one message: Confluent's wire format
(0, the id the registry gives the schema, the record) or, with --single,
single-object encoding (C3 01, the schema's CRC-64-AVRO fingerprint of its
canonical form as given in FILE.canonical). Messages follow their 4-byte
big-endian length (kcat -f '%R%s'), or end with the bytes HEX.

With --decode, read length-framed messages and print each record as a JSON
line: Confluent messages with the writer schema of their id (from the
registry), single-object ones with FILE's schema once their fingerprint is
checked against FILE.canonical's.
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


def decode(opt):
    data = sys.stdin.buffer.read()
    cache = {}
    i = 0
    while i < len(data):
        (n,) = struct.unpack(">i", data[i:i + 4])
        msg = data[i + 4:i + 4 + n]
        i += 4 + n
        if msg[:1] == b"\x00":
            (sid,) = struct.unpack(">I", msg[1:5])
            if sid not in cache:
                url = "%s/schemas/ids/%d" % (opt["registry"], sid)
                cache[sid] = avro.schema.parse(json.load(urllib.request.urlopen(url))["schema"])
            schema, body = cache[sid], msg[5:]
        elif msg[:2] == b"\xc3\x01":
            canonical = open(opt["schema"] + ".canonical", "rb").read().strip()
            if struct.unpack("<Q", msg[2:10])[0] != crc64(canonical):
                sys.exit("avro-msg: a fingerprint that is not the schema's")
            schema, body = avro.schema.parse(open(opt["schema"]).read()), msg[10:]
        else:
            sys.exit("avro-msg: not an Avro message")
        rec = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(body)))
        # Logical timestamps come back as datetimes: milliseconds again.
        print(json.dumps(rec, default=lambda d: round(d.timestamp() * 1000)))


def main():
    args = sys.argv[1:]
    opt = {"registry": None, "subject": None, "schema": None, "single": False,
           "delimiter": None, "decode": False}
    while args:
        a = args.pop(0)
        if a in ("--single", "--decode"):
            opt[a[2:]] = True
        elif a.startswith("--") and a[2:] in opt and args:
            opt[a[2:]] = args.pop(0)
        else:
            sys.exit(__doc__)
    if opt["decode"]:
        return decode(opt)
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
