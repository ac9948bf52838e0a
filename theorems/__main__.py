"""CLI: python -m theorems list | verify [IDS] [--budget quick|full] [--json FILE] [--figures DIR] [--report FILE]."""

import argparse
import json
import sys

from .harness import BUDGETS, verify
from .registry import get


def _table(verdicts):
    lines = [f"{'theorem':<22} {'claim':<44} {'measured':>12}  {'expected':<24} result"]
    for v in verdicts:
        for c in v.claims:
            lines.append(f"{v.id:<22} {c.name[:44]:<44} {_short(c.measured):>12}  {c.expected_text()[:24]:<24} "
                         f"{c.status}")
    passed = sum(v.passed for v in verdicts)
    lines.append(f"{passed}/{len(verdicts)} theorems passed, "
                 f"{sum(c.passed for v in verdicts for c in v.claims)}/{sum(len(v.claims) for v in verdicts)} claims")
    return "\n".join(lines)


def _short(x):
    if isinstance(x, bool):
        return str(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)[:12]
    return f"{x:.4g}" if x == 0 or 1e-3 <= abs(x) < 1e5 else f"{x:.3e}"


def _report(verdicts, budget):
    lines = [f"# Theorem verification ({budget} budget)", ""]
    for v in verdicts:
        lines += [f"## {v.id}: {'PASS' if v.passed else 'FAIL'} ({v.seconds:.1f} s)", "", v.reference, ""]
        lines += ["| claim | measured | expected | result |", "|---|---|---|---|"]
        lines += [f"| {c.name} | {_short(c.measured)} | {c.expected_text()} | {c.status} |" for c in v.claims]
        lines += [f"\n- KNOWN FAIL, {c.name}: {c.known_failure} ({c.note})" for c in v.claims
                  if not c.passed and c.known_failure]
        if v.figure:
            lines += ["", f"![{v.id}]({v.figure})"]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m theorems", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list", help="list the registered theorems")
    run = sub.add_parser("verify", help="run, check and draw theorems")
    run.add_argument("ids", nargs="*", help="theorem ids (default: all)")
    run.add_argument("--budget", choices=BUDGETS, default="quick")
    run.add_argument("--json", help="write machine-readable results to this file")
    run.add_argument("--figures", help="write one PNG per theorem into this folder")
    run.add_argument("--report", help="write a Markdown report to this file")
    args = parser.parse_args(argv)
    if args.command in (None, "list"):
        for t in get():
            print(f"{t.id:<22} {t.reference}")
        return 0
    verdicts = []
    for theorem in get(args.ids):
        print(f"verifying {theorem.id} ({args.budget}) ...", flush=True)
        verdicts.append(verify(theorem, args.budget, args.figures))
    print(_table(verdicts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([v.as_dict() for v in verdicts], f, indent=2)
    if args.report:
        with open(args.report, "w") as f:
            f.write(_report(verdicts, args.budget))
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
