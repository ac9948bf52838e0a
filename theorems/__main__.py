"""CLI: python -m theorems list | verify [IDS] [--budget quick|full] [--json FILE] [--figures DIR] [--report FILE]
[--evidence DIR] | check --evidence DIR [IDS] [--json FILE] [--report FILE].

Exit status: 0 when every claim passes or fails as expected (XFAIL), 1 when a claim fails unexpectedly (FAIL) or
passes where a failure was expected (XPASS), 2 for usage errors (unknown id, unwritable output path), which are
found before anything runs.
"""

import argparse
import json
import os
import pathlib
import sys
import textwrap

# Persistent compilation cache (dynamics.cache), read by `import dynamics` below: .cache/jax under the repository
# root unless DYNAMICS_CACHE_DIR is set (set it empty to turn the cache off).
os.environ.setdefault("DYNAMICS_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".cache" / "jax"))
# The command line only writes figure files: no display backend (importing `theorems` elsewhere, e.g. in a notebook,
# leaves the backend alone).
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

from .harness import BUDGETS, judge, verify  # noqa: E402
from .registry import THEOREMS, get  # noqa: E402

NAME_WIDTH = 52
USAGE_ERROR = 2


class UsageError(Exception):
    """A command line that cannot be carried out (reported before running anything)."""


def _table(verdicts):
    lines = [f"{'theorem':<24} {'claim':<{NAME_WIDTH}} {'role':<5} {'measured':>11}  {'expected':<24} result"]
    for v in verdicts:
        for c in v.claims:
            wrapped = textwrap.wrap(c.name, NAME_WIDTH) or [""]
            lines.append(f"{v.id:<24} {wrapped[0]:<{NAME_WIDTH}} {c.role[:5]:<5} {_short(c.measured):>11}  "
                         f"{c.expected_text()[:24]:<24} {c.status(v.budget)}")
            lines += [f"{'':<24} {more}" for more in wrapped[1:]]
        counts = v.counts()
        lines.append(f"{'':<24} -> {'ok' if v.passed else 'NOT OK'} in {v.seconds:.1f} s: "
                     + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                     + (f"; {len(v.warnings)} warning(s) during the run:" if v.warnings else ""))
        lines += [f"{'':<24}    {textwrap.shorten(w, 150)}" for w in v.warnings]
    ok = sum(v.passed for v in verdicts)
    totals = {s: sum(v.counts()[s] for v in verdicts) for s in ("PASS", "XFAIL", "FAIL", "XPASS")}
    lines.append(f"{ok}/{len(verdicts)} theorems ok; claims: "
                 + ", ".join(f"{n} {s}" for s, n in totals.items() if n or s == "PASS")
                 + f"; {sum(v.seconds for v in verdicts):.0f} s")
    return "\n".join(lines)


def _short(x):
    if isinstance(x, bool):
        return str(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)[:11]
    return f"{x:.4g}" if x == 0 or 1e-3 <= abs(x) < 1e5 else f"{x:.3e}"


def _report(verdicts):
    budgets = sorted({v.budget for v in verdicts})
    lines = [f"# Theorem verification ({', '.join(budgets)} budget)", "",
             "Status: PASS; FAIL; XFAIL (fails as expected, reason given); XPASS (passes where a failure was "
             "expected: fails the run). Role: theorem (a prediction of the paper) or consistency (a check of the "
             "instrument).", ""]
    for v in verdicts:
        lines += [f"## {v.id}: {'ok' if v.passed else 'NOT OK'} ({v.seconds:.1f} s)", "", v.reference, ""]
        lines += ["| claim | role | measured | expected | why this tolerance | result |", "|---|---|---|---|---|---|"]
        lines += [f"| {c.name} | {c.role} | {_short(c.measured)} | {c.expected_text()} | {c.why} | "
                  f"{c.status(v.budget)} |" for c in v.claims]
        lines += [f"\n- {c.status(v.budget)}, {c.name}: {c.expected_failure.reason} ({c.note})" for c in v.claims
                  if c.expects_failure(v.budget)]
        if v.warnings:
            lines += ["", "Warnings raised during the run:", ""] + [f"- {w}" for w in v.warnings]
        if v.figure:
            lines += ["", f"![{v.id}]({v.figure})"]
        lines.append("")
    return "\n".join(lines)


def _writable_file(path):
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path) or not os.path.isdir(parent) or not os.access(parent, os.W_OK) or (
            os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path!r}: its folder must exist and be writable")


def _writable_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the folder {path!r}: {e.strerror}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"cannot write into the folder {path!r}")


def _theorems(ids):
    try:
        return get(ids)
    except KeyError as e:
        raise UsageError(e.args[0]) from None


def _outputs(args):
    for path in (args.json, args.report):
        if path:
            _writable_file(path)
    if getattr(args, "figures", None):
        _writable_dir(args.figures)


def _write(args, verdicts):
    print(_table(verdicts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([v.as_dict() for v in verdicts], f, indent=2)
    if args.report:
        with open(args.report, "w") as f:
            f.write(_report(verdicts))
    return 0 if all(v.passed for v in verdicts) else 1


def _verify(args):
    theorems = _theorems(args.ids)
    _outputs(args)
    if args.evidence:
        _writable_dir(args.evidence)
    verdicts = []
    for theorem in theorems:
        print(f"verifying {theorem.id} ({args.budget}) ...", flush=True)
        verdicts.append(verify(theorem, args.budget, args.figures, args.evidence))
        jax.clear_caches()  # each theorem compiles its own programs: keep one run's memory, not all (5.6 GB at 38)
    return _write(args, verdicts)


def _check(args):
    from .evidence import EvidenceError, load_evidence, saved_ids

    try:
        ids = args.ids or [i for i in saved_ids(args.evidence) if i in THEOREMS]
    except EvidenceError as e:
        raise UsageError(str(e)) from None
    theorems = _theorems(ids)
    _outputs(args)
    verdicts = []
    for theorem in theorems:
        try:
            evidence, meta = load_evidence(args.evidence, theorem.id)
        except EvidenceError as e:
            raise UsageError(str(e)) from None
        print(f"checking {theorem.id} (saved at the {meta['budget']} budget, {meta['saved']}) ...", flush=True)
        verdicts.append(judge(theorem, evidence, meta["budget"], meta["wall_seconds"]))
    if not verdicts:
        raise UsageError(f"no saved evidence of a registered theorem in {args.evidence!r}")
    return _write(args, verdicts)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m theorems", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list", help="list the registered theorems")
    run = sub.add_parser("verify", help="run, check and draw theorems")
    run.add_argument("ids", nargs="*", help="theorem ids (default: all)")
    run.add_argument("--budget", choices=BUDGETS, default="quick")
    run.add_argument("--figures", help="write one PNG per theorem into this folder")
    run.add_argument("--evidence", help="save each theorem's evidence (npz + JSON metadata) into this folder")
    check = sub.add_parser("check", help="re-check the claims from saved evidence, without re-running")
    check.add_argument("ids", nargs="*", help="theorem ids (default: every theorem saved in the folder)")
    check.add_argument("--evidence", required=True, help="the folder written by verify --evidence")
    for p in (run, check):
        p.add_argument("--json", help="write machine-readable results to this file")
        p.add_argument("--report", help="write a Markdown report to this file")
    args = parser.parse_args(argv)
    if args.command in (None, "list"):
        for t in get():
            print(f"{t.id:<24} {t.reference}")
        return 0
    try:
        return _verify(args) if args.command == "verify" else _check(args)
    except UsageError as e:
        print(f"python -m theorems {args.command}: error: {e}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
