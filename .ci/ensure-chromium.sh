#!/bin/sh
# tests/harness/reporting/test_browser.py opens report.html in a real headless browser. pip cannot install
# one, so `tox -e browser` calls this first: it installs Debian's chromium when no browser is on PATH (as
# root, with apt-get: CI and this project's machines), and otherwise fails saying what to do.
set -eu
for browser in "${CONVPARITY_BROWSER:-}" chromium chromium-browser google-chrome google-chrome-stable; do
    if [ -n "$browser" ] && command -v "$browser" >/dev/null 2>&1; then
        exit 0
    fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: the browser test needs a headless Chromium on PATH; install one (Debian:" \
         "apt-get install chromium) or set CONVPARITY_BROWSER to its path, then rerun" >&2
    exit 1
fi
echo "ensure-chromium: installing chromium with apt-get for the report's browser test" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium
