#!/bin/sh
# aks-sim: `lsb_release` of an emulated Ubuntu node.
. /etc/os-release
short=0
out=
for a in "$@"; do
    case "$a" in
    -s | --short) short=1 ;;
    -a | --all) out="$out i d r c" ;;
    -i | --id) out="$out i" ;;
    -d | --description) out="$out d" ;;
    -r | --release) out="$out r" ;;
    -c | --codename) out="$out c" ;;
    -cs | -sc) short=1 out="$out c" ;;
    esac
done
[ -n "$out" ] || out=" i d r c"
[ "$short" = 0 ] && case "$out" in *" i d r c"*) echo "No LSB modules are available." >&2 ;; esac
for f in $out; do
    case "$f" in
    i) l="Distributor ID:" v=$(echo "$NAME" | cut -d' ' -f1) ;;
    d) l="Description:" v=$PRETTY_NAME ;;
    r) l="Release:" v=$VERSION_ID ;;
    c) l="Codename:" v=${VERSION_CODENAME:-n/a} ;;
    esac
    if [ "$short" = 1 ]; then echo "$v"; else printf '%s\t%s\n' "$l" "$v"; fi
done
