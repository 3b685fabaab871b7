//! Request bodies: JSON objects or OAuth2 forms, read under the body limit and
//! checked field by field into FastAPI-shaped 422 errors. Routes take typed bodies
//! (`JsonBody<T>`, `FormOrJsonBody<T>`, `OptionalJsonBody<T>`) whose `T` says how it
//! is read ([`FromFields`]) and what it looks like in the OpenAPI document.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value, json};

use crate::http::error::{ApiError, FieldError};

/// Bodies larger than this are answered 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The fields of a body, whichever encoding it came in.
#[derive(Debug, Default)]
pub struct Fields(Map<String, Value>);

/// A body type: read out of checked fields, every problem collected into one 422.
pub trait FromFields: Sized {
    /// Read `Self`; `None` only after `c` has recorded why.
    fn from_fields(c: &mut Checker<'_>) -> Option<Self>;
}

/// Read a `T` out of `fields`, or every problem with them.
pub(crate) fn read_fields<T: FromFields>(fields: &Fields) -> Result<T, ApiError> {
    let mut c = Checker::new(fields);
    let value = T::from_fields(&mut c);
    c.finish()?;
    value.ok_or_else(|| ApiError::internal("a body reader refused without saying why"))
}

/// A JSON object body (`Content-Type: application/json`, or none at all) read as `T`.
pub struct JsonBody<T>(pub T);

/// An empty body, or a JSON object read as `T`.
pub struct OptionalJsonBody<T>(pub Option<T>);

/// A JSON object, an `application/x-www-form-urlencoded` form (OAuth2 password grant)
/// or a multipart form, read as `T`.
pub struct FormOrJsonBody<T>(pub T);

struct JsonFields(Fields);
struct OptionalJsonFields(Option<Fields>);
struct FormOrJsonFields(Fields);

impl<S: Send + Sync, T: FromFields> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonFields(fields) = JsonFields::from_request(req, state).await?;
        read_fields(&fields).map(Self)
    }
}

impl<S: Send + Sync, T: FromFields> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match OptionalJsonFields::from_request(req, state).await? {
            OptionalJsonFields(Some(fields)) => read_fields(&fields).map(|t| Self(Some(t))),
            OptionalJsonFields(None) => Ok(Self(None)),
        }
    }
}

impl<S: Send + Sync, T: FromFields> FromRequest<S> for FormOrJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let FormOrJsonFields(fields) = FormOrJsonFields::from_request(req, state).await?;
        read_fields(&fields).map(Self)
    }
}

/// Whether a request's body is an `application/x-www-form-urlencoded` form (the pages
/// and the provider's routes that take only forms read it themselves).
pub fn is_form(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

enum Encoding {
    Json,
    Form,
    /// `multipart/form-data` (browsers' `FormData`), with its boundary.
    Multipart(String),
}

fn encoding(req: &Request) -> Result<Option<Encoding>, ApiError> {
    let Some(ct) = req.headers().get(CONTENT_TYPE) else {
        return Ok(None);
    };
    let mime = ct
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(Some(Encoding::Json))
    } else if mime == "application/x-www-form-urlencoded" {
        Ok(Some(Encoding::Form))
    } else if mime == "multipart/form-data" {
        let raw = ct.to_str().unwrap_or_default();
        multer::parse_boundary(raw)
            .map(|b| Some(Encoding::Multipart(b)))
            .map_err(|_| ApiError::UnsupportedMediaType("multipart/form-data needs a boundary parameter"))
    } else {
        Err(ApiError::UnsupportedMediaType(
            "Unsupported Content-Type: send application/json (or a form where the route takes one)",
        ))
    }
}

/// How much of an over-limit body is read and thrown away before the 413 is sent.
/// Closing a connection whose request is still arriving makes the client's kernel see
/// a reset, and many clients then report the reset instead of our answer; reading the
/// rest (up to this much) lets them read the 413 and keep the connection.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// ...for at most this long.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

fn unreadable_body() -> ApiError {
    ApiError::Validation(vec![FieldError {
        loc: vec![json!("body")],
        msg: "The request body could not be read".into(),
        kind: "body_read",
    }])
}

/// Read and discard what remains of `body`, up to `budget` bytes and `DRAIN_TIME`.
async fn drain(mut body: axum::body::BodyDataStream, budget: usize) {
    use futures_util::StreamExt as _;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut left = budget;
        while let Some(Ok(chunk)) = body.next().await {
            left = match left.checked_sub(chunk.len()) {
                Some(l) => l,
                None => return,
            };
        }
    })
    .await;
}

async fn read_bytes<S: Send + Sync>(req: Request, _state: &S) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt as _;
    let limit = BODY_LIMIT;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A client that sent `Expect: 100-continue` waits for our word before sending the
    // body: refused now, it never sends it.
    let waits_to_send = req
        .headers()
        .get(axum::http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut body = req.into_body().into_data_stream();
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        if !waits_to_send && n <= DRAIN_LIMIT as u64 {
            drain(body, DRAIN_LIMIT).await;
        }
        return Err(ApiError::PayloadTooLarge);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| unreadable_body())?;
        if bytes.len() + chunk.len() > limit {
            drain(body, DRAIN_LIMIT.saturating_sub(bytes.len() + chunk.len())).await;
            return Err(ApiError::PayloadTooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}

pub(crate) fn parse_json(bytes: &[u8]) -> Result<Fields, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Fields(map)),
        Ok(_) => Err(ApiError::Validation(vec![FieldError {
            loc: vec![json!("body")],
            msg: "Input should be a valid dictionary or object to extract fields from".into(),
            kind: "model_attributes_type",
        }])),
        Err(e) => Err(ApiError::Validation(vec![FieldError {
            loc: vec![json!("body"), json!(e.column())],
            msg: "JSON decode error".into(),
            kind: "json_invalid",
        }])),
    }
}

/// A form body that is really JSON (`curl -d '{...}'` sends it as a form): say so,
/// instead of answering "Field required" for fields that were sent.
fn json_sent_as_form(bytes: &[u8]) -> bool {
    let trimmed = bytes.trim_ascii_start();
    trimmed.starts_with(b"{") || trimmed.starts_with(b"[")
}

const JSON_WITHOUT_CONTENT_TYPE: ApiError = ApiError::UnsupportedMediaType(
    "The body is JSON but its Content-Type is not: send it with Content-Type: application/json",
);

/// Text fields of a multipart form; the first value of a repeated field wins.
async fn parse_multipart(bytes: Bytes, boundary: String) -> Result<Fields, ApiError> {
    let bad = || {
        ApiError::Validation(vec![FieldError {
            loc: vec![json!("body")],
            msg: "The multipart body could not be decoded".into(),
            kind: "form_invalid",
        }])
    };
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut map = Map::new();
    while let Some(field) = multipart.next_field().await.map_err(|_| bad())? {
        let name = field.name().map(str::to_owned);
        let text = field.text().await.map_err(|_| bad())?;
        if let Some(name) = name {
            map.entry(name).or_insert(Value::String(text));
        }
    }
    Ok(Fields(map))
}

pub(crate) fn parse_form(bytes: &[u8]) -> Result<Fields, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).map_err(|_| {
        ApiError::Validation(vec![FieldError {
            loc: vec![json!("body")],
            msg: "The form body could not be decoded".into(),
            kind: "form_invalid",
        }])
    })?;
    let mut map = Map::new();
    for (k, v) in pairs {
        // The first value of a repeated field wins, as with Starlette's form parser.
        map.entry(k).or_insert(Value::String(v));
    }
    Ok(Fields(map))
}

impl<S: Send + Sync> FromRequest<S> for JsonFields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match encoding(&req)? {
            Some(Encoding::Json) | None => {}
            Some(Encoding::Form | Encoding::Multipart(_)) => {
                return Err(ApiError::UnsupportedMediaType("This route takes a JSON body"));
            }
        }
        let bytes = read_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(missing_body());
        }
        parse_json(&bytes).map(JsonFields)
    }
}

impl<S: Send + Sync> FromRequest<S> for OptionalJsonFields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match encoding(&req)? {
            Some(Encoding::Json) | None => {}
            Some(Encoding::Form | Encoding::Multipart(_)) => {
                return Err(ApiError::UnsupportedMediaType("This route takes a JSON body"));
            }
        }
        let bytes = read_bytes(req, state).await?;
        // No body, or JSON `null` (an optional body left out, as FastAPI reads it). A
        // body of blanks is neither: FastAPI parses it, and refuses it (422).
        if bytes.is_empty() || bytes.trim_ascii() == b"null" {
            return Ok(Self(None));
        }
        parse_json(&bytes).map(|f| Self(Some(f)))
    }
}

impl<S: Send + Sync> FromRequest<S> for FormOrJsonFields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let enc = encoding(&req)?;
        let bytes = read_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(missing_body());
        }
        match enc {
            Some(Encoding::Form) if json_sent_as_form(&bytes) => Err(JSON_WITHOUT_CONTENT_TYPE),
            Some(Encoding::Form) => parse_form(&bytes).map(Self),
            Some(Encoding::Multipart(boundary)) => parse_multipart(bytes, boundary).await.map(Self),
            Some(Encoding::Json) | None => parse_json(&bytes).map(Self),
        }
    }
}

fn missing_body() -> ApiError {
    ApiError::Validation(vec![FieldError {
        loc: vec![json!("body")],
        msg: "Field required".into(),
        kind: "missing",
    }])
}

/// Pulls typed fields out of a body, collecting every problem so the client sees
/// them all in one 422.
pub struct Checker<'a> {
    fields: &'a Fields,
    errors: Vec<FieldError>,
}

impl<'a> Checker<'a> {
    pub fn new(fields: &'a Fields) -> Self {
        Self {
            fields,
            errors: Vec::new(),
        }
    }

    /// A required string field, owned.
    pub fn owned(&mut self, name: &str) -> Option<String> {
        self.string(name).map(str::to_owned)
    }

    /// A required string field.
    pub fn string(&mut self, name: &str) -> Option<&'a str> {
        match self.fields.0.get(name) {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::body(name, "Field required", "missing"));
                None
            }
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.errors
                    .push(FieldError::body(name, "Input should be a valid string", "string_type"));
                None
            }
        }
    }

    /// An optional string field (absent or null is `None`).
    pub fn optional_string(&mut self, name: &str) -> Option<&'a str> {
        match self.fields.0.get(name) {
            None | Some(Value::Null) => None,
            Some(_) => self.string(name),
        }
    }

    /// A required string field, then parsed by `parse` (its error becomes the `msg`).
    pub fn parsed<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Result<T, &'static str>) -> Option<T> {
        let raw = self.string(name)?;
        match parse(raw) {
            Ok(v) => Some(v),
            Err(msg) => {
                self.errors.push(FieldError::body(name, msg, "value_error"));
                None
            }
        }
    }

    /// An optional string field, parsed by `parse` when present (its error becomes the
    /// `msg`).
    pub fn optional_parsed<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Result<T, &'static str>) -> Option<T> {
        match self.fields.0.get(name) {
            None | Some(Value::Null) => None,
            Some(_) => self.parsed(name, parse),
        }
    }

    /// A required JSON object field (a WebAuthn credential: checked by its reader).
    pub fn object(&mut self, name: &str) -> Option<Value> {
        match self.fields.0.get(name) {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::body(name, "Field required", "missing"));
                None
            }
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => {
                self.errors.push(FieldError::body(
                    name,
                    "Input should be a valid dictionary",
                    "dict_type",
                ));
                None
            }
        }
    }

    /// An optional JSON object field (absent or null is `None`).
    pub fn optional_object(&mut self, name: &str) -> Option<Value> {
        match self.fields.0.get(name) {
            None | Some(Value::Null) => None,
            Some(_) => self.object(name),
        }
    }

    /// An optional boolean field.
    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        match self.fields.0.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.errors
                    .push(FieldError::body(name, "Input should be a valid boolean", "bool_type"));
                None
            }
        }
    }

    /// An optional list of strings, each parsed by `parse`.
    pub fn optional_list<T>(&mut self, name: &str, parse: impl Fn(&str) -> Result<T, &'static str>) -> Option<Vec<T>> {
        let items = match self.fields.0.get(name) {
            None | Some(Value::Null) => return None,
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.errors
                    .push(FieldError::body(name, "Input should be a valid list", "list_type"));
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        let before = self.errors.len();
        for (i, item) in items.iter().enumerate() {
            let loc = vec![json!("body"), json!(name), json!(i)];
            match item.as_str().map(&parse) {
                Some(Ok(v)) => out.push(v),
                Some(Err(msg)) => self.errors.push(FieldError {
                    loc,
                    msg: msg.into(),
                    kind: "value_error",
                }),
                None => self.errors.push(FieldError {
                    loc,
                    msg: "Input should be a valid string".into(),
                    kind: "string_type",
                }),
            }
        }
        (self.errors.len() == before).then_some(out)
    }

    /// A required list of strings, each parsed by `parse`.
    pub fn list<T>(&mut self, name: &str, parse: impl Fn(&str) -> Result<T, &'static str>) -> Option<Vec<T>> {
        if matches!(self.fields.0.get(name), None | Some(Value::Null)) {
            self.errors.push(FieldError::body(name, "Field required", "missing"));
            return None;
        }
        self.optional_list(name, parse)
    }

    /// Refuse every field not in `allowed` (where silently ignoring one could mislead).
    pub fn forbid_others(&mut self, allowed: &[&str]) {
        for key in self.fields.0.keys() {
            if !allowed.contains(&key.as_str()) {
                self.errors.push(FieldError::body(
                    key,
                    "Extra inputs are not permitted",
                    "extra_forbidden",
                ));
            }
        }
    }

    /// Record a problem found by the caller.
    pub fn fail(&mut self, name: &str, msg: &'static str, kind: &'static str) {
        self.errors.push(FieldError::body(name, msg, kind));
    }

    /// `Err` with every problem found, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_collects_every_problem() {
        let f = parse_json(br#"{"a": 1, "c": "x"}"#).unwrap();
        let mut c = Checker::new(&f);
        assert_eq!(c.string("a"), None);
        assert_eq!(c.string("b"), None);
        assert_eq!(c.string("c"), Some("x"));
        assert_eq!(c.optional_string("d"), None);
        let Err(ApiError::Validation(errs)) = c.finish() else {
            panic!("expected a validation error")
        };
        let kinds: Vec<_> = errs.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["string_type", "missing"]);
        assert_eq!(errs[1].loc, vec![json!("body"), json!("b")]);
    }

    #[test]
    fn json_in_a_form_is_recognised() {
        assert!(json_sent_as_form(br#" {"username":"a"}"#));
        assert!(!json_sent_as_form(b"username=a&password=b"));
    }

    #[tokio::test]
    async fn multipart_text_fields() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalzy\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\ns3cret pw\r\n--XyZ--\r\n";
        let f = parse_multipart(Bytes::from(body), "XyZ".into()).await.unwrap();
        let mut c = Checker::new(&f);
        assert_eq!(c.string("username"), Some("alzy"));
        assert_eq!(c.string("password"), Some("s3cret pw"));
        assert!(parse_multipart(Bytes::from("garbage"), "XyZ".into()).await.is_err());
    }

    #[test]
    fn json_must_be_an_object() {
        assert!(parse_json(b"[1,2]").is_err());
        assert!(parse_json(b"{broken").is_err());
        assert!(parse_form(b"username=a&password=b%20c").is_ok());
    }
}
