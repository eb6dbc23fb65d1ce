"""Test certificates made with openssl and keytool, as an operator makes them: a CA, the broker's
keystore (keytool-written PKCS12, and a JKS copy), a PKCS12 truststore, client certificates.
Used by tests/e2e/test_tls.py and benches/tls_vs_broker.py."""
import os
import subprocess


def run(*cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{cmd}: {r.stdout}{r.stderr}"


def make_pki(d):
    """A CA; the broker's key and certificate (SAN localhost, 127.0.0.1) in a keytool-written
    PKCS12 keystore, the CA in a PKCS12 truststore; a client certificate for carol (PEM)."""
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "30", "-subj", "/CN=logferry-e2e-ca", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, subj, ext in [("server", "/CN=localhost", ["-extfile", "san.ext"]),
                            ("carol", "/O=logferry-e2e/OU=readers/CN=carol", ["-extfile", "client.ext"]),
                            ("old", "/CN=old", [])]:
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", subj, cwd=d)
        run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "30", *ext, cwd=d)
    run("openssl", "pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key", "-certfile", "ca.pem",
        "-name", "broker", "-out", "openssl.p12", "-passout", "pass:ks-secret", cwd=d)
    keytool = ["keytool", "-importkeystore", "-noprompt", "-srckeystore", "openssl.p12", "-srcstoretype", "PKCS12",
               "-srcstorepass", "ks-secret", "-deststorepass", "ks-secret"]
    run(*keytool, "-destkeystore", "keystore.p12", "-deststoretype", "PKCS12", cwd=d)
    run(*keytool, "-destkeystore", "keystore.jks", "-deststoretype", "JKS", cwd=d)
    run("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem", "-keystore", "truststore.p12",
        "-storetype", "PKCS12", "-storepass", "ts-secret", cwd=d)
    return {k: os.path.join(d, v) for k, v in
            [("ca", "ca.pem"), ("keystore", "keystore.p12"), ("jks", "keystore.jks"), ("truststore", "truststore.p12"),
             ("carol_cert", "carol.pem"), ("carol_key", "carol.key"), ("old_cert", "old.pem"), ("old_key", "old.key")]}
