# Sourced by the comparison scripts (compare.sh, compare_cluster.sh).
# record JSON key=value...: the JSON object (a tool's line, or {}) plus the
# extras, appended as one line to "$results" (the caller's results.jsonl).
record() {
    local json=$1; shift
    python3 - "$json" "$@" >>"$results" <<'PY'
import json, sys
d = json.loads(sys.argv[1] or "{}")
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    try: d[k] = int(v)
    except ValueError:
        try: d[k] = float(v)
        except ValueError: d[k] = v
print(json.dumps(d))
PY
}
