//! Certificate authorities made for a test (rcgen): a CA file, server certificates for the
//! loopback address and client certificates, written as PEM files the daemons read.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A certificate authority whose files live in a test directory.
pub struct Pki {
    dir: PathBuf,
    name: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as files and as bytes.
pub struct Issued {
    /// The PEM certificate file.
    pub cert: PathBuf,
    /// The PEM private key file.
    pub key: PathBuf,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl Pki {
    /// A new CA named `name`; its certificate is written to `<dir>/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        fs::write(dir.join(format!("{name}-ca.pem")), issuer.pem()).expect("CA file");
        Pki {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            issuer,
        }
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A certificate for `127.0.0.1` and `localhost`, written as `<stem>.pem` and
    /// `<stem>-key.pem`, with `common_name` as its subject.
    pub fn issue(&self, stem: &str, common_name: &str) -> Issued {
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let mut params = CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let issued = Issued {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}-key.pem")),
            der: cert.der().to_vec(),
        };
        fs::write(&issued.cert, cert.pem()).expect("certificate file");
        fs::write(&issued.key, key.serialize_pem()).expect("key file");
        issued
    }

    /// A client that trusts only this CA, presenting `identity` when given.
    pub fn client(&self, identity: Option<&Issued>) -> reqwest::blocking::Client {
        let ca = fs::read(self.ca_file()).expect("CA file");
        let mut builder = tda_daemon::tls::blocking_client_builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("CA pem"))
            .tls_info(true)
            .timeout(std::time::Duration::from_secs(10));
        if let Some(id) = identity {
            let mut pem = fs::read(&id.cert).expect("certificate");
            pem.extend(fs::read(&id.key).expect("key"));
            builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
        }
        builder.build().expect("client")
    }
}
