//! Secured etcd servers for tests: TLS (optionally mutual) and username/password auth.
//!
//! [`EtcdPki`] makes test certificates with `rcgen` (a CA, a server certificate for
//! `127.0.0.1` and `localhost`, a client certificate, and an unrelated second CA);
//! [`EtcdServer::start_with`] starts a node with [`EtcdOptions`]; [`EtcdServer::enable_auth`]
//! creates `root` and a user whose one role grants readwrite on a key prefix, then turns
//! authentication on. A TLS node also serves plaintext `/health` on a metrics port, which is
//! how the harness knows it is up.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tenure_testkit::etcd::EtcdServer;
//! use tenure_testkit::etcd_security::{EtcdOptions, EtcdPki};
//! let pki = EtcdPki::generate();
//! let server = EtcdServer::start_with(EtcdOptions::tls(&pki)).await;
//! assert!(server.endpoint().starts_with("https://"));
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use tenure_core::config::EtcdTls;
use tenure_etcd::etcd_client::{
    Certificate, Client, ConnectOptions, Identity, Permission, TlsOptions,
};

use crate::etcd::{EtcdServer, Member, check_installed, initial_cluster, new_token};
use crate::ports::server_port;

/// Test certificates as PEM files in a temporary directory.
#[derive(Debug)]
pub struct EtcdPki {
    dir: tempfile::TempDir,
}

fn write(dir: &Path, name: &str, pem: &str) {
    std::fs::write(dir.join(name), pem).expect("write a test PEM file");
}

impl EtcdPki {
    /// Generates the CA, the server and client certificates it signs, and a second,
    /// unrelated CA (`other-ca.pem`).
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::Builder::new()
            .prefix("tenure-etcd-pki-")
            .tempdir()
            .expect("temporary directory");
        let ca = |name: &str| {
            let key = KeyPair::generate().expect("CA key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).expect("self-signed CA");
            write(dir.path(), name, &cert.pem());
            Issuer::new(params, key)
        };
        let issuer = ca("ca.pem");
        ca("other-ca.pem");
        for (name, sans) in [
            (
                "server",
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            ),
            ("client", vec!["tenure-client".to_owned()]),
        ] {
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(sans)
                .expect("params")
                .signed_by(&key, &issuer)
                .expect("signed certificate");
            write(dir.path(), &format!("{name}.pem"), &cert.pem());
            write(dir.path(), &format!("{name}-key.pem"), &key.serialize_pem());
        }
        Self { dir }
    }

    /// The path of one of the PEM files.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn text(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// The CA that signed the server and client certificates.
    pub fn ca_file(&self) -> String {
        self.text("ca.pem")
    }

    /// A CA that signed nothing here (verification against it fails).
    pub fn other_ca_file(&self) -> String {
        self.text("other-ca.pem")
    }

    /// The client TLS settings: the CA, without a client certificate.
    pub fn client_tls(&self) -> EtcdTls {
        EtcdTls {
            ca_file: Some(self.ca_file()),
            ..EtcdTls::default()
        }
    }

    /// The client TLS settings with the client certificate and key (mutual TLS).
    pub fn client_tls_with_cert(&self) -> EtcdTls {
        EtcdTls {
            cert_file: Some(self.text("client.pem")),
            key_file: Some(self.text("client-key.pem")),
            ..self.client_tls()
        }
    }

    fn etcd_client_tls(&self, with_cert: bool) -> TlsOptions {
        let read = |name: &str| std::fs::read_to_string(self.path(name)).expect("test PEM");
        let tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read("ca.pem")));
        if with_cert {
            tls.identity(Identity::from_pem(
                read("client.pem"),
                read("client-key.pem"),
            ))
        } else {
            tls
        }
    }
}

/// How a test server is secured.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// TLS on the client port with the PKI's server certificate.
    pub tls: Option<ServerTls>,
    /// `--auth-token-ttl` (whole seconds): how long an unused simple token lives (300 s).
    pub auth_token_ttl: Option<Duration>,
}

/// TLS of a test server's client port.
#[derive(Debug, Clone)]
pub struct ServerTls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    client_cert_auth: bool,
}

impl EtcdOptions {
    /// TLS with the PKI's server certificate; clients need no certificate.
    pub fn tls(pki: &EtcdPki) -> Self {
        Self {
            tls: Some(ServerTls {
                cert: pki.path("server.pem"),
                key: pki.path("server-key.pem"),
                ca: pki.path("ca.pem"),
                client_cert_auth: false,
            }),
            ..Self::default()
        }
    }

    /// Mutual TLS: clients must present a certificate the PKI's CA signed
    /// (`--client-cert-auth`, `--trusted-ca-file`).
    pub fn mutual_tls(pki: &EtcdPki) -> Self {
        let mut options = Self::tls(pki);
        if let Some(tls) = options.tls.as_mut() {
            tls.client_cert_auth = true;
        }
        options
    }

    /// With `--auth-token-ttl` of `ttl`.
    pub fn with_auth_token_ttl(mut self, ttl: Duration) -> Self {
        self.auth_token_ttl = Some(ttl);
        self
    }
}

/// What a server was started with (kept by [`EtcdServer`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Security {
    options: EtcdOptions,
    /// The plaintext metrics port serving `/health` (TLS servers).
    pub(crate) health_port: Option<u16>,
}

impl Security {
    /// The client URL of `member`.
    pub(crate) fn client_url(&self, member: &Member) -> String {
        let url = member.client_url();
        if self.options.tls.is_some() {
            url.replacen("http://", "https://", 1)
        } else {
            url
        }
    }

    /// The extra command-line arguments.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(tls) = &self.options.tls {
            let path = |p: &PathBuf| p.to_string_lossy().into_owned();
            args.extend(["--cert-file".to_owned(), path(&tls.cert)]);
            args.extend(["--key-file".to_owned(), path(&tls.key)]);
            if tls.client_cert_auth {
                args.push("--client-cert-auth".to_owned());
                args.extend(["--trusted-ca-file".to_owned(), path(&tls.ca)]);
            }
        }
        if let Some(port) = self.health_port {
            args.extend([
                "--listen-metrics-urls".to_owned(),
                format!("http://127.0.0.1:{port}"),
            ]);
        }
        if let Some(ttl) = self.options.auth_token_ttl {
            args.extend([
                "--auth-token-ttl".to_owned(),
                ttl.as_secs().max(1).to_string(),
            ]);
        }
        args
    }
}

impl EtcdServer {
    /// Starts a single-node cluster secured as `options` says and waits until it is healthy;
    /// [`EtcdServer::start`] is this without options. Panics, with the log, if it does not
    /// start.
    pub async fn start_with(options: EtcdOptions) -> Self {
        check_installed();
        let mut last = String::new();
        for _ in 0..3 {
            let member = Member::new(0);
            let cluster = initial_cluster(std::slice::from_ref(&member));
            let mut server = Self::new(member, cluster, new_token());
            server.security = Security {
                health_port: options.tls.as_ref().map(|_| server_port()),
                options: options.clone(),
            };
            match server.launch().await {
                Ok(()) => return server,
                Err(e) => {
                    last = e;
                    server.kill();
                }
            }
        }
        panic!("etcd did not start: {last}");
    }

    /// An etcd client of this server as `root` (before auth is on: anyone), with the test
    /// PKI's client certificate when the server uses TLS.
    async fn admin_client(&self, pki: Option<&EtcdPki>, root_password: Option<&str>) -> Client {
        let mut options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(5));
        if self.security.options.tls.is_some() {
            let pki = pki.expect("a TLS server needs its PKI for an admin client");
            options = options.with_tls(pki.etcd_client_tls(true));
        }
        if let Some(password) = root_password {
            options = options.with_user("root", password);
        }
        Client::connect([self.endpoint()], Some(options))
            .await
            .expect("admin client of the test etcd")
    }

    /// Creates `root` (password `root_password`, role `root`) and `user` (password
    /// `password`) whose one role `<user>-role` grants readwrite on the keys with `prefix`,
    /// then enables authentication. `pki` is needed for a TLS server.
    pub async fn enable_auth(
        &self,
        pki: Option<&EtcdPki>,
        root_password: &str,
        user: &str,
        password: &str,
        prefix: &str,
    ) {
        let mut c = self.admin_client(pki, None).await;
        let role = format!("{user}-role");
        let step = |what: &str, e: tenure_etcd::etcd_client::Error| -> ! {
            panic!("enabling etcd auth: {what}: {e}")
        };
        c.user_add("root", root_password, None)
            .await
            .unwrap_or_else(|e| step("add root", e));
        c.user_grant_role("root", "root")
            .await
            .unwrap_or_else(|e| step("grant root", e));
        c.role_add(&role)
            .await
            .unwrap_or_else(|e| step("add role", e));
        c.role_grant_permission(&role, Permission::read_write(prefix).with_prefix())
            .await
            .unwrap_or_else(|e| step("grant the prefix", e));
        c.user_add(user, password, None)
            .await
            .unwrap_or_else(|e| step("add user", e));
        c.user_grant_role(user, &role)
            .await
            .unwrap_or_else(|e| step("grant the role", e));
        c.auth_enable()
            .await
            .unwrap_or_else(|e| step("enable auth", e));
    }

    /// An etcd client authenticated as `root` (after [`Self::enable_auth`]).
    pub async fn root_client(&self, pki: Option<&EtcdPki>, root_password: &str) -> Client {
        self.admin_client(pki, Some(root_password)).await
    }
}
