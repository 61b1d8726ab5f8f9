#!/usr/bin/env python3
"""Judge one kernel's run for `cargo xtask kernel-test`.

usage: compare.py RESULTS HOST_DIR PAIRS ELAPSED_SECONDS HOST_KERNEL

RESULTS is what the kernel under test produced (ttyS1 of the guest, see init.sh; or the same
format from the host run): replay --json lines per (policy, capture) between KT-BEGIN/KT-END,
the end-to-end output, PROG lines and KT-TIME lines. HOST_DIR holds the host kernel's replay
output, one POLICY-CAPTURE.json per pair. Prints the details and, last, one result line:
  kernel 6.1.192: verifier accepted, 6933/6933 frames agreeing with the host (6.18.44), end-to-end: pass
Exit 0 only if the verifier accepted, every frame agreed and the end-to-end run passed.
"""

import os
import re
import sys


TRACE = re.compile(r"^\d+: \(")


def verifier_summary(err):
    """The loader's first error line, the last instructions the verifier walked, its complaint
    and its totals (the full log is in the results file)."""
    if not err:
        return ["(no output)"]
    out = [err[0].split(" Verifier output:")[0]]
    end = next((i for i, l in enumerate(err) if l.startswith("processed ")), None)
    if end is None:
        return out + err[1:40]
    last_trace = max((i for i in range(end) if TRACE.match(err[i])), default=0)
    first = max(1, last_trace - 11)
    out += ["..."] + err[first : last_trace + 1]
    out += [l for l in err[last_trace + 1 : end] if not l.startswith(("verification time", "stack depth"))]
    out.append(err[end])
    return out


def main():
    results, host_dir, pairs_file, elapsed, host_kernel = sys.argv[1:6]
    # "pktgen": the run must include a passing pktgen check (the 6.1 guest; the host has none).
    pktgen_needed = sys.argv[6:7] == ["pktgen"]
    text = open(results, "rb").read().decode("utf-8", "replace").replace("\r", "")
    lines = text.split("\n")
    pairs = [tuple(l.split()) for l in open(pairs_file) if l.strip()]

    kernel = "unknown kernel"
    runs = {}  # (policy, capture) -> (rc, [json lines], [stderr lines])
    e2e = []
    pktgen = []
    script = []
    in_script = False
    progs = []
    times = {}
    done = False
    cur = None
    in_err = False
    for line in lines:
        if line.startswith("KT-KERNEL "):
            # Debian's /proc/version ends "... SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (date)".
            deb = re.findall(r"Debian (\d+\.\d+\.\d+)-", line)
            m = re.search(r"Linux version (\S+)", line)
            kernel = deb[-1] if deb else (m.group(1) if m else line.split()[1])
        elif line.startswith("KT-BEGIN "):
            cur = tuple(line.split()[1:3])
            runs[cur] = [None, [], []]
        elif line.startswith("KT-END ") and cur:
            runs[cur][0] = int(line.rsplit("rc=", 1)[1])
            last = cur
            cur = None
        elif line == "KT-STDERR-BEGIN":
            in_err = True
        elif line == "KT-STDERR-END":
            in_err = False
        elif in_err:
            runs[last][2].append(line)
        elif cur is not None:
            if line.strip():
                runs[cur][1].append(line.strip())
        elif line.startswith("KT-TIME "):
            _, what, secs = line.split()
            times[what] = float(secs)
        elif line == "KT-DONE":
            done = True
        elif line.startswith("PROG "):
            progs.append(dict(kv.split("=", 1) for kv in line.split()[1:]))
            e2e.append(line)
        elif line.startswith("E2E"):
            e2e.append(line)
        elif line == "PKTGEN-SCRIPT-BEGIN":
            in_script = True
        elif line == "PKTGEN-SCRIPT-END":
            in_script = False
        elif in_script:
            script.append(line)
        elif line.startswith("PKTGEN"):
            pktgen.append(line)

    total = agree = 0
    rejected = []
    details = []
    for pair in pairs:
        p, c = pair
        with open(os.path.join(host_dir, "%s-%s.json" % (p, c))) as f:
            want = [l.strip() for l in f if l.strip()]
        total += len(want)
        if pair not in runs or runs[pair][0] is None:
            details.append("  %s x %s: no result from the kernel under test" % (p, c))
            continue
        rc, got, err = runs[pair]
        if rc != 0:
            rejected.append((pair, err))
            details.append("  %s x %s: the loader failed (rc=%d)" % (p, c, rc))
            continue
        n = sum(1 for a, b in zip(want, got) if a == b)
        agree += n
        line = "  %s x %s: %d/%d frames agree" % (p, c, n, len(want))
        if len(got) != len(want):
            line += " (kernel under test gave %d lines)" % len(got)
        details.append(line)
        shown = 0
        for i, (a, b) in enumerate(zip(want, got)):
            if a != b and shown < 5:
                details.append("    frame %d: host %s\n    %s  test %s" % (i, a, " " * len(str(i)), b))
                shown += 1

    print("verdicts (sdn-loader replay --json, host kernel %s vs kernel under test):" % host_kernel)
    print("\n".join(details))
    if rejected:
        print("the program was NOT loaded on %s; the loader said (verifier log):" % kernel)
        for (p, c), err in rejected[:1]:
            for l in verifier_summary(err):
                print("    " + l)
        print("  (full output: the KT-STDERR blocks of %s)" % results)
    if e2e:
        print("end to end (veth pair between two namespaces, native XDP):")
        for l in e2e:
            if l.startswith(("E2E ok", "E2E FAIL", "E2E-RESULT", "E2E note", "PROG")):
                print("  " + l)
    if pktgen or script:
        print("pktgen (scripts/pktgen-router.sh in the guest, veth pair, native XDP):")
        for l in script:
            print("  | " + l)
        for l in pktgen:
            print("  " + l)
    if times:
        print("guest timings: " + ", ".join("%s %.1f s" % kv for kv in times.items()))

    e2e_pass = any(l.startswith("E2E-RESULT pass") for l in e2e)
    if rejected:
        verifier = "verifier REJECTED the program"
    elif runs and all(r[0] == 0 for r in runs.values()):
        verifier = "verifier accepted"
    else:
        verifier = "verifier: no result"
    insns = ""
    if progs:
        insns = ", verifier processed " + " + ".join(
            "%s %s" % (p.get("name"), p.get("verified_insns")) for p in progs) + " insns"
    # The host kernel has no pktgen: only the guest's run is judged on it.
    pktgen_pass = any(l.startswith("PKTGEN-RESULT pass") for l in pktgen)
    ok = done and not rejected and agree == total and total > 0 and e2e_pass and (
        pktgen_pass or not pktgen_needed)
    print("kernel %s: %s, %d/%d frames agreeing with the host (%s), end-to-end: %s, pktgen: %s%s; %.0f s%s" % (
        kernel, verifier, agree, total, host_kernel, "pass" if e2e_pass else "FAIL",
        "pass" if pktgen_pass else ("FAIL" if pktgen_needed else "not run (no pktgen here)"), insns, float(elapsed),
        "" if done else " (the run did not finish)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
