//! The HTTP side of the fake API server: URL routing, query parameters, Status error bodies,
//! and watch streams.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::selector::{FieldSelector, LabelSelector};
use super::store::{ApiError, Event, EventType, Resource, labels_of};
use super::{Inner, WatchInfo};

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

fn not_found_path() -> ApiError {
    ApiError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: Some(json!({})),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError {
        code: 405,
        reason: "MethodNotAllowed",
        message: "the server does not allow this method on the requested resource".into(),
        details: Some(json!({})),
    }
}

/// What a URL names.
enum Target {
    Version,
    Collection(Resource, Option<String>),
    Item(Resource, String, String),
}

fn route(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (res, rest) = match segs.as_slice() {
        ["version"] => return Some(Target::Version),
        ["api", "v1", rest @ ..] => (Resource::ConfigMaps, rest),
        ["apis", "coordination.k8s.io", "v1", rest @ ..] => (Resource::Leases, rest),
        _ => return None,
    };
    let plural_ok = |p: &str| p == res.plural();
    match rest {
        [p] if plural_ok(p) => Some(Target::Collection(res, None)),
        ["namespaces", ns, p] if plural_ok(p) && !ns.is_empty() => {
            Some(Target::Collection(res, Some((*ns).to_owned())))
        }
        ["namespaces", ns, p, name] if plural_ok(p) && !ns.is_empty() && !name.is_empty() => {
            Some(Target::Item(res, (*ns).to_owned(), (*name).to_owned()))
        }
        _ => None,
    }
}

/// The query parameters the fake understands.
#[derive(Default)]
struct Query {
    watch: bool,
    resource_version: Option<String>,
    label_selector: String,
    field_selector: String,
    timeout_seconds: Option<u64>,
    bookmarks: bool,
    limit: Option<usize>,
    continue_token: Option<String>,
    dry_run: bool,
}

fn parse_query(q: Option<&str>) -> Query {
    let mut out = Query::default();
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        let truthy = v == "true" || v == "1";
        match k.as_ref() {
            "watch" => out.watch = truthy,
            "resourceVersion" => out.resource_version = Some(v.into_owned()),
            "labelSelector" => out.label_selector = v.into_owned(),
            "fieldSelector" => out.field_selector = v.into_owned(),
            "timeoutSeconds" => out.timeout_seconds = v.parse().ok(),
            "allowWatchBookmarks" => out.bookmarks = truthy,
            "limit" => out.limit = v.parse().ok().filter(|l| *l > 0),
            "continue" => out.continue_token = Some(v.into_owned()).filter(|c| !c.is_empty()),
            "dryRun" => out.dry_run = v == "All",
            _ => {}
        }
    }
    out
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
    })
}

struct Selectors {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selectors {
    fn parse(q: &Query) -> Result<Self, ApiError> {
        Ok(Self {
            labels: LabelSelector::parse(&q.label_selector).map_err(ApiError::bad_request)?,
            fields: FieldSelector::parse(&q.field_selector).map_err(ApiError::bad_request)?,
        })
    }

    fn matches(&self, o: &Value) -> bool {
        self.labels.matches(&labels_of(o)) && self.fields.matches(o)
    }
}

/// Every request enters here.
pub(super) async fn handle(
    inner: Arc<Inner>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.log_request(&method, &uri, &headers);
    let delay = inner.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = inner.take_failure() {
        let e = if code == 503 {
            ApiError {
                code,
                reason: "ServiceUnavailable",
                message: "the server is currently unable to handle the request (injected fault)"
                    .into(),
                details: None,
            }
        } else if code == 429 {
            ApiError {
                code,
                reason: "TooManyRequests",
                message: "the server has received too many requests and has asked us to try again later (injected fault)".into(),
                details: Some(json!({"retryAfterSeconds": 1})),
            }
        } else {
            let mut e = ApiError::internal("injected fault");
            e.code = code;
            e
        };
        return error_response(&e);
    }
    match serve(&inner, &method, &uri, &headers, &body) {
        Ok(Reply::Json(code, v)) => json_response(code, &v),
        Ok(Reply::Watch(w)) => watch_response(inner, *w),
        Err(e) => error_response(&e),
    }
}

enum Reply {
    Json(u16, Value),
    Watch(Box<WatchStart>),
}

struct WatchStart {
    /// Counts the events sent.
    sent: Arc<super::Sent>,
    res: Resource,
    selectors: Selectors,
    backlog: Vec<Arc<Event>>,
    rx: broadcast::Receiver<Arc<Event>>,
    start_rv: u64,
    timeout: Option<Duration>,
    bookmarks: bool,
    expired: Option<ApiError>,
}

fn strip_type(mut o: Value) -> Value {
    if let Some(m) = o.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    o
}

fn serve(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let q = parse_query(uri.query());
    let Some(target) = route(uri.path()) else {
        return Err(not_found_path());
    };
    let mut store = inner.store();
    match target {
        Target::Version => Ok(Reply::Json(
            200,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-tenure-fake",
                   "platform": "linux/amd64"}),
        )),
        Target::Collection(res, ns) => match *method {
            Method::GET if q.watch => {
                let selectors = Selectors::parse(&q)?;
                let from = match q.resource_version.as_deref() {
                    None | Some("") | Some("0") => None,
                    Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!("invalid resource version: {rv}"))
                    })?),
                };
                let start_rv = from.unwrap_or(store.resource_version());
                let (backlog, rx, expired) = match store.watch_from(res, ns.as_deref(), from) {
                    Ok((b, rx)) => (b, rx, None),
                    Err(e) => (Vec::new(), broadcast::channel(1).1, Some(e)),
                };
                let sent = inner.open_watch(WatchInfo {
                    uri: uri.to_string(),
                    label_selector: q.label_selector.clone(),
                    field_selector: q.field_selector.clone(),
                    user_agent: super::user_agent(headers),
                });
                Ok(Reply::Watch(Box::new(WatchStart {
                    sent,
                    res,
                    selectors,
                    backlog,
                    rx,
                    start_rv,
                    timeout: q.timeout_seconds.map(Duration::from_secs),
                    bookmarks: q.bookmarks,
                    expired,
                })))
            }
            Method::GET => {
                let selectors = Selectors::parse(&q)?;
                let mut items = store.list(res, ns.as_deref(), |o| selectors.matches(o));
                let mut meta = json!({"resourceVersion": store.resource_version().to_string()});
                if let Some(token) = &q.continue_token {
                    let after = token.clone();
                    items.retain(|o| {
                        let key = format!(
                            "{}/{}",
                            o.pointer("/metadata/namespace")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                            o.pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                        );
                        key > after
                    });
                }
                if let Some(limit) = q.limit
                    && items.len() > limit
                {
                    let rest = items.len() - limit;
                    items.truncate(limit);
                    if let Some(last) = items.last() {
                        meta["continue"] = json!(format!(
                            "{}/{}",
                            last.pointer("/metadata/namespace")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                            last.pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                        ));
                        meta["remainingItemCount"] = json!(rest);
                    }
                }
                Ok(Reply::Json(
                    200,
                    json!({
                        "kind": format!("{}List", res.kind()),
                        "apiVersion": res.api_version(),
                        "metadata": meta,
                        "items": items.into_iter().map(strip_type).collect::<Vec<_>>(),
                    }),
                ))
            }
            Method::POST => {
                let Some(ns) = ns else {
                    return Err(method_not_allowed());
                };
                let obj = parse_body(body)?;
                if q.dry_run {
                    let mut probe = super::store::Store::default();
                    return probe.create(res, &ns, obj).map(|o| Reply::Json(201, o));
                }
                store.create(res, &ns, obj).map(|o| Reply::Json(201, o))
            }
            Method::DELETE => {
                let Some(ns) = ns else {
                    return Err(method_not_allowed());
                };
                let selectors = Selectors::parse(&q)?;
                let doomed = store.list(res, Some(&ns), |o| selectors.matches(o));
                let mut deleted = Vec::new();
                for o in doomed {
                    let name = o
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    if q.dry_run {
                        deleted.push(strip_type(o));
                    } else if let Ok(gone) = store.delete(res, &ns, &name, None, None) {
                        deleted.push(strip_type(gone));
                    }
                }
                Ok(Reply::Json(
                    200,
                    json!({
                        "kind": format!("{}List", res.kind()),
                        "apiVersion": res.api_version(),
                        "metadata": {"resourceVersion": store.resource_version().to_string()},
                        "items": deleted,
                    }),
                ))
            }
            _ => Err(method_not_allowed()),
        },
        Target::Item(res, ns, name) => match *method {
            Method::GET => store
                .get(res, &ns, &name)
                .cloned()
                .map(|o| Reply::Json(200, o))
                .ok_or_else(|| ApiError::not_found(res, &name)),
            Method::PUT => {
                let obj = parse_body(body)?;
                if q.dry_run {
                    let current = store.get(res, &ns, &name).cloned();
                    let mut probe = super::store::Store::default();
                    if let Some(c) = current {
                        probe.put_raw(res, &ns, c);
                    }
                    return probe
                        .replace(res, &ns, &name, obj)
                        .map(|o| Reply::Json(200, o));
                }
                store
                    .replace(res, &ns, &name, obj)
                    .map(|o| Reply::Json(200, o))
            }
            Method::PATCH => {
                let ct = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let ct = ct.split(';').next().unwrap_or("").trim();
                if ct != "application/merge-patch+json"
                    && ct != "application/strategic-merge-patch+json"
                {
                    return Err(ApiError {
                        code: 415,
                        reason: "UnsupportedMediaType",
                        message: format!(
                            "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?})"
                        ),
                        details: None,
                    });
                }
                let patch = parse_body(body)?;
                store
                    .patch(res, &ns, &name, &patch)
                    .map(|o| Reply::Json(200, o))
            }
            Method::DELETE => {
                let opts = if body.is_empty() {
                    Value::Null
                } else {
                    parse_body(body)?
                };
                let rv = opts
                    .pointer("/preconditions/resourceVersion")
                    .and_then(Value::as_str);
                let uid = opts.pointer("/preconditions/uid").and_then(Value::as_str);
                if q.dry_run {
                    return store
                        .get(res, &ns, &name)
                        .map(|_| Reply::Json(200, success(res, &name, "")))
                        .ok_or_else(|| ApiError::not_found(res, &name));
                }
                let gone = store.delete(res, &ns, &name, rv, uid)?;
                let uid = gone
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                Ok(Reply::Json(200, success(res, &name, &uid)))
            }
            _ => Err(method_not_allowed()),
        },
    }
}

/// The `Status` a delete of a ConfigMap or Lease answers with.
fn success(res: Resource, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name});
    if !res.group().is_empty() {
        details["group"] = json!(res.group());
    }
    details["kind"] = json!(res.plural());
    details["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// What one watcher sees of an event, given its selectors (an object that stops matching is
/// seen as deleted, one that starts matching as added).
fn render(e: &Event, sel: &Selectors) -> Option<Value> {
    let now = sel.matches(&e.object);
    let before = e.old.as_ref().is_some_and(|o| sel.matches(o));
    let kind = match e.kind {
        EventType::Added if now => EventType::Added,
        EventType::Modified if now && before => EventType::Modified,
        EventType::Modified if now => EventType::Added,
        EventType::Modified if before => EventType::Deleted,
        EventType::Deleted if before || now => EventType::Deleted,
        _ => return None,
    };
    Some(json!({"type": kind.as_str(), "object": e.object}))
}

fn watch_response(inner: Arc<Inner>, w: WatchStart) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut dropped = inner.drop_signal();
    let bookmark_every = inner.bookmark_interval();
    tokio::spawn(async move {
        let WatchStart {
            sent,
            res,
            selectors,
            backlog,
            mut rx,
            start_rv,
            timeout,
            bookmarks,
            expired,
        } = w;
        if let Some(e) = expired {
            let event = json!({"type": "ERROR", "object": e.status()});
            sent.note(&event);
            let _ = tx.send(line(&event)).await;
            return;
        }
        let mut seen = start_rv;
        for e in backlog {
            seen = seen.max(e.rv);
            if let Some(v) = render(&e, &selectors) {
                sent.note(&v);
                if tx.send(line(&v)).await.is_err() {
                    return;
                }
            }
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            let until_deadline = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(e) => {
                        seen = seen.max(e.rv);
                        if let Some(v) = render(&e, &selectors) {
                            sent.note(&v);
                            if tx.send(line(&v)).await.is_err() {
                                return;
                            }
                        }
                    }
                    // A watcher too slow for the event rate is closed; the client re-watches.
                    Err(_) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    let b = json!({"type": "BOOKMARK", "object": {
                        "kind": res.kind(),
                        "apiVersion": res.api_version(),
                        "metadata": {"resourceVersion": seen.to_string()},
                    }});
                    if tx.send(line(&b)).await.is_err() {
                        return;
                    }
                }
                _ = until_deadline => return,
                _ = dropped.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
