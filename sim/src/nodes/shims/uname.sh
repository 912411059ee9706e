#!/bin/sh
# aks-sim: `uname` of an emulated AKS node: the node's running kernel, not the host's.
release=$(cat /proc/sys/kernel/osrelease 2>/dev/null)
version=$(cat /proc/sys/kernel/version 2>/dev/null)
node=$(cat /etc/hostname 2>/dev/null)
s=0 n=0 r=0 v=0 m=0 p=0 i=0 o=0 all=0
bad() {
    echo "uname: $1" >&2
    echo "Try 'uname --help' for more information." >&2
    exit 1
}
for a in "$@"; do
    case "$a" in
    --all) all=1 ;;
    --kernel-name) s=1 ;;
    --nodename) n=1 ;;
    --kernel-release) r=1 ;;
    --kernel-version) v=1 ;;
    --machine) m=1 ;;
    --processor) p=1 ;;
    --hardware-platform) i=1 ;;
    --operating-system) o=1 ;;
    --help)
        echo "Usage: uname [OPTION]..."
        exit 0
        ;;
    --version)
        echo "uname (GNU coreutils) 8.32"
        exit 0
        ;;
    --*) bad "unrecognized option '$a'" ;;
    -?*)
        f=${a#-}
        while [ -n "$f" ]; do
            c=${f%"${f#?}"}
            f=${f#?}
            case "$c" in
            a) all=1 ;;
            s) s=1 ;;
            n) n=1 ;;
            r) r=1 ;;
            v) v=1 ;;
            m) m=1 ;;
            p) p=1 ;;
            i) i=1 ;;
            o) o=1 ;;
            *) bad "invalid option -- '$c'" ;;
            esac
        done
        ;;
    *) bad "extra operand '$a'" ;;
    esac
done
if [ "$all" = 1 ]; then
    s=1 n=1 r=1 v=1 m=1 p=1 i=1 o=1
fi
if [ $((s + n + r + v + m + p + i + o)) -eq 0 ]; then s=1; fi
out=
add() { if [ -z "$out" ]; then out=$1; else out="$out $1"; fi; }
[ "$s" = 1 ] && add Linux
[ "$n" = 1 ] && add "$node"
[ "$r" = 1 ] && add "$release"
[ "$v" = 1 ] && add "$version"
[ "$m" = 1 ] && add x86_64
[ "$p" = 1 ] && add x86_64
[ "$i" = 1 ] && add x86_64
[ "$o" = 1 ] && add GNU/Linux
echo "$out"
