//! What a request asks for besides its path: the rendering it accepts (JSON, a Table,
//! PartialObjectMetadata), its query parameters, `dryRun` and the body's media type.

use super::*;

/// How the client wants objects rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Table {
        version: &'static str,
        include: IncludeObject,
    },
    Meta {
        version: &'static str,
    },
}

pub(super) fn negotiate(headers: &HeaderMap, q: &Query) -> Output {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let ty = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut as_, mut v, mut g) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = x,
                Some(("v", x)) => v = x,
                Some(("g", x)) => g = x,
                _ => {}
            }
        }
        let version = if v == "v1beta1" { "v1beta1" } else { "v1" };
        if ty != "application/json" && ty != "*/*" && ty != "application/*" {
            continue;
        }
        match as_ {
            "" => return Output::Json,
            "Table" if g == "meta.k8s.io" => {
                return Output::Table {
                    version,
                    include: IncludeObject::parse(q.get("includeObject")),
                }
            }
            "PartialObjectMetadata" | "PartialObjectMetadataList" if g == "meta.k8s.io" => {
                return Output::Meta { version }
            }
            _ => continue,
        }
    }
    Output::Json
}

/// Query parameters in order.
pub struct Query(pub(crate) Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(uri: &axum::http::Uri) -> Result<Query, ApiError> {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    pub(super) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }

    pub(super) fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{k}: `{v}` is not an integer"))),
        }
    }

    /// `?dryRun=All`; any other value is refused as the API server refuses it.
    pub(super) fn dry_run(&self) -> bool {
        self.0.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }

    /// The `dryRun` query values, checked (`All` is the only one there is).
    pub(super) fn check_dry_run(&self, options_kind: &str) -> Result<(), ApiError> {
        let values: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.as_str())
            .collect();
        check_dry_run_values(&values, options_kind)
    }
}

/// `dryRun` may only hold `All` (the API server's ValidateDryRun).
pub(super) fn check_dry_run_values(values: &[&str], options_kind: &str) -> Result<(), ApiError> {
    if values.iter().all(|v| *v == "All") {
        return Ok(());
    }
    let list = values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ");
    let why = format!("Unsupported value: []string{{{list}}}: supported values: \"All\"");
    Err(ApiError::new(
        422,
        "Invalid",
        format!("{options_kind}.meta.k8s.io \"\" is invalid: dryRun: {why}"),
    )
    .with_details(json!({
        "group": "meta.k8s.io", "kind": options_kind,
        "causes": [{"reason": "FieldValueNotSupported", "message": why, "field": "dryRun"}],
    })))
}

/// `dryRun` in a DeleteOptions body (also an Eviction's `deleteOptions`): true for `["All"]`.
pub fn body_dry_run(options: &Value) -> Result<bool, ApiError> {
    match &options["dryRun"] {
        Value::Null => Ok(false),
        Value::Array(a) => {
            let values: Vec<&str> = a.iter().map(|v| v.as_str().unwrap_or("")).collect();
            check_dry_run_values(&values, "DeleteOptions")?;
            Ok(!values.is_empty())
        }
        _ => Err(ApiError::bad_request(
            "the DeleteOptions body is not valid: dryRun must be a list of strings",
        )),
    }
}

pub(super) fn check_json_body(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "application/json" || mime.is_empty() || mime == "*/*" {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(ct))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let q = Query(vec![]);
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            negotiate(&h, &q),
            Output::Table {
                version: "v1",
                include: IncludeObject::Metadata
            }
        );
        h.insert(
            header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(negotiate(&h, &q), Output::Json);
        h.insert(
            header::ACCEPT,
            "application/vnd.kubernetes.protobuf, */*".parse().unwrap(),
        );
        assert_eq!(negotiate(&h, &q), Output::Json);
    }
}
