#!/usr/bin/env bash
# Installs keel from this checkout, then shows it fix a failing test in a throw-away project,
# offline: the model's answers are replayed from examples/quickstart.jsonl (no API key, no
# network). With a key, the same work is: keel -p "the add test fails; fix it".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

echo "installing keel (cargo install --locked --path crates/keel-cli)..." >&2
cargo install --quiet --locked --path "$root/crates/keel-cli"
keel="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin/keel"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/calc.py" <<'PY'
def add(a, b):
    return a - b
PY
cat > "$work/test_calc.py" <<'PY'
from calc import add
assert add(2, 3) == 5, f"add(2, 3) returned {add(2, 3)}"
PY
echo "a project whose test fails:" >&2
(cd "$work" && python3 test_calc.py) || true
echo >&2

cd "$work"
"$keel" --provider replay --replay "$root/examples/quickstart.jsonl" \
  -p "the add test fails; fix it" --dangerously-skip-permissions \
  --output-format stream-json --verbose |
  python3 "$here/show-stream.py"
echo
echo "calc.py is now:"
cat "$work/calc.py"
python3 test_calc.py && echo "and the test passes."
