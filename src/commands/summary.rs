//! The scan summary line.

/// "2 of 5 Linux nodes need a reboot (kernel 5.15.0-1073-azure pending)" and friends.
pub fn scan_summary(
    linux: usize,
    need_reboot: usize,
    with_pending: usize,
    failed: usize,
    kernels: &[String],
) -> String {
    let nodes = |n: usize| if n == 1 { "node" } else { "nodes" };
    let mut s = if need_reboot > 0 {
        let verb = if need_reboot == 1 { "needs" } else { "need" };
        let mut s = format!("{need_reboot} of {linux} Linux {} {verb} a reboot", nodes(linux));
        if !kernels.is_empty() {
            s.push_str(&format!(" (kernel {} pending)", kernels.join(", ")));
        }
        s
    } else {
        format!("none of {linux} Linux {} needs a reboot", nodes(linux))
    };
    if with_pending > 0 {
        s.push_str(&format!(
            "; {with_pending} {} pending updates",
            if with_pending == 1 { "has" } else { "have" }
        ));
    }
    if failed > 0 {
        s.push_str(&format!("; {failed} could not be scanned"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines() {
        assert_eq!(
            scan_summary(5, 2, 4, 0, &["5.15.0-1073-azure".into()]),
            "2 of 5 Linux nodes need a reboot (kernel 5.15.0-1073-azure pending); 4 have pending updates"
        );
        assert_eq!(
            scan_summary(1, 0, 0, 1, &[]),
            "none of 1 Linux node needs a reboot; 1 could not be scanned"
        );
        assert_eq!(
            scan_summary(3, 1, 1, 0, &[]),
            "1 of 3 Linux nodes needs a reboot; 1 has pending updates"
        );
    }
}
