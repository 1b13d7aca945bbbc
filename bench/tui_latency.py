#!/usr/bin/env python3
"""Input latency of keel's terminal UI: keystroke to screen, idle and while an answer streams.

Runs the real `keel` (no -p) on a pseudo-terminal against the mock model server. The script
plays the terminal: it answers keel's cursor-position query, writes keystrokes to the pty and
reads what keel draws. A keystroke counts as on screen when the redrawn prompt row carrying it
has been written to the pty (the time a terminal emulator needs to paint it is not included).

  idle       latency of 40 keystrokes with nothing streaming
  streaming  latency of 40 keystrokes while the model streams a long Markdown answer as fast
             as the mock can send it (thousands of deltas, code blocks, lists)

Prints min / median / p95 / max in milliseconds and writes bench/tui_latency.json. Exits
non-zero when the streaming p95 exceeds the budget (BUDGET_MS, default 50 ms: three frames).

KEEL_BIN and MOCK_BIN choose the binaries (default: a release build, as bench/run makes).
Only loopback traffic; nothing is downloaded.
"""

import fcntl
import json
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = int(os.environ.get("BENCH_KEYS", "40"))
BUDGET_MS = float(os.environ.get("BUDGET_MS", "50"))


def binaries():
    if os.environ.get("KEEL_BIN") and os.environ.get("MOCK_BIN"):
        return Path(os.environ["KEEL_BIN"]).resolve(), Path(os.environ["MOCK_BIN"]).resolve()
    subprocess.run(["cargo", "build", "--quiet", "--locked", "--release",
                    "-p", "keel-cli", "-p", "keel-test-support"], cwd=ROOT, check=True)
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                                     cwd=ROOT, check=True, capture_output=True,
                                     text=True).stdout)
    target = Path(meta["target_directory"]) / "release"
    return target / "keel", target / "keel-mock-model"


def long_answer():
    parts = []
    for i in range(300):
        parts.append(f"## Section {i}\n\nSome *emphasis* and `code` in paragraph {i}, "
                     "with enough words to wrap across the width of the terminal twice over.\n\n"
                     f"- item one of {i}\n- item two of {i}\n\n"
                     "```rust\nfn main() {\n    println!(\"hello\");\n}\n```\n\n")
    return "".join(parts)


class Terminal:
    """keel on a pty, 100x30, with this process as the terminal."""

    def __init__(self, keel, env, cwd):
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(cwd)
            os.execve(str(keel), [str(keel)], env)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.seen = b""

    def pump(self, timeout):
        """Reads what keel wrote; answers cursor-position queries. Returns the new bytes."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return b""
        if b"\x1b[6n" in data:
            os.write(self.fd, b"\x1b[1;1R")
        self.seen += data
        return data

    def wait_for(self, needle, limit=20.0):
        deadline = time.monotonic() + limit
        while needle not in self.seen:
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {needle!r}; keel wrote: {self.seen[-2000:]!r}")
            self.pump(0.05)

    def keystroke_latencies(self, count, letter=b"Z"):
        values = []
        for i in range(1, count + 1):
            # Let output drain a moment so keystrokes are spread over the stream.
            self.pump(0.01)
            expected = letter * i
            got = b""
            t0 = time.perf_counter()
            os.write(self.fd, letter)
            while expected not in got:
                got += self.pump(1.0)
                if time.perf_counter() - t0 > 5:
                    raise SystemExit(f"keystroke {i} not drawn within 5 s")
            values.append((time.perf_counter() - t0) * 1000)
        # Clear the prompt for the next phase (Ctrl+U).
        os.write(self.fd, b"\x15")
        return values

    def close(self):
        # Esc stops a running answer; Ctrl-C twice leaves. Kill keel if it does not exit.
        for key in (b"\x1b", b"\x03", b"\x03"):
            os.write(self.fd, key)
            self.pump(0.2)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.pump(0.05)
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)


def summary(values):
    ordered = sorted(values)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return {"min": ordered[0], "median": statistics.median(ordered), "p95": p95,
            "max": ordered[-1], "keys": len(ordered)}


def main():
    keel, mock_bin = binaries()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        project, home = work / "project", work / "home"
        project.mkdir()
        home.mkdir()
        script = work / "script.json"
        script.write_text(json.dumps({"turns": [
            {"content": [{"type": "text", "text": long_answer()}], "event_delay_ms": 1},
        ], "repeat": True}))
        mock = subprocess.Popen([str(mock_bin), "--script", str(script)],
                                stdout=subprocess.PIPE, text=True)
        url = mock.stdout.readline().strip().removeprefix("listening on ")
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "TERM": "xterm-256color",
               "ANTHROPIC_API_KEY": "bench-key", "ANTHROPIC_BASE_URL": url}
        term = Terminal(keel, env, project)
        try:
            term.wait_for(b"esc to interrupt")  # the banner: the UI is up
            print("measuring idle keystrokes", file=sys.stderr)
            idle = term.keystroke_latencies(KEYS)
            os.write(term.fd, b"write a long answer\r")
            term.wait_for(b"Section 3")
            print("measuring keystrokes while streaming", file=sys.stderr)
            before = len(term.seen)
            streaming = term.keystroke_latencies(KEYS)
            streamed = len(term.seen) - before
        finally:
            term.close()
            mock.terminate()
            mock.wait()
    results = {"idle_ms": summary(idle), "streaming_ms": summary(streaming),
               "bytes_drawn_while_typing": streamed, "budget_p95_ms": BUDGET_MS}
    (ROOT / "bench" / "tui_latency.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| phase | min | median | p95 | max | (ms, keystroke to screen) |")
    print("|---|---|---|---|---|---|")
    for name in ("idle", "streaming"):
        s = results[f"{name}_ms"]
        print(f"| {name} | {s['min']:.2f} | {s['median']:.2f} | {s['p95']:.2f} | {s['max']:.2f} | |")
    print(f"({streamed} bytes drawn by keel while the {KEYS} streaming keystrokes were measured)")
    if results["streaming_ms"]["p95"] > BUDGET_MS:
        print(f"over budget: streaming p95 {results['streaming_ms']['p95']:.1f} ms > {BUDGET_MS} ms")
        sys.exit(1)


if __name__ == "__main__":
    main()
