//! The subset of KQL (Kusto Query Language) aks-sim's Resource Graph answers: a tokenizer,
//! a parser into a small syntax tree, and its evaluation over rows (JSON objects).
//!
//! ```text
//! query     := table ('|' operator)*
//! table     := resources                          (any case)
//! operator  := where expr
//!            | project column (',' column)*       column := [name '='] path
//!            | (order | sort) by path [asc|desc] (',' path [asc|desc])*
//!            | (limit | take) integer
//! expr      := and ('or' and)*
//! and       := unary ('and' unary)*
//! unary     := 'not' '(' expr ')' | '(' expr ')' | comparison
//! comparison:= operand op operand
//!            | operand ('in' | 'in~' | '!in' | '!in~') '(' literal (',' literal)* ')'
//! op        := == | != | =~ | !~ | contains | !contains | startswith | !startswith | has | !has
//! operand   := path | literal
//! path      := column ('.' name | '[' string ']' | '[' integer ']')*
//! literal   := 'string' | "string" | integer | true | false
//! ```
//!
//! Anything else is refused with the position of the first token outside the subset, never
//! answered approximately. As in Kusto, `order by` sorts descending unless `asc`, string
//! comparisons with `==`/`!=`/`in` are case-sensitive and the `~` forms, `contains`,
//! `startswith` and `has` (a whole term) are not, and a missing value compares as an empty
//! string.

use serde_json::Value;
use std::cmp::Ordering;

/// Why a query was refused, and where (line from 1, position in the line from 0, as Resource
/// Graph's `ParserFailure` details give them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub kind: ErrorKind,
    pub message: String,
    pub line: usize,
    pub position: usize,
    pub token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not KQL at all (a syntax error).
    Syntax,
    /// KQL, but outside the subset aks-sim answers.
    Unsupported,
    /// A column the table does not have.
    UnknownColumn,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Sym(&'static str),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    text: String,
    line: usize,
    pos: usize,
}

const SYMBOLS: &[&str] = &[
    "==", "!=", "=~", "!~", "<=", ">=", "|", "(", ")", "[", "]", ",", ".", "=", "<", ">", "!", "~",
];

fn tokenize(src: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = vec![];
    let (mut i, mut line, mut line_start) = (0usize, 1usize, 0usize);
    while i < chars.len() {
        let c = chars[i];
        let pos = i - line_start;
        if c == '\n' {
            i += 1;
            line += 1;
            line_start = i;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let err = |message: String, token: String| QueryError {
            kind: ErrorKind::Syntax,
            message,
            line,
            position: pos,
            token,
        };
        if c == '\'' || c == '"' {
            let quote = c;
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                let Some(&d) = chars.get(j) else {
                    return Err(err("unterminated string literal".into(), chars[i..].iter().collect()));
                };
                match d {
                    '\\' => {
                        let Some(&e) = chars.get(j + 1) else {
                            return Err(err("unterminated string literal".into(), chars[i..].iter().collect()));
                        };
                        match e {
                            'n' => s.push('\n'),
                            'r' => s.push('\r'),
                            't' => s.push('\t'),
                            '\\' | '\'' | '"' => s.push(e),
                            'u' => {
                                let hex: String = chars.iter().skip(j + 2).take(4).collect();
                                let ch = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                                let Some(ch) = ch.filter(|_| hex.len() == 4) else {
                                    return Err(err(format!("invalid escape \\u{hex}"), format!("\\u{hex}")));
                                };
                                s.push(ch);
                                j += 4;
                            }
                            other => return Err(err(format!("invalid escape \\{other}"), format!("\\{other}"))),
                        }
                        j += 2;
                    }
                    '\n' => return Err(err("unterminated string literal".into(), chars[i..j].iter().collect())),
                    d if d == quote => break,
                    d => {
                        s.push(d);
                        j += 1;
                    }
                }
            }
            out.push(Token {
                tok: Tok::Str(s),
                text: chars[i..=j].iter().collect(),
                line,
                pos,
            });
            i = j + 1;
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_alphanumeric() {
                j += 1;
            }
            let text: String = chars[i..j].iter().collect();
            let n = text
                .parse::<i64>()
                .map_err(|_| err(format!("`{text}` is no integer aks-sim reads"), text.clone()))?;
            out.push(Token {
                tok: Tok::Int(n),
                text,
                line,
                pos,
            });
            i = j;
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '$') {
                j += 1;
            }
            let text: String = chars[i..j].iter().collect();
            out.push(Token {
                tok: Tok::Ident(text.clone()),
                text,
                line,
                pos,
            });
            i = j;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) else {
            return Err(err(format!("unexpected character `{c}`"), c.to_string()));
        };
        out.push(Token {
            tok: Tok::Sym(sym),
            text: sym.to_string(),
            line,
            pos,
        });
        i += sym.chars().count();
    }
    Ok(out)
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub operators: Vec<Operator>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    Where(Expr),
    Project(Vec<(String, Path)>),
    OrderBy(Vec<(Path, bool)>),
    Limit(usize),
}

/// A column and the steps into its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub column: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Path),
    Lit(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    EqCi,
    Contains,
    StartsWith,
    Has,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare {
        left: Operand,
        cmp: Cmp,
        negated: bool,
        right: Operand,
    },
    In {
        left: Operand,
        ci: bool,
        negated: bool,
        set: Vec<Value>,
    },
}

struct Parser<'a> {
    toks: &'a [Token],
    at: usize,
    columns: &'a [&'a str],
    end: (usize, usize),
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.at);
        self.at += 1;
        t
    }

    fn error_at(&self, t: Option<&Token>, kind: ErrorKind, message: String) -> QueryError {
        match t {
            Some(t) => QueryError {
                kind,
                message,
                line: t.line,
                position: t.pos,
                token: t.text.clone(),
            },
            None => QueryError {
                kind,
                message,
                line: self.end.0,
                position: self.end.1,
                token: "<EOF>".into(),
            },
        }
    }

    fn syntax(&self, t: Option<&Token>, expected: &str) -> QueryError {
        let found = t
            .map(|t| format!("`{}`", t.text))
            .unwrap_or_else(|| "the end of the query".into());
        self.error_at(t, ErrorKind::Syntax, format!("expected {expected}, found {found}"))
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Sym(x), .. }) if *x == s)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(x), .. }) if x == w)
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), QueryError> {
        if self.is_sym(s) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.syntax(self.peek(), &format!("`{s}`")))
        }
    }

    fn query(&mut self) -> Result<Query, QueryError> {
        match self.next() {
            Some(Token { tok: Tok::Ident(t), .. }) if t.eq_ignore_ascii_case("resources") => {}
            t @ Some(Token { tok: Tok::Ident(_), .. }) => {
                return Err(self.error_at(
                    t,
                    ErrorKind::Unsupported,
                    format!(
                        "aks-sim's Resource Graph has the `resources` table only, not `{}`",
                        t.map(|t| t.text.as_str()).unwrap_or_default()
                    ),
                ))
            }
            t => return Err(self.syntax(t, "a table name")),
        }
        let mut operators = vec![];
        while self.peek().is_some() {
            self.expect_sym("|")?;
            operators.push(self.operator()?);
        }
        Ok(Query { operators })
    }

    fn operator(&mut self) -> Result<Operator, QueryError> {
        let t = self.next();
        let Some(Token {
            tok: Tok::Ident(word), ..
        }) = t
        else {
            return Err(self.syntax(t, "a query operator"));
        };
        match word.as_str() {
            "where" => Ok(Operator::Where(self.expr()?)),
            "project" => {
                let mut cols = vec![];
                loop {
                    let mut name = None;
                    if let (Some(Token { tok: Tok::Ident(n), .. }), Some(Token { tok: Tok::Sym("="), .. })) =
                        (self.peek(), self.toks.get(self.at + 1))
                    {
                        name = Some(n.clone());
                        self.at += 2;
                    }
                    let path = self.path()?;
                    let name = name.unwrap_or_else(|| path.default_name());
                    cols.push((name, path));
                    if !self.is_sym(",") {
                        break;
                    }
                    self.at += 1;
                }
                Ok(Operator::Project(cols))
            }
            "order" | "sort" => {
                if !self.is_word("by") {
                    return Err(self.syntax(self.peek(), "`by`"));
                }
                self.at += 1;
                let mut keys = vec![];
                loop {
                    let path = self.path()?;
                    let asc = if self.is_word("asc") {
                        self.at += 1;
                        true
                    } else {
                        if self.is_word("desc") {
                            self.at += 1;
                        }
                        false
                    };
                    keys.push((path, asc));
                    if !self.is_sym(",") {
                        break;
                    }
                    self.at += 1;
                }
                Ok(Operator::OrderBy(keys))
            }
            "limit" | "take" => match self.next() {
                Some(Token { tok: Tok::Int(n), .. }) if *n >= 0 => Ok(Operator::Limit(*n as usize)),
                t => Err(self.syntax(t, "a row count")),
            },
            _ => Err(self.error_at(
                t,
                ErrorKind::Unsupported,
                format!("aks-sim's Resource Graph does not emulate the `{word}` operator (it has where, project, order by, limit)"),
            )),
        }
    }

    fn expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        while self.is_word("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.is_word("not") {
            self.at += 1;
            self.expect_sym("(")?;
            let e = self.expr()?;
            self.expect_sym(")")?;
            return Ok(Expr::Not(Box::new(e)));
        }
        if self.is_sym("(") {
            self.at += 1;
            let e = self.expr()?;
            self.expect_sym(")")?;
            return Ok(e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let left = self.operand()?;
        let t = self.peek();
        // `!` before a word operator (`!contains`, `!in`), `~` after `in`.
        let negated = self.is_sym("!");
        if negated {
            self.at += 1;
        }
        let t2 = self.next();
        let (cmp, negated) = match t2.map(|t| &t.tok) {
            Some(Tok::Sym("==")) if !negated => (Cmp::Eq, false),
            Some(Tok::Sym("!=")) if !negated => (Cmp::Eq, true),
            Some(Tok::Sym("=~")) if !negated => (Cmp::EqCi, false),
            Some(Tok::Sym("!~")) if !negated => (Cmp::EqCi, true),
            Some(Tok::Ident(w)) if w == "contains" => (Cmp::Contains, negated),
            Some(Tok::Ident(w)) if w == "startswith" => (Cmp::StartsWith, negated),
            Some(Tok::Ident(w)) if w == "has" => (Cmp::Has, negated),
            Some(Tok::Ident(w)) if w == "in" => {
                let ci = self.is_sym("~");
                if ci {
                    self.at += 1;
                }
                self.expect_sym("(")?;
                let mut set = vec![];
                loop {
                    match self.operand()? {
                        Operand::Lit(v) => set.push(v),
                        Operand::Path(_) => {
                            return Err(self.error_at(
                                self.toks.get(self.at - 1),
                                ErrorKind::Unsupported,
                                "aks-sim's Resource Graph takes literals only in `in (...)`".into(),
                            ))
                        }
                    }
                    if !self.is_sym(",") {
                        break;
                    }
                    self.at += 1;
                }
                self.expect_sym(")")?;
                return Ok(Expr::In {
                    left,
                    ci,
                    negated,
                    set,
                });
            }
            Some(Tok::Ident(w)) if !negated && is_kql_operator(w) => {
                return Err(self.error_at(
                    t2,
                    ErrorKind::Unsupported,
                    format!("aks-sim's Resource Graph does not emulate `{w}` (it has ==, !=, =~, !~, in, in~, contains, startswith, has)"),
                ))
            }
            Some(Tok::Sym("<" | ">" | "<=" | ">=")) if !negated => {
                return Err(self.error_at(
                    t2,
                    ErrorKind::Unsupported,
                    "aks-sim's Resource Graph does not emulate ordering comparisons (<, >, <=, >=)".into(),
                ))
            }
            _ => {
                return Err(self.syntax(
                    if negated { t } else { t2 },
                    "a comparison (==, !=, =~, !~, in, in~, contains, startswith, has)",
                ))
            }
        };
        let right = self.operand()?;
        Ok(Expr::Compare {
            left,
            cmp,
            negated,
            right,
        })
    }

    fn operand(&mut self) -> Result<Operand, QueryError> {
        match self.peek() {
            Some(Token { tok: Tok::Str(s), .. }) => {
                self.at += 1;
                Ok(Operand::Lit(Value::String(s.clone())))
            }
            Some(Token { tok: Tok::Int(n), .. }) => {
                self.at += 1;
                Ok(Operand::Lit(Value::from(*n)))
            }
            Some(Token { tok: Tok::Ident(w), .. }) if w == "true" || w == "false" => {
                self.at += 1;
                Ok(Operand::Lit(Value::Bool(w == "true")))
            }
            _ => Ok(Operand::Path(self.path()?)),
        }
    }

    fn path(&mut self) -> Result<Path, QueryError> {
        let t = self.next();
        let column = match t {
            Some(Token { tok: Tok::Ident(c), .. }) => c.clone(),
            _ => return Err(self.syntax(t, "a column name")),
        };
        if self.is_sym("(") {
            return Err(self.error_at(
                t,
                ErrorKind::Unsupported,
                format!("aks-sim's Resource Graph does not emulate functions such as `{column}()`"),
            ));
        }
        if !self.columns.contains(&column.as_str()) {
            return Err(self.error_at(
                t,
                ErrorKind::UnknownColumn,
                format!("Failed to resolve scalar expression named '{column}'"),
            ));
        }
        let mut steps = vec![];
        loop {
            if self.is_sym(".") {
                self.at += 1;
                match self.next() {
                    Some(Token { tok: Tok::Ident(k), .. }) => steps.push(Step::Key(k.clone())),
                    t => return Err(self.syntax(t, "a property name")),
                }
            } else if self.is_sym("[") {
                self.at += 1;
                match self.next() {
                    Some(Token { tok: Tok::Str(k), .. }) => steps.push(Step::Key(k.clone())),
                    Some(Token { tok: Tok::Int(n), .. }) if *n >= 0 => steps.push(Step::Index(*n as usize)),
                    t => return Err(self.syntax(t, "a property name or an index")),
                }
                self.expect_sym("]")?;
            } else {
                return Ok(Path { column, steps });
            }
        }
    }
}

/// KQL's other comparison and string operators: KQL aks-sim does not answer.
fn is_kql_operator(w: &str) -> bool {
    matches!(
        w,
        "has"
            | "hasprefix"
            | "hassuffix"
            | "endswith"
            | "matches"
            | "contains_cs"
            | "startswith_cs"
            | "has_any"
            | "has_all"
            | "between"
    )
}

impl Path {
    /// The column a `project` without a name gives it: the path's parts joined by `_`, as Kusto names it.
    fn default_name(&self) -> String {
        let mut name = self.column.clone();
        for s in &self.steps {
            name.push('_');
            match s {
                Step::Key(k) => name.push_str(k),
                Step::Index(i) => name.push_str(&i.to_string()),
            }
        }
        name
    }

    fn get<'v>(&self, row: &'v Value) -> Option<&'v Value> {
        let mut v = row.get(&self.column)?;
        for s in &self.steps {
            v = match s {
                Step::Key(k) => v.get(k)?,
                Step::Index(i) => v.get(*i)?,
            };
        }
        Some(v)
    }
}

/// Parse `src` against a table of `columns`.
pub fn parse(src: &str, columns: &[&str]) -> Result<Query, QueryError> {
    let toks = tokenize(src)?;
    let last_line = src.lines().count().max(1);
    let last_pos = src.lines().last().map(|l| l.chars().count()).unwrap_or(0);
    Parser {
        toks: &toks,
        at: 0,
        columns,
        end: (last_line, last_pos),
    }
    .query()
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn operand<'v>(o: &'v Operand, row: &'v Value) -> Option<&'v Value> {
    match o {
        Operand::Path(p) => p.get(row),
        Operand::Lit(v) => Some(v),
    }
}

fn equal(a: Option<&Value>, b: Option<&Value>, ci: bool) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x == y,
        _ => {
            let (x, y) = (text(a), text(b));
            if ci {
                x.to_lowercase() == y.to_lowercase()
            } else {
                x == y
            }
        }
    }
}

impl Expr {
    fn holds(&self, row: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.holds(row) && b.holds(row),
            Expr::Or(a, b) => a.holds(row) || b.holds(row),
            Expr::Not(e) => !e.holds(row),
            Expr::Compare {
                left,
                cmp,
                negated,
                right,
            } => {
                let (l, r) = (operand(left, row), operand(right, row));
                let yes = match cmp {
                    Cmp::Eq => equal(l, r, false),
                    Cmp::EqCi => equal(l, r, true),
                    Cmp::Contains => text(l).to_lowercase().contains(&text(r).to_lowercase()),
                    Cmp::StartsWith => text(l).to_lowercase().starts_with(&text(r).to_lowercase()),
                    Cmp::Has => has_term(&text(l), &text(r)),
                };
                yes != *negated
            }
            Expr::In { left, ci, negated, set } => {
                let l = operand(left, row);
                set.iter().any(|v| equal(l, Some(v), *ci)) != *negated
            }
        }
    }
}

/// Kusto's `has`: `term` is a whole term of `text` (bounded by characters that are not
/// letters or digits, or the ends), case-insensitively.
fn has_term(text: &str, term: &str) -> bool {
    let (text, term) = (text.to_lowercase(), term.to_lowercase());
    if term.is_empty() {
        return true;
    }
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    text.match_indices(&term)
        .any(|(i, _)| boundary(text[..i].chars().next_back()) && boundary(text[i + term.len()..].chars().next()))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal)
        }
        _ => text(a).cmp(&text(b)),
    }
}

impl Query {
    /// The rows the query gives from `rows` (in their order unless it sorts).
    pub fn run(&self, mut rows: Vec<Value>) -> Vec<Value> {
        for op in &self.operators {
            match op {
                Operator::Where(e) => rows.retain(|r| e.holds(r)),
                Operator::Project(cols) => {
                    rows = rows
                        .into_iter()
                        .map(|r| {
                            let mut out = serde_json::Map::new();
                            for (name, path) in cols {
                                out.insert(name.clone(), path.get(&r).cloned().unwrap_or(Value::Null));
                            }
                            Value::Object(out)
                        })
                        .collect()
                }
                Operator::OrderBy(keys) => rows.sort_by(|a, b| {
                    keys.iter()
                        .map(|(p, asc)| {
                            let o = compare(p.get(a), p.get(b));
                            if *asc {
                                o
                            } else {
                                o.reverse()
                            }
                        })
                        .find(|o| *o != Ordering::Equal)
                        .unwrap_or(Ordering::Equal)
                }),
                Operator::Limit(n) => rows.truncate(*n),
            }
        }
        rows
    }

    /// The columns of the result: the projected ones, or `None` (the table's).
    pub fn projected(&self) -> Option<Vec<String>> {
        self.operators.iter().rev().find_map(|op| match op {
            Operator::Project(cols) => Some(cols.iter().map(|(n, _)| n.clone()).collect()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const COLS: &[&str] = &[
        "id",
        "name",
        "type",
        "resourceGroup",
        "subscriptionId",
        "location",
        "tags",
        "properties",
    ];

    fn rows() -> Vec<Value> {
        vec![
            json!({"id": "/s/1/aks-dev", "name": "aks-dev", "type": "microsoft.containerservice/managedclusters", "resourceGroup": "rg-dev", "subscriptionId": "1", "location": "westeurope", "tags": {"env": "dev", "team": "shop"}, "properties": {"kubernetesVersion": "1.31.5", "agentPoolProfiles": [{"name": "system"}]}}),
            json!({"id": "/s/1/aks-prod", "name": "aks-prod", "type": "microsoft.containerservice/managedclusters", "resourceGroup": "rg-prod", "subscriptionId": "1", "location": "northeurope", "tags": {"env": "prod"}, "properties": {"kubernetesVersion": "1.30.9"}}),
            json!({"id": "/s/2/fleet", "name": "fleet", "type": "microsoft.containerservice/fleets", "resourceGroup": "rg-fleet", "subscriptionId": "2", "location": "westeurope", "tags": null, "properties": {}}),
        ]
    }

    fn names(q: &str) -> Vec<String> {
        let query = parse(q, COLS).unwrap_or_else(|e| panic!("{q}: {e:?}"));
        query
            .run(rows())
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn the_cluster_query_aks_patch_sends_selects_by_type_tag_group_and_name() {
        assert_eq!(
            names("resources | where type =~ 'Microsoft.ContainerService/managedClusters' | project id, name, resourceGroup, subscriptionId, location, tags"),
            ["aks-dev", "aks-prod"]
        );
        assert_eq!(
            names(
                "Resources | where type =~ 'microsoft.containerservice/managedclusters' | where tags['env'] == 'prod'"
            ),
            ["aks-prod"]
        );
        assert_eq!(
            names("resources | where tags.env == 'dev' and tags['team'] == 'shop'"),
            ["aks-dev"]
        );
        assert_eq!(
            names("resources | where (name =~ 'AKS-DEV' or name =~ 'fleet')"),
            ["aks-dev", "fleet"]
        );
        assert_eq!(
            names("resources | where resourceGroup in~ ('RG-PROD', 'rg-fleet')"),
            ["aks-prod", "fleet"]
        );
        assert_eq!(
            names("resources | where resourceGroup in ('RG-PROD', 'rg-fleet')"),
            ["fleet"]
        );
        assert_eq!(
            names("resources | where resourceGroup !in ('rg-prod')"),
            ["aks-dev", "fleet"]
        );
    }

    #[test]
    fn case_sensitivity_follows_kusto() {
        assert!(names("resources | where name == 'AKS-DEV'").is_empty());
        assert_eq!(names("resources | where name =~ 'AKS-DEV'"), ["aks-dev"]);
        assert_eq!(
            names("resources | where name !~ 'AKS-DEV' and name != 'fleet'"),
            ["aks-prod"]
        );
        assert_eq!(names("resources | where name contains 'PRO'"), ["aks-prod"]);
        assert_eq!(names("resources | where name !contains 'aks'"), ["fleet"]);
        assert_eq!(
            names("resources | where location startswith 'WEST'"),
            ["aks-dev", "fleet"]
        );
        assert_eq!(names("resources | where not(location startswith 'west')"), ["aks-prod"]);
    }

    #[test]
    fn has_matches_whole_terms() {
        assert_eq!(names("resources | where name has 'DEV'"), ["aks-dev"]);
        assert!(
            names("resources | where name has 'de'").is_empty(),
            "not part of a term"
        );
        assert_eq!(names("resources | where name !has 'aks'"), ["fleet"]);
        assert_eq!(
            names("resources | where type has 'microsoft.containerservice/fleets'"),
            ["fleet"]
        );
    }

    #[test]
    fn a_missing_value_compares_as_empty() {
        assert_eq!(names("resources | where tags['env'] != 'prod'"), ["aks-dev", "fleet"]);
        assert_eq!(names("resources | where tags['env'] == ''"), ["fleet"]);
    }

    #[test]
    fn properties_paths_project_order_and_limit() {
        assert_eq!(
            names("resources | where properties.kubernetesVersion == '1.30.9'"),
            ["aks-prod"]
        );
        assert_eq!(
            names("resources | where properties.agentPoolProfiles[0].name == 'system'"),
            ["aks-dev"]
        );
        assert_eq!(
            names("resources | order by name"),
            ["fleet", "aks-prod", "aks-dev"],
            "desc by default"
        );
        assert_eq!(
            names("resources | sort by location asc, name desc | take 2"),
            ["aks-prod", "fleet"]
        );
        let q = parse(
            "resources | project cluster = name, properties.kubernetesVersion | limit 1",
            COLS,
        )
        .unwrap();
        assert_eq!(
            q.run(rows()),
            [json!({"cluster": "aks-dev", "properties_kubernetesVersion": "1.31.5"})]
        );
        assert_eq!(
            q.projected(),
            Some(vec!["cluster".to_string(), "properties_kubernetesVersion".to_string()])
        );
    }

    #[test]
    fn escapes_in_strings_are_read_as_kusto_reads_them() {
        let q = parse(r"resources | where name == 'it\'s \\ here'", COLS).unwrap();
        let Operator::Where(Expr::Compare { right, .. }) = &q.operators[0] else {
            panic!("{q:?}")
        };
        assert_eq!(*right, Operand::Lit(json!(r"it's \ here")));
        // An injected quote stays inside the literal.
        assert!(names(r"resources | where tags['env'] == 'prod\' or 1==1 | project secrets //'").is_empty());
    }

    #[test]
    fn what_is_outside_the_subset_is_refused_with_its_position() {
        let e = parse("resources | summarize count() by type", COLS).unwrap_err();
        assert_eq!(
            (e.kind, e.line, e.position, e.token.as_str()),
            (ErrorKind::Unsupported, 1, 12, "summarize")
        );
        let e = parse("resources\n| where name endswith 'x'", COLS).unwrap_err();
        assert_eq!((e.kind, e.line, e.position), (ErrorKind::Unsupported, 2, 13));
        let e = parse("resources | where tolower(name) == 'x'", COLS).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let e = parse("resourcecontainers | limit 1", COLS).unwrap_err();
        assert_eq!((e.kind, e.position), (ErrorKind::Unsupported, 0));
        let e = parse("resources | where nosuch == 'x'", COLS).unwrap_err();
        assert_eq!(
            (e.kind, e.position, e.token.as_str()),
            (ErrorKind::UnknownColumn, 18, "nosuch")
        );
    }

    #[test]
    fn syntax_errors_name_where_they_are() {
        let e = parse("resources | where name == 'x", COLS).unwrap_err();
        assert_eq!((e.kind, e.position), (ErrorKind::Syntax, 26));
        let e = parse("resources | where (name == 'x'", COLS).unwrap_err();
        assert_eq!((e.kind, e.token.as_str()), (ErrorKind::Syntax, "<EOF>"));
        let e = parse("resources where name == 'x'", COLS).unwrap_err();
        assert_eq!((e.kind, e.position, e.token.as_str()), (ErrorKind::Syntax, 10, "where"));
        let e = parse("resources | where name == ", COLS).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Syntax);
        let e = parse("resources | limit x", COLS).unwrap_err();
        assert_eq!((e.kind, e.token.as_str()), (ErrorKind::Syntax, "x"));
    }
}
