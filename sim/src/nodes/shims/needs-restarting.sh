#!/bin/sh
# aks-sim: `needs-restarting` (dnf-utils) of an emulated Azure Linux node. Only `-r`
# (reboot hint) is emulated: a reboot is required when a kernel newer than the running one
# is installed in /boot, or when a package that needs one (glibc, systemd: tdnf lists them in
# /run/aks-sim-restart) was updated since boot. Exit 1 = reboot required, as dnf's plugin.
reboothint=0
for a in "$@"; do
    case "$a" in
    -r | --reboothint) reboothint=1 ;;
    -h | --help)
        echo "usage: needs-restarting [-r]"
        exit 0
        ;;
    esac
done
if [ "$reboothint" != 1 ]; then
    echo "aks-sim: only 'needs-restarting -r' is emulated on this node" >&2
    exit 2
fi
running=$(cat /proc/sys/kernel/osrelease 2>/dev/null)
newest=$(ls /boot 2>/dev/null | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)
pkgs=
if [ -n "$newest" ] && [ "$newest" != "$running" ]; then pkgs="kernel"; fi
if [ -r /run/aks-sim-restart ]; then
    pkgs="$pkgs $(grep -v '^kernel$' /run/aks-sim-restart | tr '\n' ' ')"
fi
set -- $pkgs
if [ $# -eq 0 ]; then
    echo "No core libraries or services have been updated since boot-up."
    echo "Reboot should not be necessary."
    exit 0
fi
echo "Core libraries or services have been updated since boot-up:"
for p in "$@"; do echo "  * $p"; done
echo
echo "Reboot is required to fully utilize these updates."
echo "More information: https://access.redhat.com/solutions/27943"
exit 1
