//! ANSI colouring of JSON and YAML text for `-o jsonc` / `-o yamlc`. Stripping the escape
//! codes gives back exactly the `json` / `yaml` output.

use serde_json::Value;

const KEY: &str = "\x1b[94m";
const STRING: &str = "\x1b[32m";
const NUMBER: &str = "\x1b[36m";
const LITERAL: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

fn paint(out: &mut String, color: &str, text: &str) {
    out.push_str(color);
    out.push_str(text);
    out.push_str(RESET);
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// Pretty JSON (two-space indent, as `serde_json::to_string_pretty`) with colours.
pub fn json(value: &Value) -> String {
    let mut out = String::new();
    json_into(&mut out, value, 0);
    out
}

fn json_into(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Null => paint(out, LITERAL, "null"),
        Value::Bool(b) => paint(out, LITERAL, if *b { "true" } else { "false" }),
        Value::Number(n) => paint(out, NUMBER, &n.to_string()),
        Value::String(s) => paint(out, STRING, &json_string(s)),
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Array(a) => {
            out.push_str("[\n");
            for (i, x) in a.iter().enumerate() {
                out.push_str(&"  ".repeat(indent + 1));
                json_into(out, x, indent + 1);
                if i + 1 < a.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&"  ".repeat(indent));
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("{\n");
            for (i, (k, x)) in m.iter().enumerate() {
                out.push_str(&"  ".repeat(indent + 1));
                paint(out, KEY, &json_string(k));
                out.push_str(": ");
                json_into(out, x, indent + 1);
                if i + 1 < m.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&"  ".repeat(indent));
            out.push('}');
        }
    }
}

/// Colour YAML text as serde_yaml_ng writes it: keys, then scalars by kind. Block scalars
/// (`|`, `>`) are coloured as strings.
pub fn yaml(text: &str) -> String {
    let mut out = String::new();
    // Indentation of the line that opened a block scalar: deeper lines belong to it.
    let mut block: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let indent = body.len() - body.trim_start().len();
        if let Some(b) = block {
            if body.trim().is_empty() || indent > b {
                paint_nonempty(&mut out, STRING, body);
                out.push_str(nl);
                continue;
            }
            block = None;
        }
        let mut rest = body;
        // Leading indentation and list markers.
        loop {
            let trimmed = rest.trim_start_matches(' ');
            out.push_str(&rest[..rest.len() - trimmed.len()]);
            rest = trimmed;
            if let Some(r) = rest.strip_prefix("- ") {
                out.push_str("- ");
                rest = r;
            } else if rest == "-" {
                out.push('-');
                rest = "";
            } else {
                break;
            }
        }
        if let Some((key, value)) = split_key(rest) {
            paint(&mut out, KEY, key);
            out.push(':');
            if !value.is_empty() {
                out.push(' ');
                if is_block_indicator(value) {
                    block = Some(indent);
                }
                yaml_scalar(&mut out, value);
            }
        } else {
            if is_block_indicator(rest) {
                block = Some(indent);
            }
            yaml_scalar(&mut out, rest);
        }
        out.push_str(nl);
    }
    out
}

fn paint_nonempty(out: &mut String, color: &str, text: &str) {
    if text.is_empty() {
        return;
    }
    paint(out, color, text);
}

fn is_block_indicator(v: &str) -> bool {
    let v = v.trim();
    (v.starts_with('|') || v.starts_with('>')) && v[1..].chars().all(|c| matches!(c, '-' | '+' | '0'..='9'))
}

/// `key: value` or `key:` at the start of `s`, for a plain or quoted key.
fn split_key(s: &str) -> Option<(&str, &str)> {
    let end = if s.starts_with('"') || s.starts_with('\'') {
        let q = s.as_bytes()[0];
        let mut i = 1;
        let b = s.as_bytes();
        while i < b.len() {
            if b[i] == b'\\' && q == b'"' {
                i += 2;
                continue;
            }
            if b[i] == q {
                if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                break;
            }
            i += 1;
        }
        let close = i + 1;
        if close > s.len() || !s[close..].starts_with(':') {
            return None;
        }
        close
    } else {
        if s.starts_with(['[', '{', '|', '>']) {
            return None;
        }
        // A plain key ends at the first ": " or a trailing ":".
        match s.find(": ") {
            Some(i) => i,
            None if s.ends_with(':') => s.len() - 1,
            None => return None,
        }
    };
    let value = s[end + 1..].strip_prefix(' ').unwrap_or(&s[end + 1..]);
    Some((&s[..end], value))
}

fn yaml_scalar(out: &mut String, v: &str) {
    if v.is_empty() {
        return;
    }
    let color = match v {
        "null" | "~" | "true" | "false" => LITERAL,
        "[]" | "{}" => {
            out.push_str(v);
            return;
        }
        _ if v.parse::<f64>().is_ok() || v == ".inf" || v == "-.inf" || v == ".nan" => NUMBER,
        _ => STRING,
    };
    paint(out, color, v);
}

/// Remove ANSI escape sequences (for tests and for comparing outputs).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "name": "aks-user-1",
            "pending": 3,
            "ratio": 0.5,
            "reboot": true,
            "kernel": null,
            "packages": ["openssl", "linux-image-5.15.0-1073-azure"],
            "empty": [],
            "nested": {"a: b": "yes", "multi": "line one\nline two\n", "q": "'quoted'", "num": "1.0", "x": {}},
            "list": [{"k": 1, "v": "x"}, [1, 2], "- dash"]
        })
    }

    #[test]
    fn json_colour_strips_to_plain_json() {
        let v = sample();
        let c = json(&v);
        assert!(c.contains("\x1b["));
        assert_eq!(strip_ansi(&c), serde_json::to_string_pretty(&v).unwrap());
    }

    #[test]
    fn yaml_colour_strips_to_plain_yaml() {
        let v = sample();
        let plain = serde_yaml_ng::to_string(&v).unwrap();
        let c = yaml(&plain);
        assert!(c.contains(KEY), "{c}");
        assert_eq!(strip_ansi(&c), plain);
        // keys and values are told apart
        assert!(
            c.contains(&format!("{KEY}name{RESET}: {STRING}aks-user-1{RESET}")),
            "{c}"
        );
        assert!(c.contains(&format!("{KEY}pending{RESET}: {NUMBER}3{RESET}")), "{c}");
        assert!(c.contains(&format!("{KEY}reboot{RESET}: {LITERAL}true{RESET}")), "{c}");
    }
}
