//! `--output` and `--query`, as the Azure CLI has them.
//!
//! The query (JMESPath) is applied to the command's result first; the formatter then sees
//! only what the query returned. A `null` result prints nothing, as with `az`.
//!
//! | format | what |
//! |---|---|
//! | `json` | pretty JSON, two-space indent, fields in the order the command defines them |
//! | `jsonc` | the same, coloured when colour is on |
//! | `yaml`, `yamlc` | YAML (serde_yaml_ng), coloured for `yamlc` when colour is on |
//! | `tsv` | values only: one line per list element, tab-separated (see [`tsv`]) |
//! | `table`, `wide` | kubectl-style columns of the command; with `--query`, the Azure CLI's generic table |
//! | `none` | nothing |
//!
//! Where this differs from `az` on purpose: `json` keeps the fields in the order the
//! command defines them (knack sorts keys); in `tsv`, null is an empty field (knack prints
//! `None`) and nested objects and lists are left out (knack prints an empty field and a
//! list's length). Objects built by a `--query` multiselect keep the query's key order in
//! every format, as in `az` (the jmespath crate itself would sort them).

use super::table::{self, lookup, TableSpec};
use super::{color, OutputError};
use jmespath::ast::Ast;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// How a command's result is printed (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Columns for people.
    #[default]
    Table,
    /// More columns (for `report`: exactly `kubectl get nodes -o wide`, then patch state).
    Wide,
    Json,
    /// JSON, coloured.
    Jsonc,
    Yaml,
    /// YAML, coloured.
    Yamlc,
    /// Tab-separated values, no headers: for scripts.
    Tsv,
    /// No output (exit code only).
    None,
    /// Prometheus text exposition format (`report` only).
    Prometheus,
}

/// Check a `--query` expression before any work is done.
pub fn validate_query(q: &str) -> Result<(), OutputError> {
    compile(q).map(|_| ())
}

fn compile(q: &str) -> Result<jmespath::Expression<'static>, OutputError> {
    jmespath::compile(q).map_err(|e| query_error(q, &e))
}

fn query_error(q: &str, e: &jmespath::JmespathError) -> OutputError {
    OutputError::Query {
        expression: q.to_string(),
        reason: format!("{} (at column {})", e.reason, e.column + 1),
    }
}

/// Apply a JMESPath query to a value, as the Azure CLI does (objects built by the query
/// keep the order of the query's keys; objects passed through keep their own order).
pub fn apply_query(value: &Value, q: &str) -> Result<Value, OutputError> {
    let expr = compile(q)?;
    let result = expr.search(value).map_err(|e| query_error(q, &e))?;
    let plain = serde_json::to_value(&*result).map_err(|e| OutputError::Encode(e.to_string()))?;
    let orders = KeyOrders::collect(expr.as_ast(), value);
    Ok(orders.apply(plain))
}

/// Render a command's result for stdout.
///
/// `table` is the command's kubectl-style column spec, used by `table`, `wide` and `tsv`
/// when no query is given. `color` turns on ANSI colours for `jsonc` / `yamlc` (decide it
/// with [`color_enabled`]).
pub fn render(
    value: &Value,
    table: Option<&TableSpec>,
    format: OutputFormat,
    query: Option<&str>,
    color: bool,
) -> Result<String, OutputError> {
    if format == OutputFormat::None {
        // Still reject a bad query: the exit code must say so.
        if let Some(q) = query {
            validate_query(q)?;
        }
        return Ok(String::new());
    }
    let queried;
    let value = match query {
        Some(q) => {
            queried = apply_query(value, q)?;
            &queried
        }
        None => value,
    };
    if value.is_null() {
        return Ok(String::new());
    }
    let spec = if query.is_none() { table } else { None };
    Ok(match format {
        OutputFormat::None => String::new(),
        // The command rendered it already (`report`).
        OutputFormat::Prometheus => match value {
            Value::String(text) => text.clone(),
            _ => {
                return Err(OutputError::Table(
                    "-o prometheus is only for `aks-patch report`".into(),
                ))
            }
        },
        OutputFormat::Json => json(value)?,
        OutputFormat::Jsonc if color => color::json(value) + "\n",
        OutputFormat::Jsonc => json(value)?,
        OutputFormat::Yaml => yaml(value)?,
        OutputFormat::Yamlc if color => color::yaml(&yaml(value)?),
        OutputFormat::Yamlc => yaml(value)?,
        OutputFormat::Tsv => match spec {
            Some(spec) => tsv_columns(value, spec),
            None => tsv(value),
        },
        OutputFormat::Table | OutputFormat::Wide => match spec {
            Some(spec) => table::kube_table(value, spec, format == OutputFormat::Wide),
            // The Azure CLI sorts keys of a generic table unless a query chose them.
            None => table::az_table(value, query.is_none())?,
        },
    })
}

/// Whether `jsonc` / `yamlc` should colour: stdout is a terminal and `NO_COLOR` is unset
/// (`no_color`, from [`crate::settings::Settings`]).
pub fn color_enabled(no_color: bool) -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && !no_color
}

/// Write rendered output to stdout. A closed pipe (`| head`) is not an error.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

fn json(value: &Value) -> Result<String, OutputError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| OutputError::Encode(e.to_string()))
}

fn yaml(value: &Value) -> Result<String, OutputError> {
    serde_yaml_ng::to_string(value).map_err(|e| OutputError::Encode(e.to_string()))
}

/// A value inside a tsv row, as the Azure CLI prints it (Python's `str()`): strings as
/// they are, `True`/`False`, null as an empty field.
fn tsv_field(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// The Azure CLI's tsv: one line per element of a list (or one for a single value); an
/// object's values in key order and a list's elements, tab-separated, skipping nested
/// objects and lists; null as an empty field; booleans `True`/`False` inside a row, and
/// `true`/`false` when the row is a bare boolean (as `az` prints them).
pub fn tsv(value: &Value) -> String {
    let mut out = String::new();
    for row in table::rows(value) {
        match row {
            Value::Object(m) => push_fields(&mut out, m.values()),
            Value::Array(a) => push_fields(&mut out, a.iter()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            v => out.push_str(&tsv_field(v)),
        }
        out.push('\n');
    }
    out
}

fn push_fields<'a>(out: &mut String, values: impl Iterator<Item = &'a Value>) {
    let fields: Vec<String> = values
        .filter(|v| !v.is_object() && !v.is_array())
        .map(tsv_field)
        .collect();
    out.push_str(&fields.join("\t"));
}

/// tsv of a command's result in the order of its table's columns (the `-o table` ones):
/// values as [`tsv`] prints them, lists of scalars joined with `,`, objects empty.
fn tsv_columns(value: &Value, spec: &TableSpec) -> String {
    let mut out = String::new();
    for row in table::rows(value) {
        let fields: Vec<String> = spec
            .visible(false)
            .map(|c| match lookup(row, c.key) {
                None | Some(Value::Object(_)) => String::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter(|x| !x.is_object() && !x.is_array())
                    .map(tsv_field)
                    .collect::<Vec<_>>()
                    .join(","),
                Some(v) => tsv_field(v),
            })
            .collect();
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    out
}

/// The key orders a query result should have. The jmespath crate returns objects with
/// sorted keys; the Azure CLI (Python, OrderedDict) keeps the order of a multiselect hash
/// (`{name: name, kernel: kernel}`) and of objects passed through from the input.
#[derive(Default)]
struct KeyOrders {
    /// Exact key orders, by the set of keys.
    by_set: HashMap<BTreeSet<String>, Vec<String>>,
    /// Rank of each key by first appearance, for objects matching no known set.
    rank: HashMap<String, usize>,
}

impl KeyOrders {
    fn collect(ast: &Ast, input: &Value) -> KeyOrders {
        let mut k = KeyOrders::default();
        k.add_ast(ast);
        k.add_value(input, 0);
        k
    }

    fn add(&mut self, keys: Vec<String>) {
        for key in &keys {
            let n = self.rank.len();
            self.rank.entry(key.clone()).or_insert(n);
        }
        let set: BTreeSet<String> = keys.iter().cloned().collect();
        self.by_set.entry(set).or_insert(keys);
    }

    fn add_ast(&mut self, ast: &Ast) {
        match ast {
            Ast::MultiHash { elements, .. } => {
                self.add(elements.iter().map(|kv| kv.key.clone()).collect());
                for kv in elements {
                    self.add_ast(&kv.value);
                }
            }
            Ast::Comparison { lhs, rhs, .. }
            | Ast::And { lhs, rhs, .. }
            | Ast::Or { lhs, rhs, .. }
            | Ast::Projection { lhs, rhs, .. }
            | Ast::Subexpr { lhs, rhs, .. } => {
                self.add_ast(lhs);
                self.add_ast(rhs);
            }
            Ast::Condition { predicate, then, .. } => {
                self.add_ast(predicate);
                self.add_ast(then);
            }
            Ast::Expref { ast, .. } => self.add_ast(ast),
            Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => self.add_ast(node),
            Ast::Function { args, .. } => args.iter().for_each(|a| self.add_ast(a)),
            Ast::MultiList { elements, .. } => elements.iter().for_each(|a| self.add_ast(a)),
            Ast::Identity { .. } | Ast::Field { .. } | Ast::Index { .. } | Ast::Literal { .. } | Ast::Slice { .. } => {}
        }
    }

    fn add_value(&mut self, v: &Value, depth: usize) {
        if depth > 64 {
            return;
        }
        match v {
            Value::Object(m) => {
                self.add(m.keys().cloned().collect());
                m.values().for_each(|x| self.add_value(x, depth + 1));
            }
            Value::Array(a) => a.iter().for_each(|x| self.add_value(x, depth + 1)),
            _ => {}
        }
    }

    fn apply(&self, v: Value) -> Value {
        match v {
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.apply(x)).collect()),
            Value::Object(m) => {
                let set: BTreeSet<String> = m.keys().cloned().collect();
                let order: Vec<String> = match self.by_set.get(&set) {
                    Some(o) => o.clone(),
                    None => {
                        let mut keys: Vec<String> = m.keys().cloned().collect();
                        keys.sort_by_key(|k| (self.rank.get(k).copied().unwrap_or(usize::MAX), k.clone()));
                        keys
                    }
                };
                let mut m = m;
                let mut out = Map::new();
                for k in order {
                    if let Some(x) = m.remove(&k) {
                        out.insert(k, self.apply(x));
                    }
                }
                Value::Object(out)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::table::Column;
    use serde_json::json;

    fn nodes() -> Value {
        json!([
            {"name": "aks-system-11111111-vmss000000", "pool": "system", "runningKernel": "5.15.0-1068-azure",
             "pendingUpdates": 0, "securityUpdates": 0, "rebootRequired": false, "uptimeSeconds": 86400,
             "rebootPackages": [], "error": null},
            {"name": "aks-user-22222222-vmss000001", "pool": "user", "runningKernel": "5.15.0-1068-azure",
             "pendingUpdates": 12, "securityUpdates": 5, "rebootRequired": true, "uptimeSeconds": 3600,
             "rebootPackages": ["linux-image-5.15.0-1073-azure"], "error": null},
            {"name": "aks-user-22222222-vmss000002", "pool": "user", "runningKernel": null,
             "pendingUpdates": null, "securityUpdates": null, "rebootRequired": null, "uptimeSeconds": null,
             "rebootPackages": [], "error": "ssh: connect to host 10.224.0.6 port 22: Connection refused"}
        ])
    }

    fn spec() -> TableSpec {
        TableSpec::new(vec![
            Column::new("NAME", "name"),
            Column::new("POOL", "pool").wide(),
            Column::new("KERNEL", "runningKernel").placeholder("<unknown>"),
            Column::new("PENDING", "pendingUpdates"),
            Column::new("SECURITY", "securityUpdates"),
            Column::new("REBOOT-REQUIRED", "rebootRequired"),
            Column::new("REBOOT-PACKAGES", "rebootPackages").wide(),
            Column::new("ERROR", "error"),
        ])
    }

    fn r(format: OutputFormat, query: Option<&str>) -> String {
        render(&nodes(), Some(&spec()), format, query, false).unwrap()
    }

    #[test]
    fn json_is_pretty_two_space_in_field_order() {
        let out = r(OutputFormat::Json, None);
        assert!(
            out.starts_with("[\n  {\n    \"name\": \"aks-system-11111111-vmss000000\",\n    \"pool\": \"system\",\n")
        );
        assert!(out.ends_with("]\n"));
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), nodes());
        insta::assert_snapshot!(
            "json_with_query",
            r(
                OutputFormat::Json,
                Some("[?rebootRequired].{name: name, pkgs: rebootPackages}")
            )
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let plain = r(OutputFormat::Jsonc, None);
        assert!(!plain.contains('\x1b'));
        assert_eq!(plain, r(OutputFormat::Json, None));
        let y = r(OutputFormat::Yamlc, None);
        assert!(!y.contains('\x1b'));
        assert_eq!(y, r(OutputFormat::Yaml, None));
        let c = render(&nodes(), Some(&spec()), OutputFormat::Jsonc, None, true).unwrap();
        assert!(c.contains("\x1b["));
        assert_eq!(color::strip_ansi(&c), plain);
        let c = render(&nodes(), Some(&spec()), OutputFormat::Yamlc, None, true).unwrap();
        assert!(c.contains("\x1b["));
        assert_eq!(color::strip_ansi(&c), y);
    }

    #[test]
    fn yaml_output() {
        let out = r(OutputFormat::Yaml, None);
        assert_eq!(serde_yaml_ng::from_str::<Value>(&out).unwrap(), nodes());
        insta::assert_snapshot!("yaml", out);
    }

    #[test]
    fn table_and_wide_use_the_spec() {
        insta::assert_snapshot!("table", r(OutputFormat::Table, None));
        insta::assert_snapshot!("wide", r(OutputFormat::Wide, None));
        let t = r(OutputFormat::Table, None);
        assert!(t.starts_with("NAME   "));
        assert!(!t.contains("POOL"));
        assert!(r(OutputFormat::Wide, None).contains("POOL"));
        assert!(t.contains("<unknown>"));
        assert!(t.contains("<none>"));
    }

    #[test]
    fn table_with_query_is_the_generic_az_table() {
        let out = r(
            OutputFormat::Table,
            Some("[].{name: name, pending: pendingUpdates, reboot: rebootRequired}"),
        );
        assert_eq!(
            out,
            "Name                            Pending    Reboot\n\
             ------------------------------  ---------  --------\n\
             aks-system-11111111-vmss000000  0          False\n\
             aks-user-22222222-vmss000001    12         True\n\
             aks-user-22222222-vmss000002\n"
        );
        let out = r(OutputFormat::Table, Some("[?rebootRequired].name"));
        assert_eq!(
            out,
            "Result\n----------------------------\naks-user-22222222-vmss000001\n"
        );
        // wide with a query is the same generic table
        assert_eq!(r(OutputFormat::Wide, Some("[?rebootRequired].name")), out);
    }

    #[test]
    fn table_without_spec_sorts_keys_like_az() {
        let v = json!({"zeta": 1, "alpha": "a"});
        assert_eq!(
            render(&v, None, OutputFormat::Table, None, false).unwrap(),
            "Alpha    Zeta\n-------  ------\na        1\n"
        );
    }

    #[test]
    fn tsv_follows_table_columns_without_query() {
        let out = r(OutputFormat::Tsv, None);
        assert_eq!(
            out,
            "aks-system-11111111-vmss000000\t5.15.0-1068-azure\t0\t0\tFalse\t\n\
             aks-user-22222222-vmss000001\t5.15.0-1068-azure\t12\t5\tTrue\t\n\
             aks-user-22222222-vmss000002\t\t\t\t\tssh: connect to host 10.224.0.6 port 22: Connection refused\n"
        );
    }

    #[test]
    fn tsv_rules_with_query() {
        // values of each object in key order, nested skipped, null empty, True/False
        let out = r(
            OutputFormat::Tsv,
            Some("[].{n: name, pk: rebootPackages, r: rebootRequired, k: runningKernel}"),
        );
        assert_eq!(
            out,
            "aks-system-11111111-vmss000000\tFalse\t5.15.0-1068-azure\n\
             aks-user-22222222-vmss000001\tTrue\t5.15.0-1068-azure\n\
             aks-user-22222222-vmss000002\t\t\n"
        );
        assert_eq!(
            r(OutputFormat::Tsv, Some("[?rebootRequired].name")),
            "aks-user-22222222-vmss000001\n"
        );
        assert_eq!(
            r(OutputFormat::Tsv, Some("[].[name, pendingUpdates]")).lines().nth(1),
            Some("aks-user-22222222-vmss000001\t12")
        );
        // a bare boolean row is lower-case, as az prints it
        assert_eq!(r(OutputFormat::Tsv, Some("[1].rebootRequired")), "true\n");
        assert_eq!(r(OutputFormat::Tsv, Some("length(@)")), "3\n");
    }

    #[test]
    fn tsv_of_a_single_object_is_one_line() {
        let v = json!({"name": "x", "tags": {"a": "b"}, "list": [1], "n": 2.5, "none": null, "ok": true});
        assert_eq!(
            render(&v, None, OutputFormat::Tsv, None, false).unwrap(),
            "x\t2.5\t\tTrue\n"
        );
    }

    #[test]
    fn query_keeps_multiselect_order_and_input_order() {
        let q = apply_query(&nodes(), "[].{zname: name, akernel: runningKernel}").unwrap();
        let keys: Vec<&String> = q[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["zname", "akernel"]);
        let q = apply_query(&nodes(), "[?rebootRequired]").unwrap();
        let keys: Vec<&String> = q[0].as_object().unwrap().keys().collect();
        let input = nodes();
        let want: Vec<&String> = input[1].as_object().unwrap().keys().collect();
        assert_eq!(keys, want);
        assert_eq!(keys[0], "name");
    }

    #[test]
    fn null_query_result_prints_nothing() {
        for f in [
            OutputFormat::Json,
            OutputFormat::Table,
            OutputFormat::Tsv,
            OutputFormat::Yaml,
        ] {
            assert_eq!(r(f, Some("nosuchfield")), "", "{f:?}");
        }
    }

    #[test]
    fn none_prints_nothing() {
        assert_eq!(r(OutputFormat::None, None), "");
        assert!(render(&nodes(), None, OutputFormat::None, Some("[?"), false).is_err());
    }

    #[test]
    fn bad_query_names_expression_and_complaint() {
        let e = validate_query("[?rebootRequired").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("`[?rebootRequired`"), "{msg}");
        assert!(msg.contains("Parse error"), "{msg}");
        assert!(msg.starts_with("invalid --query"), "{msg}");
        assert!(validate_query("[?rebootRequired].name").is_ok());
        let e = render(&nodes(), Some(&spec()), OutputFormat::Json, Some("foo[[["), false).unwrap_err();
        assert!(matches!(e, OutputError::Query { .. }));
        // A runtime error (wrong argument type) is a query error too.
        let e = render(&nodes(), None, OutputFormat::Json, Some("length(`1`)"), false).unwrap_err();
        assert!(e.to_string().contains("length(`1`)"), "{e}");
    }
}
