"""TLS and bearer tokens, as a real API server has them.

One throwaway certificate authority per server signs the serving certificate (SANs 127.0.0.1,
localhost and the in-cluster names ``kubernetes.default.svc``...); kubeconfigs carry it as
``certificate-authority-data``, pods find it at the service-account mount. Every request needs
``Authorization: Bearer`` with the admin token of the kubeconfig or a service-account token the
kubelet issued for a pod; anything else is 401 Unauthorized, as a real server answers. So the
flavor's in-cluster path (``load_incluster_config``: ``KUBERNETES_SERVICE_HOST``, the mounted
token and CA) is the one its orchestrator pods take here, as on a cluster.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: Where a pod's service-account credentials are mounted (what load_incluster_config reads).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVING_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local")


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
                 *, ca: bool) -> x509.Certificate:
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                                      key_encipherment=False, data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
    else:
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), *(x509.DNSName(n) for n in SERVING_NAMES)]
        builder = (builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(issuer_key, hashes.SHA256())


class Credentials:
    """The server's CA, serving certificate and tokens; files under a private folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="orcakit-kubeapi-"))
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orcakit-kubeapi-ca")])
        ca = _certificate("orcakit-kubeapi-ca", ca_key, ca_name, ca_key, ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        serving = _certificate("kube-apiserver", key, ca_name, ca_key, ca=False)
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM)
        self.ca_file = self._write("ca.crt", self.ca_pem)
        self._cert_file = self._write("apiserver.crt", serving.public_bytes(serialization.Encoding.PEM))
        self._key_file = self._write("apiserver.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), mode=0o600)
        self.admin_token = secrets.token_urlsafe(24)
        #: token -> the user it authenticates
        self._users = {self.admin_token: "kubernetes-admin"}

    def _write(self, name: str, data: bytes, mode: int = 0o644) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        path.chmod(mode)
        return path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._cert_file, self._key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """For raw requests in tests (what a client with the kubeconfig's CA trusts)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def issue(self, namespace: str, service_account: str) -> str:
        token = secrets.token_urlsafe(24)
        self._users[token] = f"system:serviceaccount:{namespace}:{service_account}"
        return token

    def revoke(self, token: str) -> None:
        self._users.pop(token, None)

    def user(self, authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").partition(" ")
        return self._users.get(token.strip()) if scheme.lower() == "bearer" else None
