//! Compute resources as Kubernetes counts them: quantities (`500m`, `256Mi`), the requests of a
//! pod, the Azure VM sizes AKS nodes run on, and what a node has allocatable once AKS has
//! reserved its share for the kubelet and the eviction threshold.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Why a string is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("`{0}` is not a Kubernetes quantity (a number with an optional suffix: 500m, 2, 1.5, 256Mi, 1Gi, 100M)")]
    Syntax(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
    #[error("`{0}` is negative")]
    Negative(String),
}

/// The value of a Kubernetes quantity in thousandths of its unit (millicores for CPU,
/// millibytes for memory), rounded up as the API server's `MilliValue` rounds: `500m` is 500,
/// `2` is 2000, `1Ki` is 1,024,000, `0.1m` is 1.
///
/// The grammar is the API server's: an optional sign, a decimal number, then either a binary
/// suffix (`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`), a decimal one (`n` `u` `m` `k` `M` `G` `T` `P` `E`),
/// or a decimal exponent (`e3`, `E-2`). Nothing else, not even spaces.
///
/// Hand-written: `k8s-openapi`'s `Quantity` is only the string, and the crate that parses it
/// brings a decimal type and a parser-combinator library for these few lines.
pub fn parse_quantity(text: &str) -> Result<i128, QuantityError> {
    let syntax = || QuantityError::Syntax(text.to_string());
    let too_large = || QuantityError::TooLarge(text.to_string());
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(syntax());
    }
    // value = digits × 10^(-fraction digits) × multiplier; in thousandths: × 1000.
    let digits: i128 = format!("{whole}{fraction}").parse().map_err(|_| too_large())?;
    let mut ten_power: i32 = 3 - fraction.len() as i32;
    let mut two_power: u32 = 0;
    match suffix {
        "" => {}
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let k = "KMGTPE".find(&suffix[..1]).unwrap_or(0) as u32;
            two_power = 10 * (k + 1);
        }
        "n" => ten_power -= 9,
        "u" => ten_power -= 6,
        "m" => ten_power -= 3,
        "k" => ten_power += 3,
        "M" => ten_power += 6,
        "G" => ten_power += 9,
        "T" => ten_power += 12,
        "P" => ten_power += 15,
        "E" => ten_power += 18,
        s if s.starts_with(['e', 'E']) => {
            let exp = &s[1..];
            let unsigned = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            let e: i32 = exp.parse().map_err(|_| too_large())?;
            ten_power = ten_power.checked_add(e).ok_or_else(too_large)?;
        }
        _ => return Err(syntax()),
    }
    let scaled = digits
        .checked_mul(2i128.checked_pow(two_power).ok_or_else(too_large)?)
        .ok_or_else(too_large)?;
    let milli = if ten_power >= 0 {
        let m = 10i128.checked_pow(ten_power as u32).ok_or_else(too_large)?;
        scaled.checked_mul(m).ok_or_else(too_large)?
    } else {
        match 10i128.checked_pow(ten_power.unsigned_abs()) {
            // Rounded up, away from zero, as MilliValue rounds.
            Some(d) => (scaled + d - 1) / d,
            None => i128::from(scaled > 0),
        }
    };
    if milli > i128::from(i64::MAX) {
        return Err(too_large());
    }
    Ok(if negative { -milli } else { milli })
}

/// A request or limit as a scenario gives it: the text (put on the pod as written) and its
/// value in thousandths, checked when the scenario is read. Written as a string or a number
/// (`cpu: 2`, `cpu: 0.5`, `memory: 256Mi`); negative quantities are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    text: String,
    milli: i128,
}

impl Quantity {
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let milli = parse_quantity(text)?;
        if milli < 0 {
            return Err(QuantityError::Negative(text.to_string()));
        }
        Ok(Quantity {
            text: text.to_string(),
            milli,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Thousandths of the unit (millicores, millibytes).
    pub fn milli(&self) -> i128 {
        self.milli
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            S(String),
            I(i64),
            F(f64),
        }
        let text = match Text::deserialize(d)? {
            Text::S(s) => s,
            Text::I(i) => i.to_string(),
            Text::F(f) => f.to_string(),
        };
        Quantity::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// CPU and memory, as the scheduler adds them up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

impl Resources {
    /// A `requests` (or `allocatable`) map: `cpu` and `memory`; other resources are not
    /// counted, and a value that is not a quantity counts as nothing (the API server refuses
    /// those before they get here).
    pub fn from_map(map: &Value) -> Resources {
        let q = |k: &str| {
            map[k]
                .as_str()
                .map(str::to_string)
                .or_else(|| map[k].as_number().map(|n| n.to_string()))
                .and_then(|t| parse_quantity(&t).ok())
                .unwrap_or(0)
        };
        Resources {
            cpu_millis: clamp(q("cpu")),
            // Bytes, rounded up.
            memory_bytes: clamp((q("memory") + 999).div_euclid(1000)),
        }
    }

    /// What the scheduler counts a pod as requesting: the sum over its containers, or the
    /// largest init container's request if that is more (init containers run one at a time,
    /// before the others).
    pub fn of_pod(spec: &Value) -> Resources {
        let each = |key: &str| -> Vec<Resources> {
            spec[key]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| Resources::from_map(&c["resources"]["requests"]))
                        .collect()
                })
                .unwrap_or_default()
        };
        let sum = each("containers").into_iter().fold(Resources::default(), |a, b| a + b);
        let init = each("initContainers")
            .into_iter()
            .fold(Resources::default(), |a, b| a.max(b));
        let mut r = sum.max(init);
        // Pod overhead (RuntimeClass) is added on top, as the scheduler does.
        let overhead = Resources::from_map(&spec["overhead"]);
        r = r + overhead;
        r
    }

    /// Both at least as large as `other`'s.
    fn max(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.cpu_millis == 0 && self.memory_bytes == 0
    }
}

fn clamp(v: i128) -> i64 {
    v.clamp(0, i128::from(i64::MAX)) as i64
}

impl std::ops::Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(o.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(o.memory_bytes),
        }
    }
}

/// An Azure VM size: its vCPUs and memory, as Azure documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmSize {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_mib: u64,
}

const GIB: u64 = 1024;

/// The sizes aks-sim knows: the ones AKS pools commonly run on.
const VM_SIZES: &[VmSize] = &{
    const fn s(name: &'static str, vcpus: u32, memory_mib: u64) -> VmSize {
        VmSize {
            name,
            vcpus,
            memory_mib,
        }
    }
    [
        // B-series (burstable).
        s("Standard_B1s", 1, GIB),
        s("Standard_B1ms", 1, 2 * GIB),
        s("Standard_B2s", 2, 4 * GIB),
        s("Standard_B2ms", 2, 8 * GIB),
        s("Standard_B4ms", 4, 16 * GIB),
        s("Standard_B8ms", 8, 32 * GIB),
        s("Standard_B16ms", 16, 64 * GIB),
        // DS v2 (AKS's default of old).
        s("Standard_DS1_v2", 1, 3 * GIB + GIB / 2),
        s("Standard_DS2_v2", 2, 7 * GIB),
        s("Standard_DS3_v2", 4, 14 * GIB),
        s("Standard_DS4_v2", 8, 28 * GIB),
        s("Standard_DS5_v2", 16, 56 * GIB),
        // General purpose, 4 GiB per vCPU.
        s("Standard_D2s_v3", 2, 8 * GIB),
        s("Standard_D4s_v3", 4, 16 * GIB),
        s("Standard_D8s_v3", 8, 32 * GIB),
        s("Standard_D16s_v3", 16, 64 * GIB),
        s("Standard_D32s_v3", 32, 128 * GIB),
        s("Standard_D64s_v3", 64, 256 * GIB),
        s("Standard_D2s_v4", 2, 8 * GIB),
        s("Standard_D4s_v4", 4, 16 * GIB),
        s("Standard_D8s_v4", 8, 32 * GIB),
        s("Standard_D16s_v4", 16, 64 * GIB),
        s("Standard_D2ds_v4", 2, 8 * GIB),
        s("Standard_D4ds_v4", 4, 16 * GIB),
        s("Standard_D8ds_v4", 8, 32 * GIB),
        s("Standard_D16ds_v4", 16, 64 * GIB),
        s("Standard_D2s_v5", 2, 8 * GIB),
        s("Standard_D4s_v5", 4, 16 * GIB),
        s("Standard_D8s_v5", 8, 32 * GIB),
        s("Standard_D16s_v5", 16, 64 * GIB),
        s("Standard_D32s_v5", 32, 128 * GIB),
        s("Standard_D64s_v5", 64, 256 * GIB),
        s("Standard_D2ds_v5", 2, 8 * GIB),
        s("Standard_D4ds_v5", 4, 16 * GIB),
        s("Standard_D8ds_v5", 8, 32 * GIB),
        s("Standard_D16ds_v5", 16, 64 * GIB),
        s("Standard_D32ds_v5", 32, 128 * GIB),
        s("Standard_D64ds_v5", 64, 256 * GIB),
        s("Standard_D2as_v5", 2, 8 * GIB),
        s("Standard_D4as_v5", 4, 16 * GIB),
        s("Standard_D8as_v5", 8, 32 * GIB),
        s("Standard_D16as_v5", 16, 64 * GIB),
        s("Standard_D2ads_v5", 2, 8 * GIB),
        s("Standard_D4ads_v5", 4, 16 * GIB),
        s("Standard_D8ads_v5", 8, 32 * GIB),
        s("Standard_D16ads_v5", 16, 64 * GIB),
        // Memory optimised, 8 GiB per vCPU.
        s("Standard_E2s_v3", 2, 16 * GIB),
        s("Standard_E4s_v3", 4, 32 * GIB),
        s("Standard_E8s_v3", 8, 64 * GIB),
        s("Standard_E16s_v3", 16, 128 * GIB),
        s("Standard_E32s_v3", 32, 256 * GIB),
        s("Standard_E64s_v3", 64, 432 * GIB),
        s("Standard_E2s_v5", 2, 16 * GIB),
        s("Standard_E4s_v5", 4, 32 * GIB),
        s("Standard_E8s_v5", 8, 64 * GIB),
        s("Standard_E16s_v5", 16, 128 * GIB),
        s("Standard_E32s_v5", 32, 256 * GIB),
        s("Standard_E64s_v5", 64, 512 * GIB),
        s("Standard_E2ds_v5", 2, 16 * GIB),
        s("Standard_E4ds_v5", 4, 32 * GIB),
        s("Standard_E8ds_v5", 8, 64 * GIB),
        s("Standard_E16ds_v5", 16, 128 * GIB),
        s("Standard_E2as_v5", 2, 16 * GIB),
        s("Standard_E4as_v5", 4, 32 * GIB),
        s("Standard_E8as_v5", 8, 64 * GIB),
        s("Standard_E16as_v5", 16, 128 * GIB),
        // Compute optimised, 2 GiB per vCPU.
        s("Standard_F2s_v2", 2, 4 * GIB),
        s("Standard_F4s_v2", 4, 8 * GIB),
        s("Standard_F8s_v2", 8, 16 * GIB),
        s("Standard_F16s_v2", 16, 32 * GIB),
        s("Standard_F32s_v2", 32, 64 * GIB),
        s("Standard_F64s_v2", 64, 128 * GIB),
    ]
};

/// The VM size of that name (Azure's names are case-insensitive).
pub fn vm_size(name: &str) -> Option<&'static VmSize> {
    VM_SIZES.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Every size [`vm_size`] knows, in the table's order.
pub fn known_vm_sizes() -> impl Iterator<Item = &'static str> {
    VM_SIZES.iter().map(|s| s.name)
}

/// The most pods a node runs: what ARM shows as the agent pool's `maxPods` (AKS's defaults
/// with kubenet and Azure CNI overlay: 110 on Linux, 30 on Windows).
pub fn max_pods(windows: bool) -> u32 {
    if windows {
        30
    } else {
        110
    }
}

/// A node's `status.capacity` and `status.allocatable` (cpu, memory, pods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeResources {
    pub capacity: Resources,
    pub allocatable: Resources,
    pub pods: u32,
}

const MIB: i64 = 1024 * 1024;

/// What AKS reserves of a node, by its documented rules ("Node resource reservations"):
/// kube-reserved CPU by core count (60m for 1 core up to 740m for 64); kube-reserved memory
/// on Kubernetes 1.29 and later the lesser of 20 MiB per pod the node may run plus 50 MiB and
/// a quarter of its memory, with a 100 Mi eviction threshold; before 1.29 a regressive share
/// (25 % of the first 4 GiB, 20 % of the next 4, 10 % of the next 8, 6 % of the next 112, 2 %
/// above 128 GiB) with a 750 Mi threshold. Windows nodes keep 2 GiB more for the system.
pub fn node_resources(size: &VmSize, windows: bool, kubernetes_version: &str) -> NodeResources {
    let pods = max_pods(windows);
    let memory = size.memory_mib as i64 * MIB;
    let cpu_reserved = match size.vcpus {
        0..=1 => 60,
        2..=3 => 100,
        4..=7 => 140,
        8..=15 => 180,
        16..=31 => 260,
        32..=63 => 420,
        _ => 740,
    };
    let modern = minor_version(kubernetes_version).is_none_or(|m| m >= 29);
    let (kube_reserved, eviction) = if modern {
        (((20 * i64::from(pods) + 50) * MIB).min(memory / 4), 100 * MIB)
    } else {
        let gib = 1024 * MIB;
        let bands = [
            (4 * gib, 25),
            (4 * gib, 20),
            (8 * gib, 10),
            (112 * gib, 6),
            (i64::MAX, 2),
        ];
        let mut left = memory;
        let mut reserved = 0;
        for (band, percent) in bands {
            let part = left.min(band);
            reserved += part * percent / 100;
            left -= part;
        }
        (reserved, 750 * MIB)
    };
    let windows_reserved = if windows { 2 * 1024 * MIB } else { 0 };
    let capacity = Resources {
        cpu_millis: i64::from(size.vcpus) * 1000,
        memory_bytes: memory,
    };
    NodeResources {
        capacity,
        allocatable: Resources {
            cpu_millis: capacity.cpu_millis - cpu_reserved,
            memory_bytes: (memory - kube_reserved - eviction - windows_reserved).max(0),
        },
        pods,
    }
}

/// `1.31.5` → 31.
fn minor_version(v: &str) -> Option<u32> {
    v.trim_start_matches('v').split('.').nth(1)?.parse().ok()
}

/// CPU as the API server prints it: whole cores as a plain number, else millicores (`3860m`).
pub fn format_cpu(millis: i64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Memory in `Ki`, as the kubelet reports node memory.
pub fn format_memory(bytes: i64) -> String {
    if bytes % 1024 == 0 {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_parse_as_the_api_server_reads_them() {
        for (text, milli) in [
            ("500m", 500),
            ("2", 2000),
            ("0.5", 500),
            ("1.5", 1500),
            (".5", 500),
            ("1Ki", 1_024_000),
            ("256Mi", 256 * 1024 * 1024 * 1000),
            ("1Gi", 1024 * 1024 * 1024 * 1000),
            ("1.5Gi", 3 * 512 * 1024 * 1024 * 1000),
            ("100M", 100_000_000_000),
            ("1k", 1_000_000),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("+3", 3000),
            ("-3", -3000),
            ("0", 0),
            // Thousandths are rounded up, as MilliValue rounds.
            ("0.1m", 1),
            ("1n", 1),
            ("1u", 1),
            ("1500u", 2),
        ] {
            assert_eq!(parse_quantity(text), Ok(milli), "{text}");
        }
    }

    #[test]
    fn what_is_not_a_quantity_is_refused() {
        for text in [
            "", "m", "abc", "1.2.3", "5 m", " 5", "5Mb", "5mi", "1KiB", "1e", "1e+", "--1", "0x10", "1.5.Gi",
        ] {
            assert_eq!(
                parse_quantity(text),
                Err(QuantityError::Syntax(text.to_string())),
                "{text}"
            );
        }
        assert!(matches!(parse_quantity("1e400"), Err(QuantityError::TooLarge(_))));
        assert!(matches!(
            parse_quantity("99999999999Ei"),
            Err(QuantityError::TooLarge(_))
        ));
        assert!(matches!(Quantity::parse("-1"), Err(QuantityError::Negative(_))));
    }

    #[test]
    fn scenario_quantities_take_strings_and_numbers() {
        let q: Quantity = serde_yaml_ng::from_str("2").unwrap();
        assert_eq!((q.as_str(), q.milli()), ("2", 2000));
        let q: Quantity = serde_yaml_ng::from_str("0.25").unwrap();
        assert_eq!(q.milli(), 250);
        let q: Quantity = serde_yaml_ng::from_str("256Mi").unwrap();
        assert_eq!(q.as_str(), "256Mi");
        let e = serde_yaml_ng::from_str::<Quantity>("lots").unwrap_err().to_string();
        assert!(e.contains("`lots` is not a Kubernetes quantity"), "{e}");
    }

    #[test]
    fn a_pod_requests_its_containers_sum_or_its_largest_init_container() {
        let spec = json!({
            "containers": [
                {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"resources": {"requests": {"cpu": "1"}}},
                {"resources": {}},
            ],
            "initContainers": [{"resources": {"requests": {"memory": "1Gi"}}}],
        });
        assert_eq!(
            Resources::of_pod(&spec),
            Resources {
                cpu_millis: 1250,
                memory_bytes: 1024 * MIB
            }
        );
        assert!(Resources::of_pod(&json!({"containers": [{"name": "a"}]})).is_zero());
    }

    #[test]
    fn allocatable_follows_the_vm_size_as_aks_reserves() {
        // 4 vCPUs, 16 GiB on 1.31: 140m reserved; min(20 Mi × 110 + 50 Mi, 4 GiB) and 100 Mi.
        let d4 = node_resources(vm_size("standard_d4ds_v5").unwrap(), false, "1.31.5");
        assert_eq!(d4.capacity.cpu_millis, 4000);
        assert_eq!(d4.allocatable.cpu_millis, 3860);
        assert_eq!(d4.allocatable.memory_bytes, (16 * 1024 - 2250 - 100) * MIB);
        assert_eq!(d4.pods, 110);
        // 2 vCPUs, 4 GiB: a quarter of the memory is less than 2,250 Mi.
        let b2 = node_resources(vm_size("Standard_B2s").unwrap(), false, "1.30.0");
        assert_eq!(b2.allocatable.cpu_millis, 1900);
        assert_eq!(b2.allocatable.memory_bytes, (4096 - 1024 - 100) * MIB);
        // Before 1.29: 25 % of 4 GiB + 20 % of the next 4 GiB + 10 % of 8 GiB, 750 Mi.
        let old = node_resources(vm_size("Standard_D4s_v3").unwrap(), false, "1.28.9");
        let reserved = 1_073_741_824 + 858_993_459 + 858_993_459;
        assert_eq!(old.allocatable.memory_bytes, (16 * 1024 - 750) * MIB - reserved);
        // Windows keeps 2 GiB more and runs at most 30 pods: min(20 Mi × 30 + 50 Mi, 4 GiB).
        let win = node_resources(vm_size("Standard_D4s_v5").unwrap(), true, "1.31.5");
        assert_eq!(win.allocatable.memory_bytes, (16 * 1024 - 650 - 100 - 2048) * MIB);
        assert_eq!(win.pods, 30);
        let big = node_resources(vm_size("Standard_E64s_v5").unwrap(), false, "1.31.5");
        assert_eq!(big.allocatable.cpu_millis, 64000 - 740);
        assert!(vm_size("Standard_Q9").is_none());
    }

    #[test]
    fn node_quantities_print_as_the_kubelet_reports_them() {
        assert_eq!(format_cpu(3860), "3860m");
        assert_eq!(format_cpu(4000), "4");
        assert_eq!(format_memory(16 * 1024 * MIB), "16777216Ki");
    }
}
