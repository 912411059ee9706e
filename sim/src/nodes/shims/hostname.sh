#!/bin/sh
# aks-sim: `hostname` of an emulated AKS node (the node's name, not the host's).
case "$1" in
-I | --all-ip-addresses) cat /etc/aks-sim/ip ;;
-i | --ip-address) cat /etc/aks-sim/ip ;;
"" | -s | --short | -f | --fqdn | --long) cat /etc/hostname ;;
*)
    echo "hostname: you must be root to change the host name" >&2
    exit 1
    ;;
esac
