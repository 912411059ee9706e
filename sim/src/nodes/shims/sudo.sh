#!/bin/sh
# aks-sim: `sudo` of an emulated AKS node. The login user is not root inside the chroot, so
# this runs the command as the same user with the environment real sudo would give it
# (SUDO_USER, secure_path, `sudo VAR=value cmd`); the node's shims treat AKS_SIM_SUDO as root.
usage() {
    echo "usage: sudo -h | -K | -k | -V" >&2
    echo "usage: sudo [-nEHS] [-u user] [VAR=value] command [arg ...]" >&2
    exit 1
}
login_shell=0
while [ $# -gt 0 ]; do
    case "$1" in
    -n | -E | -H | -S | -b | -P | --non-interactive | --preserve-env | --preserve-env=* | --set-home | --stdin) shift ;;
    -u | -g | -C | -p | -h | -r | -t | -T | -U)
        [ $# -ge 2 ] || usage
        shift 2
        ;;
    -u?* | -g?* | -p?*) shift ;;
    -i | --login | -s | --shell)
        login_shell=1
        shift
        ;;
    -k | -K | --reset-timestamp | --remove-timestamp)
        shift
        [ $# -eq 0 ] && exit 0
        ;;
    -v | --validate) exit 0 ;;
    -V | --version)
        echo "Sudo version 1.9.9"
        exit 0
        ;;
    --)
        shift
        break
        ;;
    -*)
        echo "sudo: invalid option -- '${1#-}'" >&2
        usage
        ;;
    *) break ;;
    esac
done
while [ $# -gt 0 ]; do
    case "$1" in
    *=*)
        name=${1%%=*}
        case "$name" in
        "" | [0-9]* | *[!A-Za-z0-9_]*) break ;;
        esac
        export "$1"
        shift
        ;;
    *) break ;;
    esac
done
me=$(id -un)
export SUDO_USER="$me" SUDO_UID="$(id -u)" SUDO_GID="$(id -g)" SUDO_COMMAND="$*"
export USER=root LOGNAME=root HOME=/root AKS_SIM_SUDO=1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin
if [ $# -eq 0 ]; then
    [ "$login_shell" = 1 ] && exec /bin/sh
    usage
fi
if ! command -v "$1" >/dev/null 2>&1; then
    echo "sudo: $1: command not found" >&2
    exit 1
fi
exec "$@"
