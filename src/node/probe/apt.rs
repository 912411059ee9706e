//! `apt list --upgradable`: the pending upgrades of an apt node, with the pockets they come
//! from (a `-security` pocket makes a security update).

use super::PendingUpdate;

/// Lines of `apt list --upgradable`, e.g.
/// `openssl/jammy-updates,jammy-security 3.0.2-0ubuntu1.19 amd64 [upgradable from: 3.0.2-0ubuntu1.18]`.
pub fn parse_upgradable(text: &str) -> Vec<PendingUpdate> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let mut parts = line.split_whitespace();
        let (Some(head), Some(to)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some((name, pockets)) = head.split_once('/') else {
            continue;
        };
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            continue;
        }
        let arch = parts.next().unwrap_or("").to_string();
        let from = line
            .split_once("[upgradable from: ")
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(v, _)| v.trim().to_string())
            .unwrap_or_default();
        let pockets: Vec<String> = pockets
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        let security = pockets.iter().any(|p| p.ends_with("-security"));
        out.push(PendingUpdate {
            name: name.to_string(),
            from,
            to: to.to_string(),
            pockets,
            arch,
            security,
        });
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::node::probe) const UPGRADABLE: &str = "\
Listing... Done
curl/jammy-updates 7.81.0-1ubuntu1.20 amd64 [upgradable from: 7.81.0-1ubuntu1.18]
libssl3/jammy-updates,jammy-security 3.0.2-0ubuntu1.19 amd64 [upgradable from: 3.0.2-0ubuntu1.18]
linux-azure/jammy-updates,jammy-security 5.15.0.1073.71 amd64 [upgradable from: 5.15.0.1068.66]
linux-tools-common/jammy-updates,jammy-security 5.15.0-1073.82 all [upgradable from: 5.15.0-1068.77]
openssl/jammy-updates,jammy-security 3.0.2-0ubuntu1.19 amd64 [upgradable from: 3.0.2-0ubuntu1.18]
tzdata/jammy-updates 2025a-0ubuntu0.22.04 all [upgradable from: 2024b-0ubuntu0.22.04.1]
N: There is 1 additional version. Please use the '-a' switch to see it
";

    #[test]
    fn upgradable_lines() {
        let p = parse_upgradable(UPGRADABLE);
        assert_eq!(p.len(), 6);
        assert_eq!(
            p[4],
            PendingUpdate {
                name: "openssl".into(),
                from: "3.0.2-0ubuntu1.18".into(),
                to: "3.0.2-0ubuntu1.19".into(),
                pockets: vec!["jammy-updates".into(), "jammy-security".into()],
                arch: "amd64".into(),
                security: true,
            }
        );
        assert!(!p[0].security);
        assert_eq!(p[0].pockets, vec!["jammy-updates"]);
        assert!(!p[5].security);
        assert_eq!(p.iter().filter(|x| x.security).count(), 4);
    }
}
