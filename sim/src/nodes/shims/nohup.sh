#!/bin/sh
# aks-sim: `nohup` (as coreutils'), so that the command is looked up in PATH (busybox's nohup
# would run its own applets instead of the node's shims).
if [ $# -eq 0 ]; then
    echo "nohup: missing operand" >&2
    exit 125
fi
trap '' HUP
if [ -t 1 ]; then
    echo "nohup: ignoring input and appending output to 'nohup.out'" >&2
    exec >>nohup.out
fi
[ -t 2 ] && exec 2>&1
[ -t 0 ] && exec </dev/null
if ! command -v "$1" >/dev/null 2>&1; then
    echo "nohup: failed to run command '$1': No such file or directory" >&2
    exit 127
fi
exec "$@"
