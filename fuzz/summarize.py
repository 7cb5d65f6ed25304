#!/usr/bin/env python3
"""Print a Markdown table of the fuzz runs in fuzz/logs/*.log (libFuzzer with -print_final_stats)."""
import re
import sys
from pathlib import Path

logs = Path(__file__).resolve().parent / "logs"
print("| run (log) | executions | seconds | exec/s | corpus at end | ended by |")
print("|---|---|---|---|---|---|")
for log in sorted(logs.glob("*.log")):
    text = log.read_text(errors="replace")
    units = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    rate = re.findall(r"stat::average_exec_per_sec:\s*(\d+)", text)
    done = re.findall(r"Done (\d+) runs in (\d+) second", text)
    progress = re.findall(r"^#(\d+)\s+\S+.*?corp: (\d+)/(\S+)", text, re.M)
    n = units[-1] if units else (progress[-1][0] if progress else "?")
    corp = f"{progress[-1][1]} inputs, {progress[-1][2]}" if progress else "?"
    secs = done[-1][1] if done else "?"
    if "ERROR: libFuzzer: out-of-memory" in text:
        end = "out-of-memory (finding)"
    elif "ERROR: libFuzzer: timeout" in text:
        end = "timeout (finding)"
    elif "ERROR: libFuzzer: deadly signal" in text or re.search(r"^thread '.*' panicked", text, re.M):
        end = "panic (finding)"
    elif done:
        end = "time/run limit"
    else:
        end = "still running"
    r = rate[-1] if rate else "?"
    if secs == "?" and n != "?" and r not in ("?", "0"):
        secs = f"~{int(n) // int(r)}"
    print(f"| `{log.stem}` | {n} | {secs} | {r} | {corp} | {end} |")

# Totals per target (a target's runs are `<target>.log` and `<target>.<n>.log`).
totals = {}
for log in sorted(logs.glob("*.log")):
    text = log.read_text(errors="replace")
    t = log.name.split(".")[0]
    units = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    rate = re.findall(r"stat::average_exec_per_sec:\s*(\d+)", text)
    done = re.findall(r"Done (\d+) runs in (\d+) second", text)
    n = int(units[-1]) if units else 0
    secs = int(done[-1][1]) if done else (n // int(rate[-1]) if rate and int(rate[-1]) else 0)
    a = totals.setdefault(t, [0, 0, 0])
    a[0] += n
    a[1] += secs
    a[2] += 1
print()
for t, (n, secs, runs) in sorted(totals.items()):
    reached = "1M executions" if n >= 1_000_000 else ("30 min" if secs >= 1800 else "neither")
    print(f"| `{t}` | {n:,} ({runs} run{'s' if runs > 1 else ''}) | {secs // 60} min {secs % 60} s | {reached} |")
