//! Tables: the kubectl-style columns a command declares ([`TableSpec`]), and the generic
//! table the Azure CLI builds from whatever JSON there is (used with `--query`).
//!
//! Both are laid out by comfy-table, with no borders and the spacing of the tool they
//! imitate: kubectl's tabwriter (3 spaces, columns at least 6 wide) and tabulate's `simple`
//! format (2 spaces, a line of dashes under the headers).

use super::OutputError;
use comfy_table::{presets, ColumnConstraint, ContentArrangement, Table, Width};
use serde_json::Value;

/// One column of a command's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Header as printed (UPPERCASE by convention, e.g. `KERNEL-VERSION`).
    pub header: &'static str,
    /// The JSON field of a row, or a dotted path into it (`status.nodeInfo.kernelVersion`).
    pub key: &'static str,
    /// Shown only with `-o wide`.
    pub wide_only: bool,
    /// Printed when the value is missing, null, empty or an empty list (default `<none>`).
    pub placeholder: &'static str,
}

impl Column {
    /// A column shown by `-o table` and `-o wide`, with `<none>` for missing values.
    pub const fn new(header: &'static str, key: &'static str) -> Column {
        Column {
            header,
            key,
            wide_only: false,
            placeholder: "<none>",
        }
    }

    /// Only with `-o wide`.
    pub const fn wide(mut self) -> Column {
        self.wide_only = true;
        self
    }

    /// Print this instead of `<none>` for missing values (e.g. `<unknown>`, as kubectl does
    /// for OS image and kernel).
    pub const fn placeholder(mut self, placeholder: &'static str) -> Column {
        self.placeholder = placeholder;
        self
    }
}

/// The columns of a command's table, in order; wide-only columns sit where `-o wide`
/// shows them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableSpec {
    pub columns: Vec<Column>,
}

impl TableSpec {
    pub fn new(columns: Vec<Column>) -> TableSpec {
        TableSpec { columns }
    }

    /// The columns shown for `wide` (all) or `table` (all but the wide-only ones).
    pub fn visible(&self, wide: bool) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(move |c| wide || !c.wide_only)
    }
}

/// The value at a dotted path (`a.b.c`) of an object; `None` when any step is missing.
pub fn lookup<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = row.get(path) {
        return Some(v);
    }
    let mut cur = row;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The rows of a result: the elements of a list, or the value itself.
pub(crate) fn rows(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    }
}

/// A cell as kubectl prints it: strings as they are, lists joined with `,`, booleans
/// `true`/`false`, missing or empty values as the column's placeholder.
fn kube_cell(v: Option<&Value>, placeholder: &str) -> String {
    match v {
        None | Some(Value::Null) => placeholder.to_string(),
        Some(Value::String(s)) if s.is_empty() => placeholder.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) if a.is_empty() => placeholder.to_string(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(o @ Value::Object(_)) => o.to_string(),
    }
}

/// kubectl's table: UPPERCASE headers, left-aligned columns, each as wide as its longest
/// cell plus 3 spaces (at least 6, as kubectl's tabwriter), no borders, no trailing spaces.
/// An empty list prints nothing (kubectl says "No resources found" on stderr instead).
pub fn kube_table(value: &Value, spec: &TableSpec, wide: bool) -> String {
    let rows = rows(value);
    if rows.is_empty() || value.is_null() {
        return String::new();
    }
    let cols: Vec<&Column> = spec.visible(wide).collect();
    let header: Vec<String> = cols.iter().map(|c| c.header.to_string()).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| kube_cell(lookup(r, c.key), c.placeholder))
                .collect()
        })
        .collect();
    let mut all = vec![header];
    all.extend(body);
    // kubectl's tabwriter: minwidth 6, padding 3 (both counting the padding).
    layout(all, 3, Some(6))
}

/// Lay out rows of cells in left-aligned columns with comfy-table: no borders, `gap` spaces
/// after every column (at least `min_width` wide, gap included), no trailing spaces, a
/// newline after every line. No wrapping, whatever the terminal's width.
fn layout(rows: Vec<Vec<String>>, gap: u16, min_width: Option<u16>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .add_rows(rows);
    for c in t.column_iter_mut() {
        c.set_padding((0, gap));
        if let Some(w) = min_width {
            c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(w)));
        }
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Keys the Azure CLI leaves out of generic tables.
const SKIP_KEYS: [&str; 3] = ["id", "type", "etag"];

fn capitalize(k: &str) -> String {
    let mut c = k.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A cell as the Azure CLI's table prints it (Python's `str()`): `True`/`False`.
fn az_cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The Azure CLI's generic table (knack's `_TableOutput` + tabulate's `simple` format):
/// one row per list element; headers from the keys with the first letter capitalised
/// (sorted when `sort_keys`, i.e. when no query is active), leaving out `id`, `type`,
/// `etag`, null values and nested objects or lists; a scalar becomes column `Result`, a
/// list `Column1`, `Column2`, …; under each header a line of dashes; columns two spaces
/// apart and at least two wider than their header.
pub fn az_table(value: &Value, sort_keys: bool) -> Result<String, OutputError> {
    let rows = rows(value);
    if value.is_null() || rows.is_empty() {
        return Ok(String::new());
    }
    // Each row as ordered (header, cell) pairs.
    let mut table: Vec<Vec<(String, String)>> = Vec::new();
    for r in rows {
        let mut entry = Vec::new();
        match r {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                if sort_keys {
                    keys.sort();
                }
                for k in keys {
                    if SKIP_KEYS.contains(&k.as_str()) {
                        continue;
                    }
                    let v = &m[k];
                    if v.is_null() || v.is_array() || v.is_object() {
                        continue;
                    }
                    entry.push((capitalize(k), az_cell(v)));
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    entry.push((format!("Column{}", i + 1), az_cell(v)));
                }
            }
            v => entry.push(("Result".to_string(), az_cell(v))),
        }
        table.push(entry);
    }
    // Headers: union of keys in order of first appearance (tabulate's headers="keys").
    let mut headers: Vec<String> = Vec::new();
    for e in &table {
        for (h, _) in e {
            if !headers.contains(h) {
                headers.push(h.clone());
            }
        }
    }
    if headers.is_empty() {
        return Err(OutputError::Table(
            "Table output unavailable: the result has no fields to show as columns. Use the --query option to \
             specify an appropriate query, or another --output format."
                .into(),
        ));
    }
    let mut lines: Vec<Vec<String>> = vec![headers.clone()];
    let body: Vec<Vec<String>> = table
        .iter()
        .map(|e| {
            headers
                .iter()
                .map(|h| {
                    e.iter()
                        .find(|(k, _)| k == h)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            body.iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(h.chars().count() + 2)
        })
        .collect();
    // The dashes make each column as wide as tabulate does; comfy-table lays them out.
    lines.push(widths.iter().map(|w| "-".repeat(*w)).collect());
    lines.extend(body);
    Ok(layout(lines, 2, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> TableSpec {
        TableSpec::new(vec![
            Column::new("NAME", "name"),
            Column::new("STATUS", "status"),
            Column::new("AGE", "age"),
            Column::new("INTERNAL-IP", "addresses.internalIp").wide(),
            Column::new("KERNEL-VERSION", "kernel").placeholder("<unknown>").wide(),
            Column::new("REBOOT", "rebootRequired"),
        ])
    }

    #[test]
    fn kube_table_pads_like_kubectl() {
        let v = json!([
            {"name": "aks-system-12345678-vmss000000", "status": "Ready", "age": "10d", "rebootRequired": false,
             "addresses": {"internalIp": "10.224.0.4"}, "kernel": "5.15.0-1068-azure"},
            {"name": "aks-user-12345678-vmss000001", "status": "Ready,SchedulingDisabled", "age": "3h5m", "rebootRequired": true,
             "addresses": {}, "kernel": null},
        ]);
        let t = kube_table(&v, &spec(), false);
        // NAME: longest 30 + 3; STATUS: 24 + 3; AGE: 4 + 3 = 7; last column unpadded.
        let expected = format!(
            "{:<33}{:<27}{:<7}{}\n{:<33}{:<27}{:<7}{}\n{:<33}{:<27}{:<7}{}\n",
            "NAME",
            "STATUS",
            "AGE",
            "REBOOT",
            "aks-system-12345678-vmss000000",
            "Ready",
            "10d",
            "false",
            "aks-user-12345678-vmss000001",
            "Ready,SchedulingDisabled",
            "3h5m",
            "true",
        );
        assert_eq!(t, expected);
        assert!(t.starts_with("NAME                             STATUS                     AGE    REBOOT\n"));
        let w = kube_table(&v, &spec(), true);
        let lines: Vec<&str> = w.lines().collect();
        assert_eq!(
            lines[0],
            "NAME                             STATUS                     AGE    INTERNAL-IP   KERNEL-VERSION      REBOOT"
        );
        assert_eq!(
            lines[2],
            "aks-user-12345678-vmss000001     Ready,SchedulingDisabled   3h5m   <none>        <unknown>           true"
        );
    }

    #[test]
    fn kube_table_min_width_is_six() {
        let s = TableSpec::new(vec![Column::new("A", "a"), Column::new("B", "b")]);
        assert_eq!(
            kube_table(&json!({"a": "x", "b": "y"}), &s, false),
            "A     B\nx     y\n"
        );
    }

    #[test]
    fn kube_table_of_nothing_is_empty() {
        assert_eq!(kube_table(&json!([]), &spec(), false), "");
    }

    #[test]
    fn az_table_list_of_objects() {
        let v = json!([
            {"name": "n1", "id": "/x", "pending": 3, "reboot": true, "tags": {"a": 1}, "kernel": null},
            {"name": "node-two", "id": "/y", "pending": 12, "reboot": false, "kernel": "5.15"},
        ]);
        let t = az_table(&v, false).unwrap();
        assert_eq!(
            t,
            "Name      Pending    Reboot    Kernel\n\
             --------  ---------  --------  --------\n\
             n1        3          True\n\
             node-two  12         False     5.15\n"
        );
        // Without a query the Azure CLI sorts the keys; headers are the union of the rows'
        // keys in order of first appearance (the first row has no kernel).
        assert_eq!(az_table(&v, true).unwrap(), t);
        let v = json!([{"zeta": "z", "name": "n1", "alpha": 1}]);
        assert_eq!(
            az_table(&v, true).unwrap(),
            "Alpha    Name    Zeta\n-------  ------  ------\n1        n1      z\n"
        );
        assert_eq!(
            az_table(&v, false).unwrap(),
            "Zeta    Name    Alpha\n------  ------  -------\nz       n1      1\n"
        );
    }

    #[test]
    fn az_table_scalars_and_lists() {
        assert_eq!(
            az_table(&json!(["a", "bb"]), false).unwrap(),
            "Result\n--------\na\nbb\n"
        );
        assert_eq!(az_table(&json!("x"), false).unwrap(), "Result\n--------\nx\n");
        assert_eq!(
            az_table(&json!([["n1", 3], ["n2", 4]]), false).unwrap(),
            "Column1    Column2\n---------  ---------\nn1         3\nn2         4\n"
        );
        assert_eq!(az_table(&json!([]), false).unwrap(), "");
    }

    #[test]
    fn az_table_without_fields_is_an_error() {
        let e = az_table(&json!([{"id": "x", "tags": {}}]), false).unwrap_err();
        assert!(e.to_string().contains("--query"), "{e}");
    }

    #[test]
    fn lookup_dotted_and_literal_keys() {
        let v = json!({"a": {"b": [1, {"c": "x"}]}, "d.e": 5});
        assert_eq!(lookup(&v, "a.b.1.c"), Some(&json!("x")));
        assert_eq!(lookup(&v, "d.e"), Some(&json!(5)));
        assert_eq!(lookup(&v, "a.z"), None);
    }
}
