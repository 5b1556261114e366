#!/usr/bin/env bash
# Builds the static server into the image's rootfs ($1).
set -euo pipefail
mkdir -p "$1/usr/lib/hello-keepalive"
cc -O2 -static -o "$1/usr/lib/hello-keepalive/server" "$(dirname "$0")/server.c"
