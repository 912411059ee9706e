#!/bin/sh
# aks-sim: `env` (as coreutils'), so that the command is looked up in PATH (busybox's env
# would run its own applets instead of the node's shims).
while [ $# -gt 0 ]; do
    case "$1" in
    -i | --ignore-environment | -) exec /bin/busybox env "$@" ;;
    -u)
        unset "$2"
        shift 2
        ;;
    -u?*)
        unset "${1#-u}"
        shift
        ;;
    --unset=*)
        unset "${1#--unset=}"
        shift
        ;;
    --)
        shift
        break
        ;;
    *=*)
        export "$1"
        shift
        ;;
    *) break ;;
    esac
done
[ $# -eq 0 ] && exec /bin/busybox env
if ! command -v "$1" >/dev/null 2>&1; then
    echo "env: '$1': No such file or directory" >&2
    exit 127
fi
exec "$@"
