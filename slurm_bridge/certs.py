"""OpenSSH user certificates: read their validity window, tell an expired one.

Sites such as NERSC (sshproxy) hand out short-lived certificates (``ssh-keygen -s ca``)
beside the private key. ``certificate_validity`` reads one (the ``*-cert.pub`` line,
bytes as in a Secret) so the operator can show when it expires; ``CertificateValidity``
says whether it is valid at a given moment. ssh.py uses it to turn the server's refusal
of an expired certificate into ``CredentialsExpired`` (errors.py).

The certificate is parsed here (PROTOCOL.certkeys: the key type's public fields, then
serial, type, key id, principals, valid after, valid before), with no dependency.
Neighbours: ssh.py (``SshTarget.certificate``), errors.py.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["CertificateValidity", "certificate_validity"]

# OpenSSH writes "forever" as the largest 64-bit value; "always" as 0.
_FOREVER = 2**64 - 1
_USER_CERT = 1
# Length-prefixed public-key fields before the serial, per certificate type prefix.
_KEY_FIELDS = {
    "ssh-ed25519-cert-v01@openssh.com": 1,
    "ssh-rsa-cert-v01@openssh.com": 2,
    "ssh-dss-cert-v01@openssh.com": 4,
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": 2,
    "ecdsa-sha2-nistp384-cert-v01@openssh.com": 2,
    "ecdsa-sha2-nistp521-cert-v01@openssh.com": 2,
    "sk-ssh-ed25519-cert-v01@openssh.com": 2,
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": 3,
}


@dataclass(frozen=True, slots=True)
class CertificateValidity:
    """The validity window of a certificate (``None``: unbounded on that side)."""

    key_id: str
    principals: tuple[str, ...]
    valid_after: datetime | None
    valid_before: datetime | None

    def expired(self, now: datetime | None = None) -> bool:
        """True when ``now`` (default: the current time) is past ``valid_before``."""
        moment = now or datetime.now(UTC)
        return self.valid_before is not None and moment >= self.valid_before

    def not_yet_valid(self, now: datetime | None = None) -> bool:
        """True when ``now`` is before ``valid_after``."""
        moment = now or datetime.now(UTC)
        return self.valid_after is not None and moment < self.valid_after

    def describe(self) -> str:
        """``valid from … until …`` in UTC, for messages and status."""
        after = self.valid_after.isoformat() if self.valid_after else "always"
        before = self.valid_before.isoformat() if self.valid_before else "forever"
        return f"certificate {self.key_id!r} valid from {after} until {before}"


def certificate_validity(certificate: bytes) -> CertificateValidity:
    """The validity of an OpenSSH user certificate (a ``*-cert.pub`` line); ``ValueError``
    if it is not one."""
    try:
        words = certificate.decode("ascii").split()
        blob = base64.b64decode(words[1], validate=True)
        reader = _Reader(blob)
        cert_type = reader.string().decode("ascii")
        fields = _KEY_FIELDS.get(cert_type)
        if fields is None or cert_type != words[0]:
            raise ValueError(f"unsupported certificate type {words[0]!r}")
        reader.string()  # nonce
        for _ in range(fields):
            reader.string()
        reader.uint64()  # serial
        kind = reader.uint32()
        key_id = reader.string().decode("utf-8", errors="replace")
        packed = _Reader(reader.string())
        principals = []
        while not packed.done:
            principals.append(packed.string().decode("utf-8", errors="replace"))
        valid_after, valid_before = reader.uint64(), reader.uint64()
    except (UnicodeDecodeError, IndexError, binascii.Error, struct.error) as exc:
        raise ValueError(f"not an OpenSSH certificate: {exc}") from exc
    if kind != _USER_CERT:
        raise ValueError(f"certificate {key_id!r} is a host certificate, not a user one")
    return CertificateValidity(
        key_id=key_id,
        principals=tuple(principals),
        valid_after=_time(valid_after, low=True),
        valid_before=_time(valid_before, low=False),
    )


class _Reader:
    """SSH wire-format reader (RFC 4251 ``string``, ``uint32``, ``uint64``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def done(self) -> bool:
        return self._pos >= len(self._data)

    def _take(self, size: int) -> bytes:
        if self._pos + size > len(self._data):
            raise struct.error("truncated certificate")
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def uint32(self) -> int:
        return int(struct.unpack(">I", self._take(4))[0])

    def uint64(self) -> int:
        return int(struct.unpack(">Q", self._take(8))[0])

    def string(self) -> bytes:
        return self._take(self.uint32())


def _time(value: int, *, low: bool) -> datetime | None:
    if (low and value <= 0) or (not low and value >= _FOREVER):
        return None
    return datetime.fromtimestamp(min(value, 253402300799), tz=UTC)  # at most year 9999
