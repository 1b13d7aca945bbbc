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

coproc MOCK { exec "$mock" --script "$here/demo-script.json"; }
mock_pid=$MOCK_PID
read -r line <&"${MOCK[0]}"
url=${line#listening on }
echo "mock model listening at $url" >&2
echo >&2

cd "$work"
ANTHROPIC_BASE_URL="$url" ANTHROPIC_API_KEY=demo-key \
  "$keel" -p "the add test fails; fix it" --dangerously-skip-permissions \
  --output-format stream-json --verbose |
  python3 "$here/show-stream.py"
echo
echo "calc.py is now:"
cat "$work/calc.py"
