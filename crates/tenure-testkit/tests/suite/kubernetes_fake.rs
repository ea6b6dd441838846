//! The fake Kubernetes API server checked against request/response pairs transcribed from the
//! Kubernetes API reference (`src/kube_fake/fixtures/*.json`), sent as raw HTTP/1.1 so no client
//! library's behaviour is assumed; and its fault knobs.
//!
//! Fixture format: `steps`, each a `request` (`method`, `path` with query, optional `headers`
//! and JSON `body`) and the expected `response` (`code`, and a `body` or, for watches, the
//! first `events`), or an `action` (`compact`). Expected JSON matches when every expected
//! member is present and equal (objects may have more members, except `Status` objects, which
//! must match exactly); `"$any"` matches anything, `"$rv"` a resource version, `"$uid"` a UID,
//! `"$time"` an RFC 3339 time, `"$capture:NAME"` a resource version that later requests and
//! expectations use as `${NAME}`; `{"$repeat": "x", "count": N}` in a request body is a string
//! of N `x`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};
use tenure_testkit::kube_fake::{FakeApiServer, Resource};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A raw HTTP/1.1 response: status, headers, and the body (de-chunked).
struct Reply {
    code: u16,
    body: Vec<u8>,
}

async fn read_line(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match r.read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

/// Sends one request; reads the whole body, or for chunked bodies at most `max_lines`
/// newline-terminated lines within `within`.
async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
    max_lines: usize,
    within: Duration,
) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut r = BufReader::new(stream);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = &body {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut raw = req.into_bytes();
    raw.extend(body.unwrap_or_default());
    r.get_mut().write_all(&raw).await.unwrap();
    let status = read_line(&mut r).await.expect("status line");
    let code: u16 = status.split(' ').nth(1).unwrap().parse().unwrap();
    let mut chunked = false;
    let mut length = None;
    loop {
        let h = read_line(&mut r).await.expect("header");
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
        if k == "content-length" {
            length = v.parse::<usize>().ok();
        }
    }
    let mut out = Vec::new();
    if !chunked {
        let mut buf = vec![0; length.unwrap_or(0)];
        r.read_exact(&mut buf).await.unwrap();
        return Reply { code, body: buf };
    }
    let read = async {
        loop {
            let Some(size) = read_line(&mut r).await else {
                break;
            };
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            if r.read_exact(&mut chunk).await.is_err() {
                break;
            }
            out.extend_from_slice(&chunk[..size]);
            if out.iter().filter(|b| **b == b'\n').count() >= max_lines {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
    Reply { code, body: out }
}

fn substitute(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = s.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    out
}

fn expand(v: &Value, vars: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(substitute(s, vars)),
        Value::Array(a) => Value::Array(a.iter().map(|x| expand(x, vars)).collect()),
        Value::Object(o) => {
            if let (Some(Value::String(c)), Some(n)) = (o.get("$repeat"), o.get("count")) {
                return Value::String(c.repeat(n.as_u64().unwrap() as usize));
            }
            Value::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), expand(x, vars)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

fn is_rv(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks `actual` against `expected`; records captures; returns the first mismatch.
fn matches(
    expected: &Value,
    actual: &Value,
    vars: &mut HashMap<String, String>,
    at: &str,
) -> Result<(), String> {
    let fail = || Err(format!("at {at}: expected {expected}, got {actual}"));
    match expected {
        Value::String(e) if e == "$any" => Ok(()),
        Value::String(e) if e == "$rv" => match actual.as_str() {
            Some(s) if is_rv(s) => Ok(()),
            _ => fail(),
        },
        Value::String(e) if e == "$uid" => match actual.as_str() {
            Some(s) if uuid::Uuid::parse_str(s).is_ok() => Ok(()),
            _ => fail(),
        },
        Value::String(e) if e == "$time" => match actual.as_str() {
            Some(s) if s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T' => Ok(()),
            _ => fail(),
        },
        Value::String(e) if e.starts_with("$capture:") => match actual.as_str() {
            Some(s) if !s.is_empty() => {
                vars.insert(e["$capture:".len()..].to_owned(), s.to_owned());
                Ok(())
            }
            _ => fail(),
        },
        Value::String(e) => {
            if Some(substitute(e, vars).as_str()) == actual.as_str() {
                Ok(())
            } else {
                fail()
            }
        }
        Value::Object(e) => {
            let Some(a) = actual.as_object() else {
                return fail();
            };
            let exact = e.get("kind").and_then(Value::as_str) == Some("Status")
                && e.contains_key("apiVersion");
            if exact && a.keys().any(|k| !e.contains_key(k)) {
                return Err(format!(
                    "at {at}: unexpected members in {actual} (expected {expected})"
                ));
            }
            for (k, ev) in e {
                let av = a.get(k).unwrap_or(&Value::Null);
                if av.is_null() && !ev.is_null() {
                    return Err(format!("at {at}: missing {k:?} in {actual}"));
                }
                matches(ev, av, vars, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        Value::Array(e) => {
            let Some(a) = actual.as_array() else {
                return fail();
            };
            if a.len() != e.len() {
                return Err(format!(
                    "at {at}: expected {} items, got {}: {actual}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                matches(ev, av, vars, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        other => {
            if other == actual {
                Ok(())
            } else {
                fail()
            }
        }
    }
}

async fn run_fixture(name: &str) {
    let path = format!(
        "{}/src/kube_fake/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let server = FakeApiServer::start().await;
    server.set_bookmark_interval(Duration::from_millis(300));
    let mut vars = HashMap::new();
    for (i, step) in fixture["steps"].as_array().unwrap().iter().enumerate() {
        let at = format!(
            "{name} step {i} ({})",
            step.get("note").and_then(Value::as_str).unwrap_or("")
        );
        if let Some(action) = step.get("action").and_then(Value::as_str) {
            match action {
                "compact" => server.compact(),
                other => panic!("{at}: unknown action {other}"),
            }
            continue;
        }
        let req = &step["request"];
        let method = req["method"].as_str().unwrap();
        let path = substitute(req["path"].as_str().unwrap(), &vars);
        let headers: Vec<(String, String)> = req
            .get("headers")
            .and_then(Value::as_object)
            .map(Map::iter)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let body = req
            .get("body")
            .map(|b| serde_json::to_vec(&expand(b, &vars)).unwrap());
        let resp = &step["response"];
        let want_events = resp.get("events").and_then(Value::as_array);
        let lines = want_events.map_or(usize::MAX, Vec::len);
        let reply = send(
            server.addr(),
            method,
            &path,
            &headers,
            body,
            lines,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            reply.code,
            resp["code"].as_u64().unwrap() as u16,
            "{at}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        if let Some(events) = want_events {
            let got: Vec<Value> = reply
                .body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            matches(
                &Value::Array(events.clone()),
                &Value::Array(got),
                &mut vars,
                &at,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        } else if let Some(want) = resp.get("body") {
            let got: Value = serde_json::from_slice(&reply.body)
                .unwrap_or_else(|e| panic!("{at}: body is not JSON ({e})"));
            matches(want, &got, &mut vars, &at).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[tokio::test]
async fn configmap_crud_matches_the_api_reference() {
    run_fixture("configmap_crud.json").await;
}

#[tokio::test]
async fn configmap_validation_matches_the_api_reference() {
    run_fixture("configmap_validation.json").await;
}

#[tokio::test]
async fn list_and_watch_match_the_api_concepts() {
    run_fixture("list_watch.json").await;
}

fn cm(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"metadata": {"name": name}})).unwrap()
}

async fn post(server: &FakeApiServer, name: &str) -> Reply {
    send(
        server.addr(),
        "POST",
        "/api/v1/namespaces/n/configmaps",
        &[],
        Some(cm(name)),
        usize::MAX,
        Duration::from_secs(5),
    )
    .await
}

#[tokio::test]
async fn injected_failures_answer_with_status_objects_then_recover() {
    let server = FakeApiServer::start().await;
    server.fail_next(2, 503);
    let r = post(&server, "a").await;
    assert_eq!(r.code, 503);
    let status: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(status["reason"], "ServiceUnavailable");
    server.fail_next(1, 500);
    assert_eq!(post(&server, "a").await.code, 503);
    assert_eq!(post(&server, "a").await.code, 500);
    assert_eq!(post(&server, "a").await.code, 201);
    assert!(server.object(Resource::ConfigMaps, "n", "a").is_some());
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn delays_hold_every_response() {
    let server = FakeApiServer::start().await;
    server.set_delay(Duration::from_millis(300));
    let t = std::time::Instant::now();
    assert_eq!(post(&server, "a").await.code, 201);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn dropped_watches_end_and_resource_versions_only_grow() {
    let server = FakeApiServer::start().await;
    let addr = server.addr();
    let watch = tokio::spawn(async move {
        send(
            addr,
            "GET",
            "/api/v1/namespaces/n/configmaps?watch=1",
            &[],
            None,
            usize::MAX,
            Duration::from_secs(20),
        )
        .await
    });
    let mut last = 0;
    for name in ["a", "b", "c"] {
        let r = post(&server, name).await;
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let rv: u64 = v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv > last);
        last = rv;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    server.drop_watches();
    let reply = watch.await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "the stream ended");
    let lines = reply
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(lines, 3, "{}", String::from_utf8_lossy(&reply.body));
}

#[tokio::test]
async fn leases_are_served_too() {
    let server = FakeApiServer::start().await;
    let body = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}
    }))
    .unwrap();
    let path = "/apis/coordination.k8s.io/v1/namespaces/n/leases";
    let r = send(
        server.addr(),
        "POST",
        path,
        &[],
        Some(body.clone()),
        usize::MAX,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.code, 201);
    let r = send(
        server.addr(),
        "POST",
        path,
        &[],
        Some(body),
        usize::MAX,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.code, 409);
    let status: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        status["message"],
        "leases.coordination.k8s.io \"l\" already exists"
    );
    assert_eq!(status["details"]["group"], "coordination.k8s.io");
}
