#!/bin/sh
# aks-sim: `reboot`, `shutdown`, `systemctl`, `poweroff` and `halt` of an emulated AKS node.
# A reboot writes a request the emulator picks up within a moment; the emulator then kills
# every process of the node (this one included) and drops its SSH sessions, as a real reboot
# would. Until then this blocks.
REQUESTS=/var/lib/aks-sim/requests
prog=${0##*/}
is_root() { [ -n "$AKS_SIM_SUDO" ] || [ "$(id -u)" = 0 ]; }

not_root() {
    echo "Failed to set wall message, ignoring: Interactive authentication required."
    echo "Failed to $1 system via logind: Interactive authentication required."
    echo "Failed to start $1.target: Interactive authentication required."
    echo "See system logs and 'systemctl status $1.target' for details."
    exit 1
} >&2

reboot_now() {
    is_root || not_root reboot
    printf 'reboot\t%s\n' "$1" >>"$REQUESTS" || {
        echo "Failed to reboot: cannot reach the emulator ($REQUESTS)" >&2
        exit 1
    }
    # The machine goes down: the emulator kills this process with the rest of the node.
    while :; do sleep 3600; done
}

power_off() {
    is_root || not_root poweroff
    echo "aks-sim: powering off a node is not emulated; use reboot" >&2
    exit 1
}

case "$prog" in
reboot)
    for a in "$@"; do
        case "$a" in
        --help)
            echo "reboot [OPTIONS...]"
            exit 0
            ;;
        -p | --poweroff) power_off ;;
        esac
    done
    reboot_now "reboot $*"
    ;;
poweroff | halt) power_off ;;
shutdown)
    mode=poweroff
    when=
    for a in "$@"; do
        case "$a" in
        -r | --reboot) mode=reboot ;;
        -h | -P | --poweroff | -H | --halt) mode=poweroff ;;
        -c) mode=cancel ;;
        -k) mode=wall ;;
        -*) ;;
        *) [ -z "$when" ] && when=$a ;;
        esac
    done
    case "$mode" in
    cancel)
        is_root || not_root shutdown
        printf 'reboot-cancel\t%s\n' "shutdown -c" >>"$REQUESTS"
        exit 0
        ;;
    wall) exit 0 ;;
    poweroff) power_off ;;
    esac
    case "${when:-+1}" in
    now | +0 | 0) reboot_now "shutdown $*" ;;
    +[0-9]*)
        is_root || not_root reboot
        mins=${when#+}
        at=$(($(date +%s) + mins * 60))
        printf 'reboot-at\t%s %s\n' "$at" "shutdown $*" >>"$REQUESTS"
        echo "Reboot scheduled for $(date -d "@$at" '+%a %Y-%m-%d %H:%M:%S UTC'), use 'shutdown -c' to cancel."
        exit 0
        ;;
    *)
        echo "Failed to parse time specification: $when" >&2
        exit 1
        ;;
    esac
    ;;
systemctl)
    verb=
    for a in "$@"; do
        case "$a" in
        -*) ;;
        *)
            verb=$a
            break
            ;;
        esac
    done
    case "$verb" in
    reboot | kexec | soft-reboot) reboot_now "systemctl $*" ;;
    poweroff | halt) power_off ;;
    is-system-running) echo running ;;
    show)
        # Only ActiveState is emulated: dnf-automatic-install.service (Azure Linux) is
        # `activating` while it holds the rpm lock (the `dpkg-lock` fault), others are active.
        unit=
        for a in "$@"; do
            case "$a" in
            *.service | *.timer) unit=$a ;;
            esac
        done
        state=active
        if [ "$unit" = dnf-automatic-install.service ]; then
            state=inactive
            until=$(cat /etc/aks-sim/dpkg-lock-until 2>/dev/null)
            if [ -n "$until" ] && [ "$(date +%s)" -lt "$until" ]; then state=activating; fi
        fi
        case " $* " in
        *" --value "*) echo "$state" ;;
        *) echo "ActiveState=$state" ;;
        esac
        ;;
    is-active) echo active ;;
    is-enabled) echo enabled ;;
    is-failed)
        echo active
        exit 1
        ;;
    *) exit 0 ;;
    esac
    ;;
*)
    echo "aks-sim: unknown power command $prog" >&2
    exit 1
    ;;
esac
