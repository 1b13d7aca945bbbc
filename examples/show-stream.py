#!/usr/bin/env python3
"""Renders keel's stream-json output (one JSON object per line on stdin) as a readable log."""
import json
import sys

for line in sys.stdin:
    m = json.loads(line)
    kind = m["type"]
    if kind == "system" and m.get("subtype") == "init":
        print("session %s, model %s, tools: %s" % (m["session_id"], m["model"], ", ".join(m["tools"])))
    elif kind == "assistant":
        for block in m["message"]["content"]:
            if block["type"] == "text":
                print("\nkeel: " + block["text"])
            elif block["type"] == "tool_use":
                print("  -> %s %s" % (block["name"], json.dumps(block["input"])))
    elif kind == "user":
        for block in m["message"]["content"]:
            content = block.get("content", "")
            text = content if isinstance(content, str) else json.dumps(content)
            first = text.strip().splitlines()[0] if text.strip() else ""
            flag = " (error)" if block.get("is_error") else ""
            print("  <- %s%s" % (first[:100], flag))
    elif kind == "result":
        print("\nresult: %s in %d turns, %d ms" % (m["subtype"], m["num_turns"], m["duration_ms"]))
