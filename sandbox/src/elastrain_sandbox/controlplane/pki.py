"""The certificates a private control plane needs, generated fresh for each cluster.

One cluster CA signs the API server's serving certificate and every client certificate; a
second CA is the front proxy's (aggregation), as kubeadm lays it out. Client identities are
what the authorizers key on: ``O=system:masters`` for the admin (and for the API server's calls
to kubelets), ``CN=system:kube-controller-manager`` and ``CN=system:kube-scheduler`` for the
components, so that the default RBAC bootstrap roles apply to them exactly as on kubeadm.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The first address of the service range: the ``kubernetes`` Service's ClusterIP.
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
_VALIDITY = datetime.timedelta(days=365)
_API_SERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key, on disk as PEM files."""

    cert: Path
    key: Path


@dataclass
class _Signer:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _write(directory: Path, stem: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> KeyPair:
    pair = KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    return pair


def _builder(
    subject: x509.Name, issuer: x509.Name, public: rsa.RSAPublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        # A minute of slack: a freshly started component must never see "not yet valid".
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + _VALIDITY)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs; a leaf signs and enciphers keys (TLS, RSA)."""
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        key_encipherment=not ca,
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _ca(directory: Path, stem: str, common_name: str) -> tuple[_Signer, KeyPair]:
    key = _new_key()
    subject = _name(common_name)
    cert = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _Signer(cert, key), _write(directory, stem, cert, key)


def _leaf(
    directory: Path,
    stem: str,
    signer: _Signer,
    subject: x509.Name,
    *,
    server: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> KeyPair:
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject, signer.cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if dns or ips:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _write(directory, stem, builder.sign(signer.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    """Every file the control plane's flags and kubeconfigs name."""

    ca: KeyPair
    front_proxy_ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    kubelet_client: KeyPair
    front_proxy_client: KeyPair
    service_account_key: Path
    service_account_pub: Path
    signer: _Signer

    def node_client(self, directory: Path, node: str) -> KeyPair:
        """A kubelet's client identity, ``system:node:<node>`` in ``system:nodes``, as the Node
        authorizer and NodeRestriction expect."""
        return _leaf(
            directory, f"node-{node}", self.signer, _name(f"system:node:{node}", "system:nodes")
        )

    def client(self, directory: Path, stem: str, common_name: str) -> KeyPair:
        """A client identity of the cluster CA (an add-on's user, such as metrics-server)."""
        return _leaf(directory, stem, self.signer, _name(common_name))

    def serving(
        self, directory: Path, stem: str, *, dns: tuple[str, ...], ips: tuple[str, ...]
    ) -> KeyPair:
        """A serving certificate from the cluster CA (a kubelet's daemon endpoint, an
        aggregated API server)."""
        return _leaf(directory, stem, self.signer, _name(stem), server=True, dns=dns, ips=ips)


def generate(directory: Path) -> Pki:
    """Write a complete PKI into ``directory`` (created if needed) and describe it."""
    directory.mkdir(parents=True, exist_ok=True)
    signer, ca = _ca(directory, "ca", "elastrain-sandbox-ca")
    proxy_signer, proxy_ca = _ca(directory, "front-proxy-ca", "elastrain-sandbox-front-proxy-ca")
    apiserver = _leaf(
        directory,
        "apiserver",
        signer,
        _name("kube-apiserver"),
        server=True,
        dns=_API_SERVER_NAMES,
        ips=("127.0.0.1", KUBERNETES_SERVICE_IP),
    )
    sa_key = _new_key()
    sa_private = directory / "sa.key"
    sa_public = directory / "sa.pub"
    sa_private.write_bytes(
        sa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    sa_private.chmod(0o600)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Pki(
        ca=ca,
        front_proxy_ca=proxy_ca,
        apiserver=apiserver,
        admin=_leaf(directory, "admin", signer, _name("kubernetes-admin", "system:masters")),
        controller_manager=_leaf(
            directory, "controller-manager", signer, _name("system:kube-controller-manager")
        ),
        scheduler=_leaf(directory, "scheduler", signer, _name("system:kube-scheduler")),
        kubelet_client=_leaf(
            directory,
            "apiserver-kubelet-client",
            signer,
            _name("kube-apiserver-kubelet-client", "system:masters"),
        ),
        front_proxy_client=_leaf(
            directory, "front-proxy-client", proxy_signer, _name("front-proxy-client")
        ),
        service_account_key=sa_private,
        service_account_pub=sa_public,
        signer=signer,
    )
