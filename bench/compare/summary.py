"""Summarises several bench/compare runs (their .json files) in one Markdown table: each
figure per run, so the spread that other work on a shared machine causes is visible.

    python3 bench/compare/summary.py bench/results/2026-11-23*.json
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from report import DURABLE, EARLY, LABELS, ROWS, fmt, value  # noqa: E402


def main(paths):
    runs = [json.load(open(p)) for p in paths]
    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    print("| measurement | system | " + " | ".join(names) + " | Backorder ÷ system, per run |")
    print("|---|---|" + "---|" * (len(runs) + 1))
    for group, base in ((DURABLE, "Backorder"), (EARLY, "Backorder interval")):
        rows = ROWS if base == "Backorder" else ROWS[:5]
        for key, title, kind in rows:
            for system in group:
                values = [value(r["results"], system, key) for r in runs]
                if all(v is None for v in values):
                    continue
                ratios = []
                if system != base:
                    for r, v in zip(runs, values):
                        b = value(r["results"], base, key)
                        ratios.append(f"{b / v:.2f}" if b is not None and v else "–")
                print(f"| {title} | {LABELS.get(system, system)} | " + " | ".join(fmt(v, kind) for v in values)
                      + f" | {', '.join(ratios) if ratios else ''} |")
    print()
    print("| run | load average at the start of each system |")
    print("|---|---|")
    for n, r in zip(names, runs):
        print(f"| {n} | " + "; ".join(f"{k} {v}" for k, v in r["info"]["load"].items()) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
