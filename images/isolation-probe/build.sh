#!/usr/bin/env bash
# Builds the static probe into the image's rootfs ($1).
set -euo pipefail
cc -O2 -static -o "$1/probe" "$(dirname "$0")/probe.c"
