#!/usr/bin/env bash
# Print the delegated cgroup v2 directory of the test user:
# <cgroup2 mount>/sandbox-test.slice/USER. The mount is looked up in
# /proc/self/mountinfo (/sys/fs/cgroup on a pure cgroup v2 host,
# /sys/fs/cgroup/unified on a hybrid one). Prints nothing and exits 1
# when no cgroup2 filesystem is mounted.
#   scripts/test-cgroup.sh USER
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 USER" >&2; exit 2; }
mnt="$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i+1) == "cgroup2") { print $5; exit } break } }' /proc/self/mountinfo)"
[[ -n "$mnt" ]] || exit 1
printf '%s/sandbox-test.slice/%s\n' "$mnt" "$1"
