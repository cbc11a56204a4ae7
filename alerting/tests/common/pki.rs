//! Throwaway TLS material made with the `openssl` CLI: a CA, a server
//! certificate for `localhost` and 127.0.0.1 signed by it, a client
//! certificate signed by it, and an unrelated CA.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Certificates and keys (PEM) in a temporary directory.
pub struct Pki {
    /// The CA that signed `server` and `client`.
    pub ca: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
    /// Server certificate (SAN `localhost`, `127.0.0.1`) and key.
    pub server_cert: PathBuf,
    /// The server certificate's key.
    pub server_key: PathBuf,
    /// Client certificate (`CN=vigie`, clientAuth).
    pub client_cert: PathBuf,
    /// The client certificate's key.
    pub client_key: PathBuf,
    /// The directory holding them.
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("/usr/bin/openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run /usr/bin/openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

fn ca(dir: &Path, name: &str, cn: &str) {
    let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
    args.extend(EC);
    let (key, pem, subj) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN={cn}"),
    );
    args.extend([
        "-keyout",
        &key,
        "-out",
        &pem,
        "-subj",
        &subj,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
}

fn leaf(dir: &Path, name: &str, cn: &str, ext: &str) {
    let (key, csr, pem, extfile, subj) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
        format!("/CN={cn}"),
    );
    std::fs::write(dir.join(&extfile), ext).expect("write ext");
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
    openssl(dir, &args);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &extfile,
        ],
    );
}

/// Makes a fresh set.
pub fn pki() -> Pki {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    ca(&dir, "ca", "Vigie Test CA");
    ca(&dir, "other-ca", "Somebody Else's CA");
    leaf(
        &dir,
        "server",
        "localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    );
    leaf(
        &dir,
        "client",
        "vigie",
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    );
    Pki {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        dir,
        _tmp: tmp,
    }
}
