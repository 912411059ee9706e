//! The probe script: one `sh` script that prints marked sections (kernel, OS, boot, package
//! managers, pending upgrades, reboot marker) and changes nothing on the node without
//! `refresh`.
//!
//! Without `refresh`, `apt list --upgradable` reads the package lists as they are. With
//! `refresh` it runs `apt-get update` (or `tdnf makecache`) first. Azure Linux nodes (tdnf)
//! answer other sections: `tdnf -q check-update` for the pending updates and
//! `needs-restarting -r` for the reboot need. tdnf that refuses non-root users ("You have to
//! be root") is asked again through `sudo -n` with `-C` (from its cache only, as apt's lists
//! are read as they are).

/// What starts each section's line: `@@aks-patch:<name>`.
pub(super) const MARK: &str = "@@aks-patch:";

/// The probe script. Each section starts with a line `@@aks-patch:<name>`; the last one
/// is `@@aks-patch:end`, so that a cut-off output is recognised.
pub fn probe_script(refresh: bool, lock_timeout_secs: u64) -> String {
    let mut s = String::from(
        "LC_ALL=C; export LC_ALL\n\
         echo '@@aks-patch:kernel'; uname -r\n\
         echo '@@aks-patch:os-release'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null\n\
         echo '@@aks-patch:boot-id'; cat /proc/sys/kernel/random/boot_id 2>/dev/null\n\
         echo '@@aks-patch:btime'; grep '^btime ' /proc/stat 2>/dev/null\n\
         echo '@@aks-patch:uptime'; cat /proc/uptime 2>/dev/null\n\
         echo '@@aks-patch:now'; date +%s\n\
         echo '@@aks-patch:package-managers'\n\
         for pm in apt-get tdnf dnf; do command -v $pm >/dev/null 2>&1 && echo $pm; done\n",
    );
    if refresh {
        s.push_str(&format!(
            "echo '@@aks-patch:refresh'\n\
             if command -v apt-get >/dev/null 2>&1; then \
             out=$(sudo DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout={lock_timeout_secs} update 2>&1 </dev/null); \
             echo \"rc=$?\"; printf '%s\\n' \"$out\" | tail -n 5; \
             elif command -v tdnf >/dev/null 2>&1; then \
             out=$(sudo tdnf -q --refresh makecache 2>&1 </dev/null); \
             echo \"rc=$?\"; printf '%s\\n' \"$out\" | tail -n 5; fi\n"
        ));
    }
    s.push_str(
        "echo '@@aks-patch:upgradable'\n\
         if command -v apt >/dev/null 2>&1; then apt list --upgradable 2>/dev/null; fi\n\
         echo '@@aks-patch:reboot-required'\n\
         if [ -e /var/run/reboot-required ]; then echo yes; else echo no; fi\n\
         echo '@@aks-patch:reboot-required-pkgs'; cat /var/run/reboot-required.pkgs 2>/dev/null\n\
         if command -v tdnf >/dev/null 2>&1; then \
         echo '@@aks-patch:tdnf-check-update'; out=$(tdnf -q check-update 2>&1 </dev/null); rc=$?; \
         case \"$out\" in *'have to be root'*) out=$(sudo -n tdnf -q -C check-update 2>&1 </dev/null); rc=$?;; esac; \
         printf '%s\\n' \"$out\"; echo \"rc=$rc\"; \
         names=$(printf '%s\\n' \"$out\" | awk 'NF == 3 && $1 ~ /[.]/ { sub(/[.][^.]*$/, \"\", $1); print $1 }' | sort -u); \
         if [ -n \"$names\" ] && command -v rpm >/dev/null 2>&1; then \
         echo '@@aks-patch:rpm-installed'; rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' $names 2>/dev/null </dev/null; fi; fi\n\
         if command -v needs-restarting >/dev/null 2>&1; then \
         echo '@@aks-patch:needs-restarting'; needs-restarting -r 2>&1 </dev/null; echo \"rc=$?\"; fi\n\
         echo '@@aks-patch:end'\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Probe;

    #[test]
    fn script_is_valid_sh_and_read_only_without_refresh() {
        for refresh in [false, true] {
            let s = probe_script(refresh, 60);
            let out = std::process::Command::new("/bin/sh")
                .arg("-n")
                .arg("-c")
                .arg(&s)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(s.contains("apt-get -q"), refresh);
            // Only tdnf's read from its cache (`-C`, as root where tdnf insists) without refresh.
            assert_eq!(
                s.replace("sudo -n tdnf -q -C check-update", "").contains("sudo"),
                refresh
            );
        }
    }

    #[test]
    fn script_runs_here_and_parses() {
        // This machine is Linux: the script runs read-only and its output parses.
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(probe_script(false, 60))
            .output()
            .unwrap();
        let p = Probe::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert!(!p.running_kernel.is_empty());
        assert!(p.boot_id.is_some());
        assert!(p.uptime_seconds.is_some());
    }
}
