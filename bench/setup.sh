#!/bin/sh
# Install the reference tool of the benchmarks (rclone, from the distribution's packages) when missing.
# Never fails: without apt (or without root) the benchmarks run and report the rclone figures as null.
if command -v rclone >/dev/null 2>&1; then
    echo "bench setup: $(rclone version 2>/dev/null | head -n 1) already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "bench setup: apt-get not available; rclone figures will be null (install rclone to get them)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "bench setup: not root and no password-less sudo; rclone figures will be null"
        exit 0
    fi
fi
echo "bench setup: installing rclone with apt-get"
if $SUDO apt-get update -qq >/dev/null 2>&1 \
    && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rclone >/dev/null 2>&1; then
    echo "bench setup: $(rclone version 2>/dev/null | head -n 1) installed"
else
    echo "bench setup: apt-get install rclone failed; rclone figures will be null"
fi
exit 0
