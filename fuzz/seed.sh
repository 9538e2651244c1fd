#!/usr/bin/env bash
# Builds the seed corpora under fuzz/corpus/<target>/ (git-ignored) from the
# shared OpenRTB corpus (../shared/corpus/openrtb, read here, never copied
# into the repository), the proto test data, generated spool files and the
# repository's TOML configs. Also writes fuzz/corpus/openrtb.dict, a libFuzzer
# dictionary of the JSON keys seen in the corpus. Existing corpus files (what
# earlier runs found) are kept. Usage: bash fuzz/seed.sh
set -euo pipefail
cd "$(dirname "$0")"
root=..
shared=${RTB_SHARED_CORPUS:-$root/../shared/corpus/openrtb}
mkdir -p corpus/request corpus/forward corpus/response corpus/event corpus/spool corpus/config

if [ -d "$shared/requests" ]; then
  find "$shared/requests" -type f -name '*.json' -exec cp -n {} corpus/request/ \;
  find "$shared/requests" -type f -name '*.json' -exec cp -n {} corpus/forward/ \;
  find "$shared/responses" -type f -name '*.json' -exec cp -n {} corpus/response/ \;
else
  echo "seed.sh: $shared not found; request/response seeds are the built-in minimal ones" >&2
fi
# Minimal seeds so a machine without the shared corpus still starts somewhere.
printf '%s' '{"id":"r1","imp":[{"id":"1","banner":{"w":300,"h":250},"bidfloor":0.5}],"site":{"id":"s1"},"tmax":120}' > corpus/request/min-request.json
printf '%s' '{"id":"r1","imp":[{"id":"1","banner":{}}],"t\u006dax":120,"TMAX":5,"ext":{"tmax":1}}' > corpus/forward/min-forward.json
printf '%s' '{"id":"r1","seatbid":[{"seat":"a","bid":[{"id":"b1","impid":"1","price":1.25,"adm":"<a/>","nurl":"http://x/${AUCTION_PRICE}","cid":"c1"}]}],"cur":"USD"}' > corpus/response/min-response.json

# Events: the v3 sample, a v1 event and a no-winner event (from proto's tests).
cp "$root/proto/tests/data/auction_result_v4.json" corpus/event/v4.json
printf '%s' '{"schema_version":1,"auction_id":"r-1","ts_ms":5,"currency":"USD","imps":[{"imp_id":"1","winner":{"seat":"a","account":"a","bid_micros":2,"clearing_micros":1}}]}' > corpus/event/v1.json
printf '%s' '{"schema_version":2,"auction_id":"a","request_id":"q","ts_ms":1,"currency":"USD","imps":[{"imp_id":"1","bids":[{"seat":"s","price_micros":5,"loss_reason":102}]}],"bidders":[{"seat":"s","status":"timeout","latency_ms":9,"nonbid_code":101}]}' > corpus/event/no-winner.json

# Spool files in the on-disk frame format, behind the target's mode byte (len | crc32(body) | body, body =
# key_len | key | value, little-endian): intact, torn and corrupt.
python3 - corpus/spool "$root/proto/tests/data/auction_result_v4.json" <<'PY'
import struct, sys, zlib, os
out, event = sys.argv[1], open(sys.argv[2], "rb").read()
def frame(key, value):
    body = struct.pack("<I", len(key)) + key + value
    return struct.pack("<II", len(body), zlib.crc32(body) & 0xffffffff) + body
two = frame(b"alpha/camp-7", event) + frame(b"beta", b'{"schema_version":1}')
files = {
    "empty.spool": b"",
    "one.spool": frame(b"alpha", b'{"n":0}'),
    "two.spool": two,
    "torn.spool": two + bytes([40, 0, 0, 0, 1, 2, 3, 4]) + b"x",
    "bad-crc.spool": two[:-1] + bytes([two[-1] ^ 1]),
    "empty-key.spool": frame(b"", b"{}"),
    "key-too-long.spool": (lambda b: struct.pack("<II", len(b), zlib.crc32(b)) + b)(struct.pack("<I", 99) + b"k"),
}
# The target's first byte is a mode: 1 = the file as is, 0 = fix checksums.
for name, data in files.items():
    for mode in (0, 1):
        with open(os.path.join(out, "m%d-%s" % (mode, name)), "wb") as f:
            f.write(bytes([mode]) + data)
PY

for f in "$root"/config/*.toml "$root"/k8s/base/config/*.toml "$root"/k8s/overlays/*/*.toml; do
  [ -f "$f" ] && cp "$f" "corpus/config/$(echo "${f#"$root"/}" | tr / _)"
done

# Dictionary: every JSON object key in the shared corpus and the event
# sample (not in corpus/, which holds what runs found), plus JSON tokens.
python3 - corpus/openrtb.dict "$shared/requests/valid" "$shared/requests/invalid" \
  "$shared/responses/valid" "$shared/responses/invalid" "$root/proto/tests/data" <<'PY'
import json, os, sys
keys = set()
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            keys.add(k); walk(x)
    elif isinstance(v, list):
        for x in v: walk(x)
for d in sys.argv[2:]:
    for name in (os.listdir(d) if os.path.isdir(d) else []):
        try:
            walk(json.load(open(os.path.join(d, name), "rb")))
        except Exception:
            pass
with open(sys.argv[1], "w") as f:
    for k in sorted(keys):
        if k.isascii() and k.isprintable() and '"' not in k and '\\' not in k:
            f.write('"\\"%s\\":"\n' % k)
    for tok in ['{', '}', '[', ']', ':', ',', 'null', 'true', 'false', '-1', '1e308', '0.000001', '\\"\\"', '\\"\\\\u0000\\"']:
        f.write('"%s"\n' % tok)
PY
echo "seed.sh: $(ls corpus/request | wc -l) request, $(ls corpus/forward | wc -l) forward, $(ls corpus/response | wc -l) response, $(ls corpus/event | wc -l) event, $(ls corpus/spool | wc -l) spool, $(ls corpus/config | wc -l) config seeds; $(wc -l < corpus/openrtb.dict) dictionary entries"

# TOML dictionary for the config target: section headers and keys of the seeds.
{
  grep -ohE '^\s*\[\[?[a-z_.]+\]\]?' corpus/config/*.toml | tr -d ' ' | sort -u | sed 's/"/\\"/g; s/.*/"&"/'
  grep -ohE '^\s*[a-z_]+\s*=' corpus/config/*.toml | tr -d ' =' | sort -u | sed 's/.*/"&"/'
  printf '%s\n' '"="' '"[["' '"]]"' '"\"\""' '"true"' '"false"' '"0"' '"-1"' '"18446744073709551615"' '"1e400"' '"inf"' '"nan"'
} > corpus/config.dict
echo "seed.sh: $(wc -l < corpus/config.dict) config dictionary entries"
