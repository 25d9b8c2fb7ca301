#!/usr/bin/env python3
"""Judge an Autobahn|Testsuite fuzzingclient report (stdlib only).

Usage: check.py OUTDIR [--expect CASES.json] [--strict-compression]
                       [--markdown FILE]

OUTDIR is the spec's "outdir" (the directory holding index.json), or the
index.json itself. Exit status 0 when every case is acceptable, 1 otherwise.

Acceptable:
  behavior       OK or INFORMATIONAL; UNIMPLEMENTED too, for compression
                 cases (sections 12 and 13) unless --strict-compression
  behaviorClose  OK or INFORMATIONAL
With --expect (a JSON list of case ids), every listed case must be present.
"""
import argparse
import collections
import datetime
import json
import os
import sys

COMPRESSION_SECTIONS = {"12", "13"}


def case_key(case_id):
    """Sort "1.2.10" after "1.2.9"."""
    return [int(p) if p.isdigit() else p for p in case_id.split(".")]


def problem(case_id, result, strict_compression):
    """Return a description of what is wrong with one case, or None."""
    behavior = result.get("behavior")
    close = result.get("behaviorClose")
    ok = {"OK", "INFORMATIONAL"}
    if not strict_compression and case_id.split(".")[0] in COMPRESSION_SECTIONS:
        ok = ok | {"UNIMPLEMENTED"}
    if behavior in ok and close in {"OK", "INFORMATIONAL"}:
        return None
    return "behavior=%s behaviorClose=%s" % (behavior, close)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--expect", metavar="CASES.json",
                    help="JSON list of case ids that must all have run")
    ap.add_argument("--strict-compression", action="store_true",
                    help="do not accept UNIMPLEMENTED for sections 12/13")
    ap.add_argument("--markdown", metavar="FILE",
                    help="also write a markdown summary to FILE")
    args = ap.parse_args()

    path = args.outdir
    if os.path.isdir(path):
        path = os.path.join(path, "index.json")
    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("check: cannot read %s: %s" % (path, e), file=sys.stderr)
        return 1

    # Flatten {agent: {case: result}} into (agent, case, result) rows.
    rows = sorted(((agent, case, res or {})
                   for agent, cases in index.items()
                   for case, res in cases.items()),
                  key=lambda r: (r[0], case_key(r[1])))
    if not rows:
        print("check: FAIL: no cases in %s" % path)
        return 1

    counts = collections.Counter(r[2].get("behavior") for r in rows)
    bad = [(a, c, problem(c, r, args.strict_compression)) for a, c, r in rows]
    bad = [b for b in bad if b[2]]
    if args.expect:
        with open(args.expect) as f:
            expected = json.load(f)
        for agent in sorted(index):
            bad += [(agent, c, "missing (never ran)")
                    for c in expected if c not in index[agent]]
    non_ok = [(a, c, r) for a, c, r in rows
              if r.get("behavior") != "OK" or r.get("behaviorClose") != "OK"]
    slowest = sorted(rows, key=lambda r: r[2].get("duration") or 0, reverse=True)[:5]

    print("Autobahn results (%s):" % path)
    for behavior, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        print("  %-15s %d" % (behavior, n))
    print("  %-15s %d" % ("total", len(rows)))
    print("Slowest cases:")
    for agent, case, res in slowest:
        print("  %-10s %6s ms" % (case, res.get("duration")))
    if non_ok and len(non_ok) > len(bad):
        print("Accepted non-OK cases:")
        for agent, case, res in non_ok:
            if not problem(case, res, args.strict_compression):
                print("  %-10s behavior=%s behaviorClose=%s"
                      % (case, res.get("behavior"), res.get("behaviorClose")))

    if args.markdown:
        missing = [c for a, c, why in bad if why.startswith("missing")]
        write_markdown(args.markdown, rows, counts, non_ok, missing)

    if bad:
        print("FAIL: %d cases not acceptable (%d ran):" % (len(bad), len(rows)))
        for agent, case, why in bad:
            print("  [%s] %-10s %s" % (agent, case, why))
        return 1
    print("PASS: all %d cases acceptable" % len(rows))
    return 0


def write_markdown(filename, rows, counts, non_ok, missing):
    agents = sorted({r[0] for r in rows})
    lines = [
        "| Item | Value |",
        "|---|---|",
        "| Date | %s |" % datetime.date.today().isoformat(),
        "| Agent | %s |" % ", ".join(agents),
        "| Cases run | %d |" % len(rows),
    ]
    for behavior, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        lines.append("| %s | %d |" % (behavior, n))
    lines.append("")
    if non_ok:
        lines.append("Cases not fully OK:")
        lines.append("")
        for agent, case, res in non_ok:
            lines.append("- `%s`: behavior %s, close %s"
                         % (case, res.get("behavior"), res.get("behaviorClose")))
    else:
        lines.append("All cases OK.")
    if missing:
        lines += ["", "Cases that never ran: " + ", ".join(missing)]
    with open(filename, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
