#!/bin/sh
# tinygrad's CPU device compiles every kernel (and, in tinygrad 0.14, its own queue programs when it
# starts) with clang, or the compiler $CC names; gcc cannot stand in. pip cannot install clang, so the
# tox environments that run tinygrad call this first: it installs Debian's clang when none is on PATH
# (as root, with apt-get: CI and this project's machines), and otherwise fails saying what to do.
set -eu
compiler="${CC:-clang}"
if command -v "$compiler" >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-clang: tinygrad needs '$compiler' on PATH; install clang (Debian: apt-get install clang)" \
         "or set CC to a clang, then rerun" >&2
    exit 1
fi
echo "ensure-clang: installing clang with apt-get for tinygrad's CPU device" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends clang >/dev/null
command -v clang
