#!/usr/bin/env bash
# Prints the repository's module directories in dependency order, one a line, from modules.txt
# (the one place the list is kept).
set -euo pipefail
awk '{ sub(/#.*/, "") } NF { print $1 }' "$(cd "$(dirname "$0")/.." && pwd)/modules.txt"
