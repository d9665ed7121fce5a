#!/bin/sh
# test/websocket/setup.sh  What t_browser.py needs: Chromium and JsSIP
#
# usage: setup.sh DIR
#
# - chromium (Debian's package): `make test` installs it (TEST_PKGS in
#   the Makefile); when it is missing here and we are root, installed
#   with apt-get (a run of `meson test` alone on a fresh machine);
# - JsSIP from npm, pinned by test/websocket/npm/package-lock.json
#   (jssip 3.13.8 and its four dependencies, integrity hashes), into
#   DIR/npm/node_modules with `npm ci`; kept there: a rerun whose lock
#   file is unchanged installs nothing.
#
# Prints `chromium PATH` and `node_modules PATH` on success; otherwise
# one line `skip REASON` (the test then reports a TAP SKIP with it), exit
# 0 either way; any other failure exits 1.
set -u
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: setup.sh DIR}
mkdir -p "$dir" || exit 1

chromium=$(command -v chromium || true)
if [ -z "$chromium" ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "# installing chromium (apt-get)" >&2
        { apt-get update -qq &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
              --no-install-recommends chromium; } >"$dir/apt.log" 2>&1
        chromium=$(command -v chromium || true)
    fi
    if [ -z "$chromium" ]; then
        echo "skip chromium not installed (Debian package chromium;" \
             "make test installs it) and apt-get could not: see $dir/apt.log"
        exit 0
    fi
fi

npm=$(command -v npm || true)
if [ -z "$npm" ]; then
    echo "skip npm not found: JsSIP comes from the npm registry"
    exit 0
fi

npmdir="$dir/npm"
mkdir -p "$npmdir" || exit 1
if ! cmp -s "$here/npm/package-lock.json" "$npmdir/package-lock.json" ||
   [ ! -f "$npmdir/node_modules/jssip/package.json" ]; then
    echo "# npm ci (jssip, pinned by test/websocket/npm/package-lock.json)" >&2
    cp "$here/npm/package.json" "$here/npm/package-lock.json" "$npmdir/" ||
        exit 1
    if ! (cd "$npmdir" && npm ci --no-audit --no-fund --ignore-scripts \
              >npm.log 2>&1); then
        rm -f "$npmdir/package-lock.json"   # not cached: try again next run
        echo "skip npm ci failed (registry unreachable?): $(tail -n 3 \
            "$npmdir/npm.log" | tr '\n' ' ')"
        exit 0
    fi
fi

echo "chromium $chromium"
echo "node_modules $npmdir/node_modules"
