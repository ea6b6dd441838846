//! Throwaway certificates for TLS tests, made with the `openssl` command line (and the JDK's
//! `keytool` for the server's PKCS12 truststore): a CA, a server certificate for `127.0.0.1`
//! and `localhost`, a client certificate, and an unrelated second CA.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The password of the generated PKCS12 stores.
pub const STORE_PASSWORD: &str = "tenure-test";

/// Certificates and keys in a temporary directory (removed when dropped).
#[derive(Debug)]
pub struct TestPki {
    dir: tempfile::TempDir,
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (needed for TLS tests): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 key `<name>.key` and a CSR `<name>.csr` for `cn`.
fn key_and_csr(dir: &Path, name: &str, cn: &str) {
    run(
        dir,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
}

/// A self-signed CA `<name>.pem` with key `<name>.key`.
fn ca(dir: &Path, name: &str) {
    run(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// `<name>.pem` for `<name>.csr`, signed by the CA `ca`.
fn sign(dir: &Path, name: &str, ca: &str) {
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        "basicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth,clientAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write the extensions file");
    run(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

impl TestPki {
    /// Generates everything (a second or two).
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tenure-pki-")
            .tempdir()
            .expect("temporary directory");
        let d = dir.path();
        ca(d, "ca");
        ca(d, "other-ca");
        for (name, cn) in [("server", "localhost"), ("client", "tenure-client")] {
            key_and_csr(d, name, cn);
            sign(d, name, "ca");
        }
        let pass = format!("pass:{STORE_PASSWORD}");
        run(
            d,
            "openssl",
            &[
                "pkcs12",
                "-export",
                "-in",
                "server.pem",
                "-inkey",
                "server.key",
                "-certfile",
                "ca.pem",
                "-name",
                "server",
                "-out",
                "server.p12",
                "-passout",
                &pass,
            ],
        );
        run(
            d,
            "keytool",
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-file",
                "ca.pem",
                "-keystore",
                "trust.p12",
                "-storetype",
                "PKCS12",
                "-storepass",
                STORE_PASSWORD,
            ],
        );
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate (PEM) that signed the server and client certificates.
    pub fn ca_pem(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A CA certificate (PEM) that signed nothing the server has.
    pub fn other_ca_pem(&self) -> PathBuf {
        self.path("other-ca.pem")
    }

    /// The client certificate (PEM), signed by [`Self::ca_pem`].
    pub fn client_cert_pem(&self) -> PathBuf {
        self.path("client.pem")
    }

    /// The client certificate's private key (PEM).
    pub fn client_key_pem(&self) -> PathBuf {
        self.path("client.key")
    }

    /// The server's PKCS12 keystore (its key and certificate), password [`STORE_PASSWORD`].
    pub fn server_keystore(&self) -> PathBuf {
        self.path("server.p12")
    }

    /// The server's PKCS12 truststore (the CA), password [`STORE_PASSWORD`].
    pub fn server_truststore(&self) -> PathBuf {
        self.path("trust.p12")
    }
}
