#!/usr/bin/env python3
"""Print meson's test results as one line, `N passed, N failed`.

CI reads that line (meson's own summary is not read). Exit status is 0
only when nothing failed and at least one test ran.
"""
import json
import sys


def main(path):
    passed = failed = skipped = 0
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                res = r.get("result", "")
                if res in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif res == "SKIP":
                    skipped += 1
                else:
                    failed += 1
                    print("FAILED: %s (%s)" % (r.get("name"), res))
    except OSError as e:
        print("no test results: %s" % e)
        failed += 1
    tail = ", %d skipped" % skipped if skipped else ""
    print("%d passed, %d failed%s" % (passed, failed, tail))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else
                  "build/meson-logs/testlog.json"))
