//! Kernels from package names and versions, and version ordering.

/// The kernel a package brings: `linux-image-5.15.0-1073-azure` → itself; a meta package
/// `linux-<flavour>` / `linux-image-<flavour>` at version `A.B.C.ABI.N` → `A.B.C-ABI-<flavour>`.
pub(super) fn kernel_of_package(name: &str, version: &str) -> Option<String> {
    if let Some(k) = name.strip_prefix("linux-image-") {
        if k.starts_with(|c: char| c.is_ascii_digit()) {
            return Some(k.to_string());
        }
    }
    let flavour = name
        .strip_prefix("linux-image-")
        .or_else(|| name.strip_prefix("linux-"))?
        .split('-')
        .next()?;
    if !matches!(
        flavour,
        "azure" | "generic" | "aws" | "gcp" | "oracle" | "kvm" | "lowlatency"
    ) {
        return None;
    }
    let nums: Vec<&str> = version.split(['.', '~', '+']).collect();
    if nums.len() < 4
        || !nums[..4]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some(format!("{}.{}.{}-{}-{flavour}", nums[0], nums[1], nums[2], nums[3]))
}

/// Numbers of a version string, for ordering kernels.
pub(super) fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_of_packages() {
        assert_eq!(
            kernel_of_package("linux-azure", "5.15.0.1073.71").as_deref(),
            Some("5.15.0-1073-azure")
        );
        assert_eq!(
            kernel_of_package("linux-image-azure", "6.8.0.1021.23~22.04.1").as_deref(),
            Some("6.8.0-1021-azure")
        );
        assert_eq!(
            kernel_of_package("linux-image-5.15.0-1073-azure", "5.15.0-1073.82").as_deref(),
            Some("5.15.0-1073-azure")
        );
        assert_eq!(kernel_of_package("linux-tools-common", "5.15.0-1073.82"), None);
        assert_eq!(kernel_of_package("linux-azure", "garbage"), None);
        assert_eq!(kernel_of_package("openssl", "3.0.2"), None);
    }
}
