//! The few ConfigMap requests the backend makes, with a deadline each, and their failures
//! sorted into what the callers act on.

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions, WatchEvent, WatchParams};

/// A failed request, by what the caller does about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// 404: the object does not exist.
    NotFound,
    /// 409 Conflict: a stale `resourceVersion` (or a failed delete precondition).
    Conflict,
    /// 409 AlreadyExists on create.
    AlreadyExists,
    /// 422: the server refused the object (the message says why, e.g. too large).
    Invalid(String),
    /// 410: the watch's resource version is too old.
    Gone,
    /// The request may or may not have been carried out (5xx, 429, timeout, connection lost).
    Transient(String),
    /// The server refused the request (401, 403, other 4xx); retrying will not help.
    Refused(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::NotFound => f.write_str("not found"),
            ApiError::Conflict => f.write_str("conflict"),
            ApiError::AlreadyExists => f.write_str("already exists"),
            ApiError::Invalid(m) => write!(f, "invalid: {m}"),
            ApiError::Gone => f.write_str("gone"),
            ApiError::Transient(m) => write!(f, "{m}"),
            ApiError::Refused(m) => write!(f, "refused: {m}"),
        }
    }
}

impl std::error::Error for ApiError {}

fn classify(e: kube::Error) -> ApiError {
    match e {
        kube::Error::Api(s) => match s.code {
            404 => ApiError::NotFound,
            409 if s.reason == "AlreadyExists" => ApiError::AlreadyExists,
            409 => ApiError::Conflict,
            410 => ApiError::Gone,
            422 => ApiError::Invalid(s.message),
            429 | 500..=599 => {
                ApiError::Transient(format!("{} {}: {}", s.code, s.reason, s.message))
            }
            code => ApiError::Refused(format!("{code} {}: {}", s.reason, s.message)),
        },
        other => ApiError::Transient(other.to_string()),
    }
}

/// Which ConfigMaps a list or watch asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Every ConfigMap matching a label selector.
    Labels(String),
    /// The one ConfigMap of this name (`fieldSelector=metadata.name=<name>`), if it also
    /// matches the label selector.
    Name { name: String, labels: String },
}

impl Selection {
    fn list_params(&self) -> ListParams {
        match self {
            Selection::Labels(l) => ListParams::default().labels(l),
            Selection::Name { name, labels } => ListParams::default()
                .labels(labels)
                .fields(&format!("metadata.name={name}")),
        }
    }

    fn watch_params(&self, timeout_secs: u32) -> WatchParams {
        let wp = WatchParams::default().timeout(timeout_secs);
        let wp = match self {
            Selection::Labels(l) => wp.labels(l),
            Selection::Name { name, labels } => {
                wp.labels(labels).fields(&format!("metadata.name={name}"))
            }
        };
        WatchParams {
            bookmarks: true,
            ..wp
        }
    }
}

/// ConfigMaps of one namespace.
#[derive(Clone)]
pub(crate) struct ConfigMaps {
    api: kube::Api<ConfigMap>,
    timeout: Duration,
    namespace: String,
}

impl std::fmt::Debug for ConfigMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMaps")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl ConfigMaps {
    pub fn new(client: kube::Client, namespace: &str, timeout: Duration) -> Self {
        Self {
            api: kube::Api::namespaced(client, namespace),
            timeout,
            namespace: namespace.to_owned(),
        }
    }

    async fn bounded<T>(
        &self,
        f: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r.map_err(classify),
            Err(_) => Err(ApiError::Transient(format!(
                "no answer from the API server within {:?}",
                self.timeout
            ))),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Option<ConfigMap>, ApiError> {
        self.bounded(self.api.get_opt(name)).await
    }

    pub async fn create(&self, cm: &ConfigMap) -> Result<ConfigMap, ApiError> {
        self.bounded(self.api.create(&PostParams::default(), cm))
            .await
    }

    /// `PUT`, conditioned on the `resourceVersion` in `cm`.
    pub async fn replace(&self, name: &str, cm: &ConfigMap) -> Result<ConfigMap, ApiError> {
        self.bounded(self.api.replace(name, &PostParams::default(), cm))
            .await
    }

    /// `DELETE`, conditioned on `resource_version` when given.
    pub async fn delete(&self, name: &str, resource_version: Option<&str>) -> Result<(), ApiError> {
        let dp = DeleteParams {
            preconditions: resource_version.map(|rv| Preconditions {
                resource_version: Some(rv.to_owned()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        self.bounded(self.api.delete(name, &dp)).await.map(|_| ())
    }

    /// The ConfigMaps matching `selector`, and the list's resource version.
    pub async fn list(&self, selector: &str) -> Result<(Vec<ConfigMap>, String), ApiError> {
        self.list_selected(&Selection::Labels(selector.to_owned()))
            .await
    }

    /// The ConfigMaps `selection` asks for, and the list's resource version.
    pub async fn list_selected(
        &self,
        selection: &Selection,
    ) -> Result<(Vec<ConfigMap>, String), ApiError> {
        let list = self
            .bounded(self.api.list(&selection.list_params()))
            .await?;
        let rv = list.metadata.resource_version.unwrap_or_default();
        Ok((list.items, rv))
    }

    /// A watch of the ConfigMaps `selection` asks for after resource version `rv`, with
    /// bookmarks; the server ends it after `timeout_secs`.
    pub async fn watch(
        &self,
        selection: &Selection,
        rv: &str,
        timeout_secs: u32,
    ) -> Result<impl Stream<Item = Result<WatchEvent<ConfigMap>, ApiError>> + use<>, ApiError> {
        let wp = selection.watch_params(timeout_secs);
        let s = self.bounded(self.api.watch(&wp, rv)).await?;
        Ok(s.map(|r| r.map_err(classify)))
    }
}
