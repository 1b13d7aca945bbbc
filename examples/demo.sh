#!/usr/bin/env bash
# See keel work end to end with no API key: a scripted model (the mock server) asks keel to
# find, read, fix and test a bug in a throw-away project. Everything stays on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

echo "building keel and the mock model server..." >&2
cargo build --quiet --manifest-path "$root/Cargo.toml" -p keel-cli -p keel-test-support
target=$(cd "$root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
keel="$target/debug/keel"
mock="$target/debug/keel-mock-model"

work=$(mktemp -d)
trap 'kill "$mock_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/calc.py" <<'PY'
def add(a, b):
    return a - b
PY
cat > "$work/test_calc.py" <<'PY'
from calc import add
assert add(2, 3) == 5, f"add(2, 3) returned {add(2, 3)}"
PY

coproc MOCK { "$mock" --script "$here/demo-script.json"; }
mock_pid=$MOCK_PID
read -r line <&"${MOCK[0]}"
url=${line#listening on }
echo "mock model listening at $url" >&2
echo >&2

cd "$work"
ANTHROPIC_BASE_URL="$url" ANTHROPIC_API_KEY=demo-key \
  "$keel" -p "the add test fails; fix it" --dangerously-skip-permissions \
  --output-format stream-json --verbose |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m["type"] == "system":
        print(f"session {m[\"session_id\"]} model {m[\"model\"]} tools {\", \".join(m[\"tools\"])}")
    elif m["type"] == "assistant":
        for b in m["message"]["content"]:
            if b["type"] == "text":
                print(f"\nkeel: {b[\"text\"]}")
            elif b["type"] == "tool_use":
                print(f"  -> {b[\"name\"]} {json.dumps(b[\"input\"])}")
    elif m["type"] == "user":
        for b in m["message"]["content"]:
            text = b["content"] if isinstance(b["content"], str) else json.dumps(b["content"])
            flag = " (error)" if b.get("is_error") else ""
            first = text.strip().splitlines()[0] if text.strip() else ""
            print(f"  <- {first[:100]}{flag}")
    elif m["type"] == "result":
        print(f"\nresult: {m[\"subtype\"]} in {m[\"num_turns\"]} turns, {m[\"duration_ms\"]} ms")
'
echo
echo "calc.py is now:"
cat "$work/calc.py"
