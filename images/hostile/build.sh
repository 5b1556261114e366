#!/usr/bin/env bash
# Builds the static hostile program into the image's rootfs ($1).
set -euo pipefail
mkdir -p "$1/usr/bin"
cc -O2 -static -o "$1/usr/bin/hostile" "$(dirname "$0")/hostile.c"
