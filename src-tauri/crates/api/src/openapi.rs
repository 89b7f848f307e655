//! The OpenAPI document served at `/openapi.json`, generated from the handlers'
//! annotations so it cannot drift from the routes.
//!
//! Two modifiers complete what the annotations say route by route:
//! - [`BearerAuth`]: the security schemes;
//! - [`ErrorResponses`]: the errors every operation can answer (bad JSON or query, 401
//!   and 403 where [`auth::policy`] asks for a role, 404 for a path naming nothing, a
//!   `default` for the rest) and `security: []` on public operations, from the same
//!   policy table the guard uses.
//!
//! Then [`constrain`] adds, to the document as JSON, the rules the registry, the
//! orchestrator and the monitor enforce on their types' fields (patterns, lengths, ranges)
//! that those crates' schemas do not state, the cross-field rules JSON Schema can say,
//! and the update bodies whose `id` comes from the path.

use axum::Json;
use axum::http::Method;
use serde_json::{Value, json};
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{
    AnyOfBuilder, KnownFormat, Object, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

use crate::{auth, infra, messages, monitoring, routes, settings, setup};

/// A string schema that takes one of `values` (for `schema_with`).
pub(crate) fn string_enum(values: &[&str]) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// A date-time string, or an empty one for none (for `schema_with` on query parameters
/// read by `routes::parse_date`).
pub(crate) fn date_time() -> utoipa::openapi::Schema {
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([""])),
        )
        .build()
        .into()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SutazAI API",
        description = "Local control plane for AI agents: the system description's REST API"
    ),
    paths(
        routes::health,
        routes::status,
        routes::list_agents,
        routes::get_agent,
        routes::create_agent,
        routes::put_agent,
        routes::delete_agent,
        routes::agent_definition,
        settings::get_settings,
        settings::put_settings,
        routes::control_agent,
        routes::submit_task,
        routes::list_tasks,
        routes::get_task,
        routes::cancel_task,
        routes::approve_task,
        messages::send_message,
        messages::broadcast_message,
        messages::list_dead_letters,
        messages::get_dead_letter,
        messages::replay_dead_letter,
        messages::delete_dead_letter,
        messages::purge_dead_letters,
        messages::workers,
        infra::status,
        infra::deploy_all,
        infra::control_service,
        infra::logs,
        infra::stats,
        infra::pull,
        routes::analytics,
        routes::pause,
        setup::doctor,
        setup::pull_model,
        routes::resume,
        monitoring::list_alerts,
        monitoring::acknowledge_alert,
        monitoring::set_rule,
        monitoring::host,
        monitoring::series,
        monitoring::series_catalogue,
        auth::sign_in,
        auth::refresh,
        auth::revoke,
        auth::whoami,
        auth::list_keys,
        auth::create_key,
        auth::revoke_key,
        auth::audit,
        auth::verify_audit,
    ),
    modifiers(&BearerAuth, &ErrorResponses),
    security(("bearer" = []), ("api_key" = [])),
    components(schemas(
        crate::error::ErrorBody,
        routes::AgentList,
        routes::Controlled,
        routes::TaskList,
        routes::Cancelled,
        routes::Approved,
        routes::Paused,
        monitoring::AlertList,
        monitoring::HostAnswer,
        infra::Logs,
        auth::SignIn,
        auth::Refresh,
        auth::Revoke,
        auth::TokenAnswer,
        auth::NewKey,
        setup::PullModel,
        sutazai_core::TaskRequest,
        sutazai_core::Task,
        sutazai_core::Step,
        sutazai_core::Message,
        messages::SendRequest,
        messages::Sent,
        messages::DeadLetterList,
        messages::Replayed,
        messages::Purged,
        messages::Workers,
        sutazai_bus::DeadLetter,
        sutazai_bus::DeadReason,
        sutazai_bus::NodeInfo,
        sutazai_bus::QueueDepth,
        infra::ServiceControl,
        infra::PullRequest,
        sutazai_infra::InfraStatus,
        sutazai_infra::ServiceStatus,
        sutazai_infra::ContainerInfo,
        sutazai_infra::Availability,
        sutazai_infra::DeployReport,
        sutazai_infra::LogLine,
        sutazai_infra::StatsSample,
        sutazai_infra::PullProgress,
        sutazai_infra::InfraEvent,
        sutazai_infra::ServiceKind,
        sutazai_monitor::AlertRecord,
        sutazai_monitor::Delivery,
        sutazai_monitor::Rule,
        sutazai_monitor::Comparison,
        sutazai_monitor::Severity,
        sutazai_monitor::HostSnapshot,
        sutazai_monitor::sampler::DiskSample,
        sutazai_monitor::sampler::NetworkSample,
        sutazai_monitor::sampler::TemperatureSample,
        sutazai_monitor::sampler::ProcessSample,
        sutazai_monitor::GpuSample,
        sutazai_monitor::gpu::GpuProcessSample,
        sutazai_monitor::SeriesAnswer,
        sutazai_monitor::SeriesInfo,
        sutazai_monitor::SeriesPoint,
        sutazai_monitor::history::SeriesData,
    ))
)]
struct Document;

/// The two ways to authenticate when the server runs with `ENABLE_AUTH`: a bearer token
/// (JWT from `POST /auth/token`, or an API key) and the `X-API-Key` header.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or API key (szk_…)")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Shared error responses, by name under `components/responses`: (name, status, what).
const ERRORS: &[(&str, &str, &str)] = &[
    (
        "BadRequest",
        "400",
        "The body is not JSON (`malformed_json`), or a query parameter does not parse or is \
         out of range (`invalid_query`, …)",
    ),
    (
        "Unauthorized",
        "401",
        "No credential, or one that is invalid, expired or revoked (`unauthorized`, \
         `invalid_token`, `token_expired`, `token_revoked`)",
    ),
    (
        "Forbidden",
        "403",
        "The caller's role is below the one the operation needs (`forbidden`)",
    ),
    ("NotFound", "404", "No such resource"),
    (
        "PayloadTooLarge",
        "413",
        "The body is over the size limit (`payload_too_large`)",
    ),
    (
        "UnsupportedMediaType",
        "415",
        "The body is not sent as `application/json` (`unsupported_media_type`)",
    ),
    (
        "Unprocessable",
        "422",
        "The body is JSON of the wrong shape, or breaks a rule (`invalid_request`, …); the \
         message names the field",
    ),
    (
        "Error",
        "default",
        "Any other error (429 `rate_limited` with `Retry-After`, 503 when a part is \
         unavailable, …)",
    ),
];

/// Adds to every operation the error responses that apply to it (unless it documents its
/// own for that status), and `security: []` to public ones. See the module documentation.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, _, description) in ERRORS {
            components.responses.insert(
                (*name).to_owned(),
                ResponseBuilder::new()
                    .description(*description)
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                    )
                    .build()
                    .into(),
            );
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
                (Method::HEAD, &mut item.head),
                (Method::OPTIONS, &mut item.options),
                (Method::TRACE, &mut item.trace),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    let public = auth::policy(&method, path) == auth::Access::Public;
                    add_errors(operation, public);
                }
            }
        }
    }
}

fn add_errors(operation: &mut Operation, public: bool) {
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let has_query = parameters
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Query);
    let has_path = parameters
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Path);
    let has_body = operation.request_body.is_some();
    let mut wanted = Vec::new();
    if has_body || has_query {
        wanted.push("BadRequest");
    }
    if public {
        // Anyone may call it: no credential needed (one that comes along is still read).
        operation.security = Some(Vec::<SecurityRequirement>::new());
    } else {
        wanted.extend(["Unauthorized", "Forbidden"]);
    }
    if has_path {
        wanted.push("NotFound");
    }
    if has_body {
        wanted.extend(["PayloadTooLarge", "UnsupportedMediaType", "Unprocessable"]);
    }
    wanted.push("Error");
    let responses = &mut operation.responses.responses;
    for name in wanted {
        let Some((_, status, _)) = ERRORS.iter().find(|(n, _, _)| *n == name) else {
            continue;
        };
        responses
            .entry((*status).to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
    }
}

/// Rules enforced on fields that the schemas derived from the types do not state (the
/// registry's, the orchestrator's and the monitor's checks, and cross-field rules of this
/// crate's bodies): (JSON pointer into the document, keywords merged in there).
fn constraints() -> Vec<(&'static str, Value)> {
    // Not blank: at least one character that is not whitespace.
    let not_blank = json!({"pattern": r"\S"});
    let capability = json!({"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"});
    vec![
        // sutazai_agents::validate.
        (
            "/components/schemas/AgentSpec/properties/id",
            json!({"pattern": "^[a-z0-9][a-z0-9-]{0,63}$"}),
        ),
        (
            "/components/schemas/AgentSpec/properties/name",
            not_blank.clone(),
        ),
        (
            "/components/schemas/AgentSpec/properties/capabilities",
            json!({"minItems": 1, "uniqueItems": true, "items": capability}),
        ),
        (
            "/components/schemas/AgentSpec/properties/system_prompt",
            json!({"pattern": r"\S", "maxLength": 8000}),
        ),
        (
            "/components/schemas/AgentSpec/properties/temperature",
            json!({"minimum": 0.0, "maximum": 2.0}),
        ),
        (
            "/components/schemas/AgentSpec/properties/max_concurrency",
            json!({"minimum": 1, "maximum": 256}),
        ),
        (
            "/components/schemas/AgentSpec/properties/model",
            not_blank.clone(),
        ),
        (
            "/components/schemas/AgentSpec/properties/provider",
            json!({"pattern": r"\S", "description": "Provider override: the name of a \
                configured provider (see `GET /settings`); `None` = the default."}),
        ),
        // The orchestrator's checks of a submitted task.
        (
            "/components/schemas/TaskRequest/properties/name",
            json!({"pattern": r"\S", "maxLength": 200}),
        ),
        (
            "/components/schemas/TaskRequest/properties/description",
            json!({"maxLength": 20000}),
        ),
        (
            "/components/schemas/TaskRequest/properties/requirements",
            json!({"maxItems": 32, "items": capability}),
        ),
        (
            "/components/schemas/Constraints/properties/max_agents",
            json!({"minimum": 1}),
        ),
        (
            "/components/schemas/Constraints/properties/estimated_duration",
            json!({"exclusiveMinimum": 0, "maximum": 604800}),
        ),
        (
            "/components/schemas/Constraints/properties/required_approvals",
            json!({"maxItems": 16, "uniqueItems": true,
                   "items": {"type": "string", "pattern": r"\S", "maxLength": 64}}),
        ),
        // The monitor's checks of a rule.
        (
            "/components/schemas/Rule/properties/for_seconds",
            json!({"maximum": 86400}),
        ),
        (
            "/components/schemas/Rule/properties/cooldown_seconds",
            json!({"maximum": 604800}),
        ),
        // `scale` needs `instances`; the other actions ignore it.
        (
            "/components/schemas/ControlRequest",
            json!({"oneOf": [
                {"properties": {"action": {"enum": ["start", "stop", "restart"]}}},
                {"properties": {"action": {"const": "scale"},
                                "instances": {"type": "integer", "minimum": 1, "maximum": 256}},
                 "required": ["instances"]},
            ]}),
        ),
        // `u32`: every value up to 2^32 - 1, not just int32's.
        (
            "/components/schemas/ControlRequest/properties/instances",
            json!({"format": null, "maximum": u32::MAX}),
        ),
        (
            "/components/schemas/ServiceControl/properties/instances",
            json!({"format": null, "maximum": u32::MAX}),
        ),
        (
            "/components/schemas/ServiceControl",
            json!({"oneOf": [
                {"properties": {"action": {"enum": ["start", "stop", "restart", "remove"]}}},
                {"properties": {"action": {"const": "scale"},
                                "instances": {"type": "integer", "minimum": 0}},
                 "required": ["instances"]},
            ]}),
        ),
    ]
}

/// Merges `patch`'s keywords into `target` (objects key by key, anything else replaced; a
/// `null` removes the keyword).
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

/// Applies [`constraints`], and describes the update bodies whose `id` may be left out (it
/// is the path's) as their own schemas.
fn constrain(document: &mut Value) {
    for (pointer, patch) in constraints() {
        match document.pointer_mut(pointer) {
            Some(target) => merge(target, patch),
            None => debug_assert!(false, "{pointer} is not in the document"),
        }
    }
    // `PUT /agents/{agent_id}` creates the agent when there is none: the id's rule applies
    // to the path (elsewhere an unknown id is simply 404).
    let put_agent = "/paths/~1agents~1{agent_id}/put/parameters";
    if let Some(parameter) = document
        .pointer_mut(put_agent)
        .and_then(Value::as_array_mut)
        .and_then(|ps| ps.iter_mut().find(|p| p["name"] == "agent_id"))
    {
        merge(
            &mut parameter["schema"],
            json!({"pattern": "^[a-z0-9][a-z0-9-]{0,63}$"}),
        );
    }
    for (name, update, path) in [
        ("AgentSpec", "AgentSpecUpdate", "/agents/{agent_id}"),
        ("Rule", "RuleUpdate", "/alerts/rules/{id}"),
    ] {
        let Some(mut schema) = document
            .pointer(&format!("/components/schemas/{name}"))
            .cloned()
        else {
            continue;
        };
        if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|field| field != "id");
        }
        if let Some(description) = schema.pointer_mut("/properties/id/description") {
            *description = json!(format!(
                "{} May be left out; when given, it must be the path's.",
                description.as_str().unwrap_or_default()
            ));
        }
        if let Some(schemas) = document
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            schemas.insert(update.to_owned(), schema);
        }
        let body = format!(
            "/paths/{}/put/requestBody/content/application~1json/schema",
            path.replace('~', "~0").replace('/', "~1")
        );
        if let Some(body) = document.pointer_mut(&body) {
            *body = json!({"$ref": format!("#/components/schemas/{update}")});
        }
    }
}

/// The document as served.
fn build() -> Value {
    let mut document = serde_json::to_value(Document::openapi()).unwrap_or_default();
    constrain(&mut document);
    document
}

/// `GET /openapi.json`.
pub(crate) async fn document() -> Json<Value> {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(build).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constraint_lands_and_the_document_is_consistent() {
        // `constrain` asserts (in debug builds) that each pointer exists.
        let document = build();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["AgentSpec"]["properties"]["id"]["pattern"],
            "^[a-z0-9][a-z0-9-]{0,63}$"
        );
        assert_eq!(
            schemas["TaskRequest"]["properties"]["name"]["maxLength"],
            200
        );
        assert_eq!(
            document["paths"]["/agents/{agent_id}"]["put"]["parameters"][0]["schema"]["pattern"],
            "^[a-z0-9][a-z0-9-]{0,63}$"
        );
        let update = &schemas["AgentSpecUpdate"];
        assert!(update["properties"]["id"].is_object());
        assert!(
            !update["required"]
                .as_array()
                .unwrap()
                .contains(&json!("id"))
        );
        assert_eq!(
            document["paths"]["/alerts/rules/{id}"]["put"]["requestBody"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/RuleUpdate"
        );
        // Every `$ref` resolves.
        fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&document, &mut all);
        for r in all {
            let pointer = r.trim_start_matches('#');
            assert!(document.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn public_operations_need_no_credential_and_the_others_answer_401_and_403() {
        let document = build();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let method: Method = method.to_uppercase().parse().unwrap();
                let responses = operation["responses"].as_object().unwrap();
                assert!(responses.contains_key("default"), "{method} {path}");
                if auth::policy(&method, path) == auth::Access::Public {
                    assert_eq!(operation["security"], json!([]), "{method} {path}");
                } else {
                    assert!(operation.get("security").is_none(), "{method} {path}");
                    assert!(
                        responses.contains_key("401") && responses.contains_key("403"),
                        "{method} {path}"
                    );
                }
                if operation.get("requestBody").is_some() {
                    for status in ["400", "413", "415", "422"] {
                        assert!(responses.contains_key(status), "{method} {path} {status}");
                    }
                }
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    if parameter["in"] == "query" {
                        assert!(responses.contains_key("400"), "{method} {path}");
                    }
                    if parameter["in"] == "path" {
                        assert!(
                            path.contains(&format!("{{{}}}", parameter["name"].as_str().unwrap())),
                            "{method} {path}: {parameter}"
                        );
                    }
                }
            }
        }
        let revoke = &document["paths"]["/auth/revoke"]["post"]["requestBody"];
        assert_ne!(revoke["required"], json!(true), "{revoke}");
    }
}
