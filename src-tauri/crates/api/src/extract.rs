//! Extractors whose rejections are `{code, message}` like every other error: malformed
//! JSON, a wrong content type, an oversized body or a bad query string get a clear 4xx
//! that says what was wrong and where: 400 `malformed_json` for a body that is not JSON,
//! 422 `invalid_request` for JSON of the wrong shape, 415 for another content type, 413
//! beyond [`crate::MAX_BODY_BYTES`], 400 `invalid_query` for a query string that does not
//! parse.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::{Path, Segment};

use crate::error::ApiError;

/// `Json<T>` with API-shaped rejections.
///
/// The body is read in two steps so that each failure gets the right status: first as any
/// JSON value (not JSON at all: 400 `malformed_json`), then as `T` (valid JSON of the
/// wrong shape or type, an enum field given an object included: 422 `invalid_request`
/// naming the field). A whole number written as a float (`1.0`) is accepted where an
/// integer is expected.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Content type, size limit and syntax: axum's checks, with our rejections.
        match axum::Json::<Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => from_value(value).map(ApiJson),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// A JSON body read without the `Content-Type` check (for bodies that may be empty): 400
/// `malformed_json` when it is not JSON, else as [`from_value`].
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("Failed to parse the request body as JSON: {e}"),
        )
    })?;
    from_value(value)
}

/// Most whole-number floats one body may have turned into integers.
const MAX_COERCIONS: usize = 64;

/// A JSON value as `T`: 422 `invalid_request` naming the field (`constraints.max_agents:
/// invalid type: …`) when it does not fit. A field that wants an integer and got a whole
/// number written as a float (`1.0`, `1e3`) gets the integer: JSON does not tell them
/// apart, and neither does JSON Schema's `integer`.
pub(crate) fn from_value<T: DeserializeOwned>(mut value: Value) -> Result<T, ApiError> {
    // Every body of this API is an object. serde would also read a struct from an array
    // of its fields in order (`[]` for one whose fields all have defaults): refused.
    if value.is_array() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "invalid body: expected a JSON object, found an array",
        ));
    }
    let mut error = match serde_path_to_error::deserialize::<_, T>(&value) {
        Ok(parsed) => return Ok(parsed),
        Err(error) => error,
    };
    // Each round turns the float the error points at into its integer and tries again; if
    // that fails at the same place, the integer was not the problem: the error is reported
    // as the client wrote it.
    for _ in 0..MAX_COERCIONS {
        let path = error.path().clone();
        let Some(slot) = value_at_mut(&mut value, &path) else {
            break;
        };
        let Some(integer) = whole_number(slot) else {
            break;
        };
        *slot = integer;
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(parsed) => return Ok(parsed),
            Err(again) if again.path().to_string() == path.to_string() => break,
            Err(again) => error = again,
        }
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
        format!("Failed to deserialize the JSON body into the target type: {error}"),
    ))
}

/// The value at `path` (object keys and array indexes only).
fn value_at_mut<'a>(value: &'a mut Value, path: &Path) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |value, segment| match segment {
        Segment::Map { key } => value.as_object_mut()?.get_mut(key),
        Segment::Seq { index } => value.as_array_mut()?.get_mut(*index),
        Segment::Enum { .. } | Segment::Unknown => None,
    })
}

/// The integer equal to `value`, when it is a float with a whole value in the range of
/// `i64` or `u64`.
fn whole_number(value: &Value) -> Option<Value> {
    let number = value.as_number().filter(|n| n.is_f64())?.as_f64()?;
    // -2^63 and 2^64 are exact as floats; whole numbers between fit the integer types.
    const MIN: f64 = -9_223_372_036_854_775_808.0;
    const END: f64 = 18_446_744_073_709_551_616.0;
    if number.fract() != 0.0 || !(MIN..END).contains(&number) {
        return None;
    }
    Some(if number >= 0.0 {
        Value::from(number as u64)
    } else {
        Value::from(number as i64)
    })
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", text)
        }
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", text)
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body is larger than the {} byte limit",
                crate::MAX_BODY_BYTES
            ),
        ),
        _ => ApiError::new(status, "invalid_body", text),
    }
}

/// `Query<T>` with API-shaped rejections.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    rejection.body_text(),
                ))
            }
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "invalid_query",
                rejection.body_text(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::body::Body;
    use serde::Deserialize;
    use sutazai_core::Priority;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body_ {
        name: String,
        #[serde(default)]
        priority: Priority,
        ttl_seconds: Option<u64>,
        #[serde(default)]
        limits: Vec<u32>,
        #[serde(default)]
        payload: BTreeMap<String, Value>,
    }

    async fn extract(content_type: Option<&str>, body: &str) -> Result<Body_, ApiError> {
        let mut request = Request::builder().method("POST").uri("/");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Body::from(body.to_owned())).unwrap();
        ApiJson::<Body_>::from_request(request, &())
            .await
            .map(|ApiJson(b)| b)
    }

    async fn refused(body: &str) -> (StatusCode, &'static str, String) {
        let e = extract(Some("application/json"), body).await.unwrap_err();
        (e.status, e.code, e.message)
    }

    #[tokio::test]
    async fn syntax_errors_are_400_and_shape_errors_422_naming_the_field() {
        let (status, code, _) = refused(r#"{"name": "#).await;
        assert_eq!((status, code), (StatusCode::BAD_REQUEST, "malformed_json"));
        let (status, code, _) = refused(r#"{"name": "n"} x"#).await;
        assert_eq!((status, code), (StatusCode::BAD_REQUEST, "malformed_json"));
        // Valid JSON, wrong type for an enum field: the shape is wrong, not the syntax.
        for body in [
            r#"{"name": "n", "priority": {}}"#,
            r#"{"name": "n", "priority": []}"#,
            r#"{"name": "n", "priority": 3}"#,
            r#"{"name": "n", "priority": "urgent"}"#,
        ] {
            let (status, code, message) = refused(body).await;
            assert_eq!(
                (status, code),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
                "{body}"
            );
            assert!(message.contains("priority"), "{body}: {message}");
        }
        let (status, code, message) = refused(r#"{"name": 5}"#).await;
        assert_eq!(
            (status, code),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
        );
        assert!(message.contains("name: invalid type"), "{message}");
        let (_, _, message) = refused(r#"{"name": "n", "limits": [1, "x"]}"#).await;
        assert!(message.contains("limits[1]"), "{message}");
        let (status, _, message) = refused(r#"{"name": "n", "colour": 1}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("colour"), "{message}");
        let (status, _, message) = refused(r#"[]"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
    }

    #[tokio::test]
    async fn content_type_is_checked() {
        let e = extract(None, r#"{"name": "n"}"#).await.unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        );
        let e = extract(Some("text/plain"), r#"{"name": "n"}"#)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let ok = extract(Some("application/json; charset=utf-8"), r#"{"name": "n"}"#).await;
        assert_eq!(ok.map(|b| b.name).ok().as_deref(), Some("n"));
    }

    #[tokio::test]
    async fn whole_floats_are_integers_where_integers_are_expected() {
        let body = extract(
            Some("application/json"),
            r#"{"name": "n", "ttl_seconds": 1.0, "limits": [2.0, 3, 4e1], "payload": {"x": 1.0}}"#,
        )
        .await
        .unwrap();
        assert_eq!(body.ttl_seconds, Some(1));
        assert_eq!(body.limits, [2, 3, 40]);
        // Only fields that need an integer change: free-form content keeps its float.
        assert_eq!(body.payload["x"], serde_json::json!(1.0));
        // Fractions and out-of-range numbers are still refused, as written.
        for (body, shown) in [
            (r#"{"name": "n", "ttl_seconds": 1.5}"#, "1.5"),
            (r#"{"name": "n", "ttl_seconds": -1.0}"#, "-1"),
            (r#"{"name": "n", "limits": [1e10]}"#, "10000000000"),
            (r#"{"name": "n", "ttl_seconds": 1e300}"#, "1e+300"),
        ] {
            let (status, code, message) = refused(body).await;
            assert_eq!(
                (status, code),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
                "{body}"
            );
            assert!(message.contains(shown), "{body}: {message}");
        }
        // A float where a string is expected is reported as the client wrote it.
        let (_, _, message) = refused(r#"{"name": 2.0}"#).await;
        assert!(message.contains("floating point `2.0`"), "{message}");
    }

    #[test]
    fn optional_bodies() {
        assert_eq!(
            from_slice::<Option<Vec<u8>>>(b"null").ok(),
            Some(None::<Vec<u8>>)
        );
        let e = from_slice::<Vec<u8>>(b"[1,").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "malformed_json")
        );
        let e = from_slice::<Vec<u8>>(b"[\"a\"]").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
        );
        // A struct is not read from an array of its fields (serde would).
        #[derive(Debug, Default, Deserialize)]
        struct AllOptional {
            #[serde(default)]
            _token: Option<String>,
        }
        for body in [&b"[]"[..], b"[\"x\"]"] {
            let e = from_slice::<Option<AllOptional>>(body).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
            );
            assert!(e.message.contains("found an array"), "{}", e.message);
        }
    }
}
