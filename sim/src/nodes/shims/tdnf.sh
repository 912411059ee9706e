#!/bin/sh
# aks-sim: `tdnf` of an emulated Azure Linux 3.0 node, run by dash inside the node's chroot.
#
# The same package state as the apt shim (see apt.sh), owned by the login user:
#   /var/lib/aks-sim/pending    one pending update a line: name from to repo kernel reboot
#                               (kernel: the kernel release the package installs, or -;
#                               reboot: 1 when installing it needs a reboot: glibc, systemd)
#   /var/lib/aks-sim/installed  known installed packages: name version
#   /var/lib/aks-sim/requests   what the emulator picks up: kind<TAB>detail, one a line
#   /run/aks-sim-restart        packages updated since boot that need a reboot (read by
#                               needs-restarting; /run is emptied by a reboot)
# Written by the emulator (read-only here):
#   /etc/aks-sim/timing           APT_SECONDS= (install), APT_UPDATE_SECONDS= (--refresh)
#   /etc/aks-sim/dpkg-lock-until  epoch seconds until which dnf-automatic-install holds the
#                                 rpm transaction lock (the `dpkg-lock` fault)
#   /etc/aks-sim/apt-failure      present: the repository answers 503 (the `apt-failure` fault)
# Output follows tdnf 3.5 (Azure Linux 3.0). `check-update` exits 0 whether or not updates
# are pending (100 only with dnf_check_update_compat, which AKS images do not set).

STATE=/var/lib/aks-sim
PENDING=$STATE/pending
INSTALLED=$STATE/installed
REQUESTS=$STATE/requests
RESTART=/run/aks-sim-restart
CONF=/etc/aks-sim
REPO_URL=https://packages.microsoft.com/azurelinux/3.0/prod/base/x86_64
APT_SECONDS=0
APT_UPDATE_SECONDS=0
if [ -r "$CONF/timing" ]; then . "$CONF/timing"; fi

cmd=
yes=0
quiet=0
json=0
refresh=0
pkgs=

is_root() { [ -n "$AKS_SIM_SUDO" ] || [ "$(id -u)" = 0 ]; }
request() { printf '%s\t%s\n' "$1" "$2" >>"$REQUESTS" 2>/dev/null; }
say() { [ "$quiet" = 1 ] || echo "$@"; }

while [ $# -gt 0 ]; do
    a=$1
    shift
    case "$a" in
    -y | --assumeyes) yes=1 ;;
    --assumeno) yes=0 ;;
    -q | --quiet) quiet=1 ;;
    -j | --json) json=1 ;;
    --refresh) refresh=1 ;;
    --nogpgcheck | --noplugins | --cacheonly | -C | --best | --security | --skip-broken | --disablerepo=* | --enablerepo=* | --releasever=* | --setopt=*) ;;
    --disablerepo | --enablerepo | --releasever | --setopt | -c | --config) shift ;;
    --version)
        echo "tdnf: 3.5.8"
        exit 0
        ;;
    -*)
        echo "tdnf: unrecognized option '$a'" >&2
        exit 1
        ;;
    *)
        if [ -z "$cmd" ]; then cmd=$a; else pkgs="$pkgs $a"; fi
        ;;
    esac
done

lock_held() {
    until=$(cat "$CONF/dpkg-lock-until" 2>/dev/null) || return 1
    [ -n "$until" ] && [ "$(date +%s)" -lt "$until" ]
}

do_refresh() {
    if [ "$refresh" = 1 ]; then
        sleep "$APT_UPDATE_SECONDS"
        for r in "Azure Linux Official Base 3.0 x86_64" "Azure Linux Official Microsoft 3.0 x86_64"; do
            say "Refreshing metadata for: '$r'"
        done
        request apt-update "tdnf --refresh"
    fi
}

# Pending updates, one a line: name to repo kernel reboot (sorted by name).
pending() { awk 'NF >= 6 { print $1, $3, $4, $5, $6 }' "$PENDING" | sort; }

do_check_update() {
    # tdnf refuses non-root users for every command (microsoft/azurelinux#1386).
    if ! is_root; then
        echo "Error(1601) : Operation not permitted. You have to be root." >&2
        exit 1
    fi
    do_refresh
    if [ "$json" = 1 ]; then
        pending | awk 'BEGIN { printf "[" }
            { printf "%s{\"Name\":\"%s\",\"Arch\":\"x86_64\",\"Evr\":\"%s\",\"Repo\":\"%s\"}", (NR > 1 ? "," : ""), $1, $2, $3 }
            END { print "]" }'
    else
        pending | awk '{ printf "%-40s %-30s %s\n", $1 ".x86_64", $2, $3 }'
    fi
    exit 0
}

do_update() {
    if ! is_root; then
        echo "Error(1601) : Operation not permitted. You have to be root." >&2
        exit 1
    fi
    if lock_held; then
        # dnf-automatic-install is in its transaction: rpm's lock is taken.
        echo "error: can't create transaction lock on /var/lib/rpm/.rpm.lock (Resource temporarily unavailable)" >&2
        echo "Error(1525) : rpm transaction failed" >&2
        request apt-failed "tdnf $cmd: rpm transaction lock held by dnf-automatic"
        exit 1
    fi
    do_refresh
    list=$(pending)
    if [ -n "$pkgs" ]; then
        list=$(printf '%s\n' "$list" | awk -v want="$pkgs" 'BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) sel[w[i]] = 1 } $1 in sel')
    fi
    if [ -z "$list" ]; then
        say "Nothing to do."
        exit 0
    fi
    say ""
    say "Upgrading:"
    [ "$quiet" = 1 ] || printf '%s\n' "$list" | awk '{ printf "%-30s %-8s %-24s %-28s %s\n", $1, "x86_64", $2, $3, "1.02M" }'
    n=$(printf '%s\n' "$list" | wc -l)
    say ""
    say "Total installed size: $((n * 3)).40M"
    say "Total download size: $((n)).12M"
    if [ "$yes" != 1 ]; then
        printf 'Is this ok [y/N]: '
        answer=
        read -r answer || true
        case "$answer" in
        [Yy] | [Yy][Ee][Ss]) ;;
        *)
            echo "Operation aborted."
            exit 1
            ;;
        esac
    fi
    if [ -e "$CONF/apt-failure" ]; then
        first=$(printf '%s\n' "$list" | awk 'NR == 1 { print $1 "-" $2 }')
        sleep "$APT_SECONDS"
        echo "curl#22: The requested URL returned error: 503" >&2
        echo "Error: Failed to download $REPO_URL/Packages/${first%"${first#?}"}/$first.x86_64.rpm" >&2
        echo "Error(1622) : Unable to download packages" >&2
        request apt-failed "tdnf $cmd: 503 Service Unavailable fetching $first"
        exit 1
    fi
    sleep "$APT_SECONDS"
    printf '%s\n' "$list" | while read -r name to repo kernel reboot; do
        say "$name-$to.x86_64.rpm $((${#name} * 100003)) 100%"
    done
    say "Testing transaction"
    say "Running transaction"
    printf '%s\n' "$list" | while read -r name to repo kernel reboot; do
        say "Installing/Updating: $name-$to.x86_64"
    done
    printf '%s\n' "$list" | while read -r name to repo kernel reboot; do
        say "Removing: $name-$(awk -v n="$name" '$1 == n { print $2; exit }' "$PENDING").x86_64"
    done
    # Record what was installed.
    ups=" $(printf '%s\n' "$list" | awk '{ print $1 }' | tr '\n' ' ')"
    printf '%s\n' "$list" | while read -r name to repo kernel reboot; do
        if [ "$kernel" != "-" ]; then
            echo "aks-sim kernel image $kernel" >"/boot/vmlinuz-$kernel"
        fi
        if [ "$reboot" = 1 ]; then
            grep -qx "$name" "$RESTART" 2>/dev/null || echo "$name" >>"$RESTART"
        fi
    done
    awk -v ups="$ups" 'FILENAME == ARGV[1] { if (index(ups, " " $1 " ")) v[$1] = $3; next }
        { if ($1 in v) { print $1, v[$1]; delete v[$1] } else print }
        END { for (k in v) print k, v[k] }' "$PENDING" "$INSTALLED" >"$INSTALLED.$$" && mv -f "$INSTALLED.$$" "$INSTALLED"
    awk -v ups="$ups" 'index(ups, " " $1 " ") == 0' "$PENDING" >"$PENDING.$$" && mv -f "$PENDING.$$" "$PENDING"
    say ""
    say "Complete!"
    request apt-upgrade "tdnf $cmd: $(printf '%s\n' "$list" | awk '{ print $1 }' | tr '\n' ' ' | sed 's/ $//')"
    exit 0
}

case "$cmd" in
check-update) do_check_update ;;
update | upgrade | distro-sync) do_update ;;
makecache)
    refresh=1
    do_refresh
    say "Metadata cache created."
    exit 0
    ;;
"")
    echo "tdnf: no command given (aks-sim's stand-in emulates check-update, update, upgrade, makecache)" >&2
    exit 1
    ;;
*)
    echo "Error(1011) : aks-sim: 'tdnf $cmd' is not emulated on this node" >&2
    exit 1
    ;;
esac
