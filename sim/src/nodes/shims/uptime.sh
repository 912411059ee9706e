#!/bin/sh
# aks-sim: `uptime` of an emulated AKS node, from the node's boot time (btime in /proc/stat,
# which the emulator rewrites at every boot).
btime=$(awk '$1 == "btime" { print $2 }' /proc/stat 2>/dev/null)
[ -n "$btime" ] || btime=$(date +%s)
now=$(date +%s)
up=$((now - btime))
[ "$up" -lt 0 ] && up=0
days=$((up / 86400))
hours=$((up % 86400 / 3600))
mins=$((up % 3600 / 60))
plural() { if [ "$1" -eq 1 ]; then echo "$1 $2"; else echo "$1 ${2}s"; fi; }
case "$1" in
-s | --since) date -d "@$btime" '+%Y-%m-%d %H:%M:%S' ;;
-p | --pretty)
    # procps-ng: years, weeks, days, hours, minutes.
    out=
    years=$((days / 365))
    weeks=$((days % 365 / 7))
    wdays=$((days % 365 % 7))
    [ "$years" -gt 0 ] && out="$(plural "$years" year)"
    [ "$weeks" -gt 0 ] && out="${out:+$out, }$(plural "$weeks" week)"
    [ "$wdays" -gt 0 ] && out="${out:+$out, }$(plural "$wdays" day)"
    [ "$hours" -gt 0 ] && out="${out:+$out, }$(plural "$hours" hour)"
    [ "$mins" -gt 0 ] || [ -z "$out" ] && out="${out:+$out, }$(plural "$mins" minute)"
    echo "up $out"
    ;;
"")
    if [ "$days" -gt 0 ]; then d="$(plural "$days" day), "; else d=; fi
    if [ "$hours" -gt 0 ]; then t=$(printf '%2d:%02d' "$hours" "$mins"); else t="$mins min"; fi
    echo " $(date +%H:%M:%S) up $d$t,  1 user,  load average: 0.08, 0.03, 0.01"
    ;;
*)
    echo "uptime: invalid option -- '${1#-}'" >&2
    exit 1
    ;;
esac
