#!/bin/sh
# aks-sim: `apt-get` and `apt` of an emulated AKS node, run by dash inside the node's chroot.
#
# The node's package state, owned by the login user:
#   /var/lib/aks-sim/pending    one pending update a line: name from to pocket kernel reboot
#                               (kernel: the new kernel ABI the package pulls in, or -;
#                               reboot: 1 when installing it needs a reboot)
#   /var/lib/aks-sim/installed  known installed packages: name version
#   /var/lib/aks-sim/requests   what the emulator picks up: kind<TAB>detail, one a line
# Written by the emulator (read-only here):
#   /etc/aks-sim/timing           APT_SECONDS=, APT_UPDATE_SECONDS=, APT_DOWNLOAD_SECONDS=
#   /var/lib/aks-sim/downloaded   present: the pending packages are in the cache already
#                                 (`apt-get -d`), so the upgrade does not download again
#   /etc/aks-sim/dpkg-lock-until  epoch seconds until which unattended-upgrades holds the dpkg lock
#   /etc/aks-sim/apt-failure      present: the mirror answers 503
# The output follows apt 2.4 (Ubuntu 22.04): stdout not a terminal means quiet level 1, as in
# apt's InitOutput (progress lines without "Done").

STATE=/var/lib/aks-sim
PENDING=$STATE/pending
INSTALLED=$STATE/installed
REQUESTS=$STATE/requests
CONF=/etc/aks-sim
MIRROR=http://azure.archive.ubuntu.com/ubuntu
LOCK_MSG="Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2345 (unattended-upgr)"
APT_SECONDS=0
APT_UPDATE_SECONDS=0
APT_DOWNLOAD_SECONDS=0
if [ -r "$CONF/timing" ]; then . "$CONF/timing"; fi

prog=${0##*/}
cmd=
pkgs=
yes=0
simulate=0
qcount=0
qset=0
with_new=0
[ "$prog" = apt ] && with_new=1
only_upgrade=0
lock_timeout=0
upgradable=0
download_only=0

is_root() { [ -n "$AKS_SIM_SUDO" ] || [ "$(id -u)" = 0 ]; }
request() { printf '%s\t%s\n' "$1" "$2" >>"$REQUESTS" 2>/dev/null; }
is_true() { case "$1" in [Tt][Rr][Uu][Ee] | [Yy][Ee][Ss] | 1 | [Oo][Nn] | [Ww][Ii][Tt][Hh]) return 0 ;; esac; return 1; }

set_option() {
    case "$1" in
    *=*) ;;
    *)
        echo "E: Option '$1': Configuration item specification must have an =<val>." >&2
        exit 100
        ;;
    esac
    key=$(printf '%s' "${1%%=*}" | tr 'A-Z' 'a-z')
    val=${1#*=}
    case "$key" in
    apt::get::upgrade-allow-new) if is_true "$val"; then with_new=1; else with_new=0; fi ;;
    dpkg::lock::timeout)
        case "$val" in
        -[0-9]* | [0-9]*) lock_timeout=$((val + 0)) ;;
        esac
        ;;
    apt::get::assume-yes) is_true "$val" && yes=1 ;;
    apt::get::simulate) is_true "$val" && simulate=1 ;;
    quiet)
        qset=1
        qcount=$((val + 0))
        ;;
    apt::get::only-upgrade) is_true "$val" && only_upgrade=1 ;;
    *) ;; # Dpkg::Options::=--force-confold and the rest: accepted, nothing to emulate
    esac
}

bad_option() {
    echo "E: Command line option '$1' [from $2] is not understood in combination with the other options." >&2
    exit 100
}

while [ $# -gt 0 ]; do
    a=$1
    shift
    case "$a" in
    --)
        for p in "$@"; do pkgs="$pkgs $p"; done
        break
        ;;
    -o | --option)
        [ $# -gt 0 ] || bad_option o "$a"
        set_option "$1"
        shift
        ;;
    -o*) set_option "${a#-o}" ;;
    --option=*) set_option "${a#--option=}" ;;
    -y | --yes | --assume-yes) yes=1 ;;
    -s | --simulate | --just-print | --dry-run | --recon | --no-act) simulate=1 ;;
    -q | --quiet | --silent)
        qset=1
        qcount=$((qcount + 1))
        ;;
    --quiet=*)
        qset=1
        qcount=$((${a#--quiet=} + 0))
        ;;
    --upgradable | --upgradeable) upgradable=1 ;;
    --with-new-pkgs) with_new=1 ;;
    --without-new-pkgs) with_new=0 ;;
    --only-upgrade) only_upgrade=1 ;;
    -d | --download-only) download_only=1 ;;
    -t | --target-release | --default-release) shift ;;
    --no-install-recommends | --install-recommends | --no-install-suggests | --fix-missing | --fix-broken | \
        --allow-downgrades | --allow-change-held-packages | --allow-remove-essential | --ignore-missing | \
        --no-upgrade | --reinstall | --auto-remove | --autoremove | --purge | --verbose-versions | \
        --no-download | --force-yes | --allow-unauthenticated | --show-upgraded | --no-list-cleanup | \
        --target-release=* | --default-release=* | --installed | --all-versions | \
        --show-progress | --no-show-upgraded | --color | --no-color | -f | -m | -u | -V | -b) ;;
    --*) bad_option "${a#--}" "$a" ;;
    -?*)
        flags=${a#-}
        while [ -n "$flags" ]; do
            c=${flags%"${flags#?}"}
            flags=${flags#?}
            case "$c" in
            y) yes=1 ;;
            s) simulate=1 ;;
            d) download_only=1 ;;
            q)
                qset=1
                qcount=$((qcount + 1))
                ;;
            f | m | u | V | b) ;;
            *) bad_option "$c" "$a" ;;
            esac
        done
        ;;
    *)
        if [ -z "$cmd" ]; then cmd=$a; else pkgs="$pkgs $a"; fi
        ;;
    esac
done

if [ "$qset" = 1 ]; then
    quiet=$qcount
elif [ -t 1 ]; then
    quiet=0
else
    quiet=1
fi
# apt-get(8): quiet level 2 implies -y.
[ "$quiet" -ge 2 ] && yes=1

if [ "$prog" = apt ] && ! [ -t 1 ]; then
    printf '\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n\n' >&2
fi

# "Reading package lists" and the like, as apt's OpTextProgress prints them.
progress() {
    if [ "$quiet" -ge 2 ]; then return 0; fi
    if [ "$quiet" -ge 1 ]; then echo "$1..."; else echo "$1... Done"; fi
}

# A package list under its header, wrapped at 80 columns as apt's ShowList does.
show_list() {
    [ -n "$2" ] || return 0
    echo "$1"
    printf '%s\n' $2 | sort | awk -v W=80 '
        { if (l != "" && length(l) + length($0) + 1 >= W) { print l; l = "" }
          l = (l == "") ? "  " $0 : l " " $0 }
        END { if (l != "") print l }'
}

# apt's origin text for a pocket: security uploads are in -updates too.
origins() {
    case "$1" in
    *-security) echo "Ubuntu:22.04/${1%-security}-updates, Ubuntu:22.04/$1" ;;
    *) echo "Ubuntu:22.04/$1" ;;
    esac
}

list_pockets() {
    case "$1" in
    *-security) echo "${1%-security}-updates,$1" ;;
    *) echo "$1" ;;
    esac
}

lock_held() {
    until=$(cat "$CONF/dpkg-lock-until" 2>/dev/null) || return 1
    [ -n "$until" ] && [ "$(date +%s)" -lt "$until" ]
}

# Take the dpkg frontend lock as a modifying apt-get does, before anything else.
take_lock() {
    if ! is_root; then
        echo "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)" >&2
        echo "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?" >&2
        exit 100
    fi
    lock_held || return 0
    waited=0
    while [ "$lock_timeout" -lt 0 ] || [ "$waited" -lt "$lock_timeout" ]; do
        sleep 1
        waited=$((waited + 1))
        lock_held || return 0
        echo "Waiting for cache lock: $LOCK_MSG... ${waited}s"
    done
    echo "E: $LOCK_MSG" >&2
    echo "N: Be aware that removing the lock file is not a solution and may break your system." >&2
    echo "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?" >&2
    request apt-failed "$prog $cmd: dpkg frontend lock held by unattended-upgr"
    exit 100
}

# What an upgrade/dist-upgrade/install would do, one line each:
#   K name                                  kept back
#   N name version pocket                   new package (a kernel's image and modules)
#   U name from to pocket kernel reboot     upgraded
#   A name version                          already the newest version (install)
#   S name                                  skipped: not installed, only upgrades (install)
#   E name                                  unable to locate (install)
#   C count                                 not upgraded
make_plan() {
    kernels=" "
    for f in /boot/vmlinuz-*; do
        [ -e "$f" ] && kernels="$kernels${f#/boot/vmlinuz-} "
    done
    awk -v mode="$1" -v withnew="$with_new" -v want="$pkgs" -v only="$only_upgrade" -v kernels="$kernels" '
        function kver(k, to,   base, n, p) {
            base = k; sub(/-[a-z][a-z0-9-]*$/, "", base)
            n = split(to, p, "."); return base "." p[n]
        }
        FILENAME == ARGV[1] { if (NF >= 2) inst[$1] = $2; next }
        NF >= 6 { n++; name[n] = $1; line[n] = $0; to[n] = $3; pocket[n] = $4; kern[n] = $5; idx[$1] = n }
        END {
            if (mode == "install") {
                m = split(want, w, " ")
                for (i = 1; i <= m; i++) {
                    p = w[i]; sub(/[=\/].*$/, "", p)
                    if (p in seen) continue
                    seen[p] = 1
                    if (p in idx) sel[idx[p]] = 1
                    else if (p in inst) print "A", p, inst[p]
                    else if (only == "1") print "S", p
                    else print "E", p
                }
            } else {
                for (i = 1; i <= n; i++) {
                    if (mode == "upgrade" && kern[i] != "-" && withnew != "1") print "K", name[i]
                    else sel[i] = 1
                }
            }
            c = 0
            for (i = 1; i <= n; i++) {
                if (!(i in sel)) { c++; continue }
                if (kern[i] != "-" && index(kernels, " " kern[i] " ") == 0) {
                    v = kver(kern[i], to[i])
                    print "N", "linux-modules-" kern[i], v, pocket[i]
                    print "N", "linux-image-" kern[i], v, pocket[i]
                }
            }
            for (i = 1; i <= n; i++) if (i in sel) print "U", line[i]
            print "C", c
        }' "$INSTALLED" "$PENDING"
}

names_of() { printf '%s\n' "$plan" | awk -v t="$1" '$1 == t { print $2 }'; }
count_of() { printf '%s\n' "$plan" | awk -v t="$1" '$1 == t { n++ } END { print n + 0 }'; }

# Download lines: Get:N / Need to get / Fetched, sizes made up but stable.
archives() { # what: need | get | fetched
    printf '%s\n' "$plan" | awk -v what="$1" -v mirror="$MIRROR" '
        function comma(n,   s, r) {
            s = sprintf("%d", n); r = ""
            while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
            return s r
        }
        function size(kb) { return kb >= 10000 ? sprintf("%.1f MB", kb / 1000) : comma(kb) " kB" }
        $1 == "N" || $1 == "U" {
            if ($1 == "N") { name = $2; ver = $3; pocket = $4 } else { name = $2; ver = $4; pocket = $5 }
            if (name ~ /^linux-image-/) kb = 11532
            else if (name ~ /^linux-modules-/) kb = 23874
            else kb = (length(name) * 317 + length(ver) * 53) % 1800 + 60
            total += kb; i++
            sub(/-security$/, "-updates", pocket)
            if (what == "get") printf "Get:%d %s %s/main amd64 %s amd64 %s [%s]\n", i, mirror, pocket, name, ver, size(kb)
        }
        END {
            if (what == "need") printf "Need to get %s of archives.\n", size(total)
            if (what == "fetched") printf "Fetched %s in 0s (%s/s)\n", size(total), size(total * 7)
        }'
}

deb_name() { echo "${1}_$(echo "$2" | sed 's/:/%3a/g')_amd64.deb"; }
dpkg_name() { case "$1" in lib*) echo "$1:amd64" ;; *) echo "$1" ;; esac; }

mark_reboot() {
    echo '*** System restart required ***' >/var/run/reboot-required
    grep -qx "$1" /var/run/reboot-required.pkgs 2>/dev/null || echo "$1" >>/var/run/reboot-required.pkgs
}

half() { awk -v s="$1" 'BEGIN { printf "%.3f", s / 2 }'; }

# Record what was installed: pending list, installed versions, kernels, reboot marker.
apply_plan() {
    planfile=$STATE/.plan.$$
    printf '%s\n' "$plan" >"$planfile"
    ups=" $(names_of U | tr '\n' ' ')"
    awk -v ups="$ups" 'index(ups, " " $1 " ") == 0' "$PENDING" >"$PENDING.$$" && mv -f "$PENDING.$$" "$PENDING"
    awk 'FILENAME == ARGV[1] { if ($1 == "U") v[$2] = $4; else if ($1 == "N") v[$2] = $3; next }
        { if ($1 in v) { print $1, v[$1]; delete v[$1] } else print }
        END { for (k in v) print k, v[k] }' "$planfile" "$INSTALLED" >"$INSTALLED.$$" &&
        mv -f "$INSTALLED.$$" "$INSTALLED"
    while read -r t n f to p k r; do
        case "$t" in
        N)
            case "$n" in
            linux-image-*) echo "aks-sim kernel image ${n#linux-image-}" >"/boot/vmlinuz-${n#linux-image-}" ;;
            esac
            ;;
        U)
            [ "$k" != "-" ] && mark_reboot "linux-image-$k"
            [ "$r" = 1 ] && mark_reboot "$n"
            ;;
        esac
    done <"$planfile"
    rm -f "$planfile"
}

# apt-get upgrade | dist-upgrade | install
do_change() {
    mode=$1
    if [ "$simulate" = 1 ]; then
        if ! is_root; then
            echo "NOTE: This is only a simulation!"
            echo "      $prog needs root privileges for real execution."
            echo "      Keep also in mind that locking is deactivated,"
            echo "      so don't depend on the relevance to the real current situation!"
        fi
    else
        take_lock
    fi
    progress "Reading package lists"
    progress "Building dependency tree"
    progress "Reading state information"
    [ "$mode" = install ] || progress "Calculating upgrade"
    plan=$(make_plan "$mode")
    if printf '%s\n' "$plan" | grep -q '^E '; then
        printf '%s\n' "$plan" | awk '$1 == "E" { print "E: Unable to locate package " $2 }' >&2
        exit 100
    fi
    new=$(names_of N)
    ups=$(names_of U)
    nnew=$(count_of N)
    nup=$(count_of U)
    notup=$(printf '%s\n' "$plan" | awk '$1 == "C" { print $2 }')
    if [ "$quiet" -lt 2 ]; then
        printf '%s\n' "$plan" | awk '
            $1 == "A" { print $2 " is already the newest version (" $3 ")." }
            $1 == "S" { print "Skipping " $2 ", it is not installed and only upgrades are requested." }'
        [ "$mode" = install ] && show_list "The following additional packages will be installed:" "$new"
        show_list "The following NEW packages will be installed:" "$new"
        show_list "The following packages have been kept back:" "$(names_of K)"
        show_list "The following packages will be upgraded:" "$ups"
        echo "$nup upgraded, $nnew newly installed, 0 to remove and $notup not upgraded."
    fi
    [ "$nup" -eq 0 ] && [ "$nnew" -eq 0 ] && exit 0

    if [ "$simulate" = 1 ]; then
        printf '%s\n' "$plan" | while read -r t n a b c d e; do
            case "$t" in
            N) echo "Inst $n ($a $(origins "$b") [amd64])" ;;
            U) echo "Inst $n [$a] ($b $(origins "$c") [amd64])" ;;
            esac
        done
        printf '%s\n' "$plan" | while read -r t n a b c d e; do
            case "$t" in
            N) echo "Conf $n ($a $(origins "$b") [amd64])" ;;
            U) echo "Conf $n ($b $(origins "$c") [amd64])" ;;
            esac
        done
        exit 0
    fi

    if [ "$quiet" -lt 2 ]; then
        archives need
        if [ "$nnew" -gt 0 ]; then
            echo "After this operation, 139 MB of additional disk space will be used."
        else
            echo "After this operation, 12.3 kB of additional disk space will be used."
        fi
    fi
    if [ "$yes" != 1 ]; then
        printf 'Do you want to continue? [Y/n] '
        if read -r answer; then
            case "$answer" in
            "" | [Yy] | [Yy][Ee][Ss]) ;;
            *)
                echo "Abort."
                exit 1
                ;;
            esac
        else
            echo "Abort."
            exit 1
        fi
    fi

    if [ -e "$CONF/apt-failure" ]; then
        first=$(printf '%s\n' "$plan" | awk '$1 == "U" { print $2, $4; exit }')
        [ -n "$first" ] || first=$(printf '%s\n' "$plan" | awk '$1 == "N" { print $2, $3; exit }')
        fname=${first%% *}
        fver=${first#* }
        case "$fname" in
        lib?*) pool=$(echo "$fname" | cut -c1-4) ;;
        *) pool=$(echo "$fname" | cut -c1) ;;
        esac
        sleep "$(half "$APT_SECONDS")"
        echo "Err:1 $MIRROR jammy-updates/main amd64 $fname amd64 $fver"
        echo "  503  Service Unavailable [IP: 52.252.163.49 80]"
        echo "E: Failed to fetch $MIRROR/pool/main/$pool/$fname/$(deb_name "$fname" "$fver")  503  Service Unavailable [IP: 52.252.163.49 80]" >&2
        echo "E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?" >&2
        request apt-failed "$prog $mode: 503 Service Unavailable fetching $fname"
        exit 100
    fi

    [ "$quiet" -lt 2 ] && archives get
    # Downloading: skipped when an earlier `apt-get -d` left the packages in the cache.
    [ -e "$STATE/downloaded" ] || sleep "$APT_DOWNLOAD_SECONDS"
    if [ "$download_only" = 1 ]; then
        : >"$STATE/downloaded"
        [ "$quiet" -lt 2 ] && archives fetched
        echo "Download complete and in download only mode"
        exit 0
    fi
    sleep "$(half "$APT_SECONDS")"
    [ "$quiet" -lt 2 ] && archives fetched
    if [ "${DEBIAN_FRONTEND:-}" != noninteractive ] && ! [ -t 0 ]; then
        {
            echo "debconf: unable to initialize frontend: Dialog"
            echo "debconf: (Dialog frontend will not work on a dumb terminal, an emacs shell buffer, or without a controlling terminal.)"
            echo "debconf: falling back to frontend: Readline"
            echo "debconf: unable to initialize frontend: Readline"
            echo "debconf: (This frontend requires a controlling tty.)"
            echo "debconf: falling back to frontend: Teletype"
            echo "dpkg-preconfigure: unable to re-open stdin: "
        } >&2
    fi
    echo "(Reading database ... 64178 files and directories currently installed.)"
    printf '%s\n' "$plan" | while read -r t n a b c d e; do
        case "$t" in
        N)
            echo "Selecting previously unselected package $n."
            echo "Preparing to unpack .../$(deb_name "$n" "$a") ..."
            echo "Unpacking $n ($a) ..."
            ;;
        U)
            echo "Preparing to unpack .../$(deb_name "$n" "$b") ..."
            echo "Unpacking $(dpkg_name "$n") ($b) over ($a) ..."
            ;;
        esac
    done
    sleep "$(half "$APT_SECONDS")"
    printf '%s\n' "$plan" | while read -r t n a b c d e; do
        case "$t" in
        N)
            echo "Setting up $n ($a) ..."
            case "$n" in
            linux-image-*)
                echo "I: /boot/vmlinuz is now a symlink to vmlinuz-${n#linux-image-}"
                echo "I: /boot/initrd.img is now a symlink to initrd.img-${n#linux-image-}"
                ;;
            esac
            ;;
        U) echo "Setting up $(dpkg_name "$n") ($b) ..." ;;
        esac
    done
    echo "Processing triggers for libc-bin (2.35-0ubuntu3.8) ..."
    echo "Processing triggers for man-db (2.10.2-1) ..."
    printf '%s\n' "$plan" | while read -r t n a b c d e; do
        case "$t$n" in
        Nlinux-image-*)
            k=${n#linux-image-}
            echo "Processing triggers for $n ($a) ..."
            echo "/etc/kernel/postinst.d/initramfs-tools:"
            echo "update-initramfs: Generating /boot/initrd.img-$k"
            echo "/etc/kernel/postinst.d/zz-update-grub:"
            echo "Sourcing file \`/etc/default/grub'"
            echo "Sourcing file \`/etc/default/grub.d/50-cloudimg-settings.cfg'"
            echo "Generating grub configuration file ..."
            echo "Found linux image: /boot/vmlinuz-$k"
            echo "Found initrd image: /boot/initrd.img-$k"
            echo "done"
            ;;
        esac
    done
    apply_plan
    rm -f "$STATE/downloaded"
    request apt-upgrade "$prog $mode: $(printf '%s\n' $new $ups | tr '\n' ' ' | sed 's/ $//')"
    exit 0
}

do_update() {
    if ! is_root; then
        progress "Reading package lists"
        echo "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)" >&2
        echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
        echo "W: Problem unlinking the file /var/cache/apt/pkgcache.bin - RemoveCaches (13: Permission denied)" >&2
        echo "W: Problem unlinking the file /var/cache/apt/srcpkgcache.bin - RemoveCaches (13: Permission denied)" >&2
        exit 100
    fi
    sleep "$APT_UPDATE_SECONDS"
    if [ "$quiet" -lt 2 ]; then
        i=1
        for suite in jammy jammy-updates jammy-backports jammy-security; do
            echo "Hit:$i $MIRROR $suite InRelease"
            i=$((i + 1))
        done
    fi
    progress "Reading package lists"
    request apt-update "$prog update"
    if [ "$prog" = apt ]; then
        progress "Building dependency tree"
        progress "Reading state information"
        n=$(awk 'NF >= 6 { n++ } END { print n + 0 }' "$PENDING")
        if [ "$quiet" -ge 2 ]; then
            :
        elif [ "$n" -eq 0 ]; then
            echo "All packages are up to date."
        elif [ "$n" -eq 1 ]; then
            echo "1 package can be upgraded. Run 'apt list --upgradable' to see it."
        else
            echo "$n packages can be upgraded. Run 'apt list --upgradable' to see them."
        fi
    fi
    exit 0
}

matches() { # name patterns...
    n=$1
    shift
    [ $# -eq 0 ] && return 0
    for pat in "$@"; do
        # shellcheck disable=SC2254
        case "$n" in $pat) return 0 ;; esac
    done
    return 1
}

do_list() {
    if [ "$quiet" -ge 1 ]; then echo "Listing..."; else echo "Listing... Done"; fi
    set -f
    # shellcheck disable=SC2086
    set -- $pkgs
    set +f
    if [ "$upgradable" = 1 ]; then
        while read -r name from to pocket kernel reboot; do
            [ -n "$reboot" ] || continue
            matches "$name" "$@" || continue
            echo "$name/$(list_pockets "$pocket") $to amd64 [upgradable from: $from]"
        done <"$PENDING" | sort
    else
        while read -r name version; do
            [ -n "$version" ] || continue
            matches "$name" "$@" || continue
            up=$(awk -v n="$name" '$1 == n { print $3 " " $4; exit }' "$PENDING")
            if [ -n "$up" ]; then
                echo "$name/now $version amd64 [installed,upgradable to: ${up% *}]"
            else
                echo "$name/jammy-updates,now $version amd64 [installed]"
            fi
        done <"$INSTALLED" | sort
    fi
    exit 0
}

usage() {
    echo "apt 2.4.13 (amd64)"
    echo "Usage: $prog [options] command"
    echo
    echo "Most used commands:"
    echo "  update - Retrieve new lists of packages"
    echo "  upgrade - Perform an upgrade"
    echo "  install - Install new packages (pkg is libc6 not libc6.deb)"
    echo "  dist-upgrade - Distribution upgrade, see apt-get(8)"
    [ "$prog" = apt ] && echo "  list - list packages based on package names"
    echo
    echo "This is aks-sim's stand-in: only the commands above are emulated."
}

case "$cmd" in
"") usage; exit 1 ;;
update) do_update ;;
upgrade) do_change upgrade ;;
dist-upgrade | full-upgrade) do_change dist-upgrade ;;
install) do_change install ;;
list)
    [ "$prog" = apt ] && do_list
    echo "E: Invalid operation list" >&2
    exit 100
    ;;
check | clean | autoclean | auto-clean)
    progress "Reading package lists"
    progress "Building dependency tree"
    progress "Reading state information"
    exit 0
    ;;
autoremove | auto-remove)
    progress "Reading package lists"
    progress "Building dependency tree"
    progress "Reading state information"
    n=$(awk 'NF >= 6 { n++ } END { print n + 0 }' "$PENDING")
    [ "$quiet" -lt 2 ] && echo "0 upgraded, 0 newly installed, 0 to remove and $n not upgraded."
    exit 0
    ;;
remove | purge | reinstall | download | source | build-dep)
    echo "E: aks-sim: '$prog $cmd' is not emulated on this node (only update, upgrade, dist-upgrade and install are)." >&2
    exit 100
    ;;
*)
    echo "E: Invalid operation $cmd" >&2
    exit 100
    ;;
esac
