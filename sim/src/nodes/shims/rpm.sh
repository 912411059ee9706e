#!/bin/sh
# aks-sim: `rpm` of an emulated Azure Linux node, over the package state the tdnf shim keeps
# (/var/lib/aks-sim/installed: name version). Only queries of installed packages are
# emulated: `rpm -q [--qf FORMAT] NAME...` where FORMAT uses %{NAME}, %{VERSION}-%{RELEASE}
# (the version column as a whole), %{ARCH} and \n; without --qf, NAME-VERSION-RELEASE.ARCH.
INSTALLED=/var/lib/aks-sim/installed
query=0
qf=
names=
while [ $# -gt 0 ]; do
    case "$1" in
    -q | --query) query=1 ;;
    --qf | --queryformat)
        shift
        qf=$1
        ;;
    --qf=* | --queryformat=*) qf=${1#*=} ;;
    -*)
        echo "rpm: aks-sim emulates only 'rpm -q [--qf FORMAT] NAME...' (not $1)" >&2
        exit 1
        ;;
    *) names="$names $1" ;;
    esac
    shift
done
if [ "$query" != 1 ] || [ -z "$names" ]; then
    echo "rpm: aks-sim emulates only 'rpm -q [--qf FORMAT] NAME...'" >&2
    exit 1
fi
rc=0
for n in $names; do
    versions=$(awk -v n="$n" '$1 == n && !seen[$2]++ { print $2 }' "$INSTALLED" 2>/dev/null)
    if [ -z "$versions" ]; then
        echo "package $n is not installed"
        rc=1
        continue
    fi
    for v in $versions; do
        if [ -n "$qf" ]; then
            printf '%s' "$qf" | sed -e "s/%{NAME}/$n/g" -e "s/%{VERSION}-%{RELEASE}/$v/g" -e "s/%{ARCH}/x86_64/g" -e 's/\\n/\n/g'
        else
            echo "$n-$v.x86_64"
        fi
    done
done
exit $rc
