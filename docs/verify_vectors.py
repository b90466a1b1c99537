#!/usr/bin/env python3
"""Re-derive every vector in crates/crypto/tests/vectors/v1.json from docs/CRYPTO.md alone.

Uses implementations that share no code with Sealroom's Rust crates: argon2-cffi (the
reference C Argon2), PyNaCl (libsodium's XChaCha20-Poly1305) and `cryptography` (OpenSSL's
X25519, HKDF-SHA256 and ChaCha20-Poly1305). Exits non-zero on the first mismatch.

    pip install argon2-cffi pynacl cryptography
    python3 docs/verify_vectors.py [path/to/v1.json]
"""

import hashlib
import json
import struct
import sys
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)

CHECKS = 0


def check(got: bytes | str, want: str, what: str) -> None:
    global CHECKS
    got_hex = got if isinstance(got, str) else got.hex()
    if got_hex != want:
        sys.exit(f"MISMATCH in {what}:\n  got  {got_hex[:120]}\n  want {want[:120]}")
    CHECKS += 1


def b(h: str) -> bytes:
    return bytes.fromhex(h)


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt or None, info=info).derive(ikm)


def raw_pub(sk: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def pad(payload: bytes) -> bytes:
    n = len(payload) + 1
    total = max(256, 1 << (n - 1).bit_length())
    return payload + b"\x80" + b"\x00" * (total - n)


def digits(username: str, key: bytes, label: bytes = b"sealroom/v1/safety-number") -> str:
    name = username.encode()
    h = hashlib.sha512(label + bytes([len(name)]) + name + key).digest()
    for _ in range(5200):
        h = hashlib.sha512(h + key).digest()
    return "".join(f"{int.from_bytes(h[5 * k:5 * k + 5], 'big') % 100000:05d}" for k in range(6))


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "crates/crypto/tests/vectors/v1.json"
    v = json.loads(path.read_text())

    for e in v["argon2id"]:
        out = hash_secret_raw(b(e["password_hex"]), b(e["salt_hex"]), time_cost=e["t"], memory_cost=e["m_kib"],
                              parallelism=e["p"], hash_len=32, type=Type.ID, version=19)
        check(out, e["out_hex"], f"argon2id m={e['m_kib']}")
        if e["m_kib"] == 65536 and e["t"] == 3 and e["p"] == 1:
            # The production entry is the input of the auth and backup derivations.
            for h in v["hkdf_sha256"]:
                if h["purpose"] in ("auth", "backup") and h["ikm_hex"] == e["out_hex"]:
                    label = b"sealroom/v1/" + h["purpose"].encode()
                    check(label, h["info_hex"], f"hkdf {h['purpose']} info")
                    check(hkdf(out, b"", label), h["okm_hex"], f"hkdf {h['purpose']}")

    for h in v["hkdf_sha256"]:
        check(hkdf(b(h["ikm_hex"]), b(h["salt_hex"]), b(h["info_hex"])), h["okm_hex"], f"hkdf {h['purpose']}")

    for x in v["x25519"]:
        check(raw_pub(b(x["a_secret_hex"])), x["a_public_hex"], "x25519 a public")
        check(raw_pub(b(x["b_secret_hex"])), x["b_public_hex"], "x25519 b public")
        shared = X25519PrivateKey.from_private_bytes(b(x["a_secret_hex"])).exchange(
            X25519PublicKey.from_public_bytes(b(x["b_public_hex"])))
        check(shared, x["shared_hex"], "x25519 shared")

    for p in v["pair_key"]:
        lo, hi = sorted([b(p["a_public_hex"]), b(p["b_public_hex"])])
        info = b"sealroom/v1/pair" + lo + hi
        check(info, p["info_hex"], "pair info")
        check(b"sealroom/v1/pair-salt", p["salt_hex"], "pair salt")
        check(hkdf(b(p["shared_hex"]), b"sealroom/v1/pair-salt", info), p["key_hex"], "pair key")

    for m in v["message"]:
        header = b"\x01" + b(m["client_msg_id_hex"]) + struct.pack(">Q", m["sent_at_ms"])
        aad = b"sealroom/v1/msg" + b(m["sender_public_hex"]) + b(m["recipient_public_hex"]) + header
        check(aad, m["aad_hex"], "message aad")
        check(pad(b(m["plaintext_hex"])), m["padded_hex"], "message padding")
        key, nonce = b(m["pair_key_hex"]), b(m["nonce_hex"])
        ct = crypto_aead_xchacha20poly1305_ietf_encrypt(b(m["padded_hex"]), aad, nonce, key)
        check(ct, m["ciphertext_hex"], "message ciphertext")
        check(header + nonce + ct, m["envelope_hex"], "message envelope")
        env = b(m["envelope_hex"])
        plain = crypto_aead_xchacha20poly1305_ietf_decrypt(env[49:], aad, env[25:49], key)
        check(plain.rstrip(b"\x00")[:-1], m["plaintext_hex"], "message decrypt + unpad")
        if m.get("upgrade") is not None:
            # Version 2's introduction, inside a version 1 message: 0x03 | Ed25519 public | group id.
            u = m["upgrade"]
            seed = Ed25519PrivateKey.from_private_bytes(b(u["signing_seed_hex"]))
            public = seed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            check(public, u["signing_public_hex"], "upgrade signing key")
            check(b"\x03" + public + b(u["group_id_hex"]), m["plaintext_hex"], "Upgrade payload")

    formats = set()
    for k in v["key_backup"]:
        name = k["username"].encode()
        fmt, gen = k["format"], k["generation"]
        formats.add(fmt)
        if fmt == 1:  # read only, as generation 0
            assert gen == 0
            header = b"\x01"
            aad = b"sealroom/v1/backup\x01" + bytes([len(name)]) + name
        else:  # format 2: the generation is in the header and authenticated in the AAD
            assert fmt == 2
            header = b"\x02" + struct.pack(">Q", gen)
            aad = b"sealroom/v1/backup\x02" + struct.pack(">Q", gen) + bytes([len(name)]) + name
        check(aad, k["aad_hex"], f"backup format {fmt} aad")
        ct = crypto_aead_xchacha20poly1305_ietf_encrypt(b(k["plaintext_hex"]), aad, b(k["nonce_hex"]),
                                                        b(k["backup_key_hex"]))
        check(ct, k["ciphertext_hex"], f"backup format {fmt} ciphertext")
        check(header + b(k["nonce_hex"]) + ct, k["sealed_hex"], f"backup format {fmt} sealed")
        # Another generation in the AAD does not open it: a rolled-back header is refused.
        if fmt == 2:
            other = b"sealroom/v1/backup\x02" + struct.pack(">Q", gen + 1) + bytes([len(name)]) + name
            try:
                crypto_aead_xchacha20poly1305_ietf_decrypt(ct, other, b(k["nonce_hex"]), b(k["backup_key_hex"]))
                raise SystemExit("backup opened under another generation")
            except SystemExit:
                raise
            except Exception:
                pass
        contents = b(k["plaintext_hex"])
        assert contents[0] == 1 and contents[1] == 1 and contents[2:6] == b"\x00\x00\x00\x20"
        x = v["x25519"][0]
        if k["username"] == "alice":
            check(contents[6:38], x["a_secret_hex"], "backup identity record")
        records, i = [], 1
        while i < len(contents):
            (length,) = struct.unpack(">I", contents[i + 1:i + 5])
            records.append((contents[i], contents[i + 5:i + 5 + length]))
            i += 5 + length
        assert i == len(contents), "backup records end exactly at the end"
        off = [value for tag, value in records if tag == 0x07]
        assert off == ([b""] if "archive off" in k.get("contents", "") else []), "0x07: empty, at most once"

    assert formats == {1, 2}, "vectors for both backup formats"

    for a in v["attachment"]:
        aead = ChaCha20Poly1305(b(a["file_key_hex"]))
        plain, size = b(a["plaintext_hex"]), a["chunk_size"]
        pieces = [plain[i:i + size] for i in range(0, len(plain), size)] or [b""]
        blob = b""
        for i, (piece, c) in enumerate(zip(pieces, a["chunks"], strict=True)):
            nonce = i.to_bytes(11, "big") + (b"\x01" if i == len(pieces) - 1 else b"\x00")
            check(nonce, c["nonce_hex"], f"attachment chunk {i} nonce")
            check(b"sealroom/v1/attachment", c["aad_hex"], "attachment aad")
            ct = aead.encrypt(nonce, piece, b"sealroom/v1/attachment")
            check(ct, c["ciphertext_hex"], f"attachment chunk {i}")
            blob += ct
        check(hashlib.sha256(blob).digest(), a["ciphertext_sha256_hex"], "attachment sha256")

    for s in v["safety_number"]:
        da = digits(s["a_username"], b(s["a_public_hex"]))
        db = digits(s["b_username"], b(s["b_public_hex"]))
        check("".join(sorted([da, db])), s["number"], "safety number")

    # Version 2: device certificates (Ed25519 by OpenSSL) and safety numbers over both keys.
    for c in v.get("device_certificate", []):
        user = Ed25519PrivateKey.from_private_bytes(b(c["user_seed_hex"]))
        public = user.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        check(public, c["user_public_hex"], "Ed25519 public key")
        name = c["username"].encode()
        body = (bytes([1, len(name)]) + name + b(c["device_id_hex"]) + b(c["leaf_key_hex"])
                + struct.pack(">Q", c["created_ms"]))
        signature = user.sign(b"sealroom/v2/device" + body)
        check(body + signature, c["certificate_hex"], "device certificate")
        Ed25519PublicKey.from_public_bytes(public).verify(signature, b"sealroom/v2/device" + body)
    for s2 in v.get("safety_number_v2", []):
        label = b"sealroom/v2/safety-number"
        da = digits(s2["a_username"], b(s2["a_public_hex"]) + b(s2["a_signing_public_hex"]), label)
        db = digits(s2["b_username"], b(s2["b_public_hex"]) + b(s2["b_signing_public_hex"]), label)
        check("".join(sorted([da, db])), s2["number"], "safety number v2")

    for a in v.get("archive_entry", []):
        owner, sender = a["owner"].encode(), a["sender"].encode()
        aad = (b"sealroom/v2/archive\x01" + bytes([len(owner)]) + owner
               + struct.pack(">QQ", a["conversation_id"], a["log_sequence"])
               + bytes([len(sender)]) + sender + struct.pack(">Q", a["sent_ms"]))
        check(aad, a["aad_hex"], "archive aad")
        key, nonce = b(a["archive_key_hex"]), b(a["nonce_hex"])
        ct = crypto_aead_xchacha20poly1305_ietf_encrypt(pad(b(a["plaintext_hex"])), aad, nonce, key)
        check(b"\x01" + nonce + ct, a["entry_hex"], "archive entry")
        if a.get("group_name") is not None:
            name = a["group_name"].encode()
            check(b"\x04" + bytes([len(name)]) + name, a["plaintext_hex"], "GroupName payload")

    # A device's sealed state: HKDF-SHA256 from the signing seed, then XChaCha20-Poly1305.
    for d in v.get("device_state", []):
        device_id, name = b(d["device_id_hex"]), d["username"].encode()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"sealroom/v2/device-state" + device_id).derive(b(d["user_seed_hex"]))
        check(key, d["state_key_hex"], "device state key")
        aad = b"sealroom/v2/device-state\x01" + bytes([len(name)]) + name + device_id
        check(aad, d["aad_hex"], "device state aad")
        nonce = b(d["nonce_hex"])
        ct = crypto_aead_xchacha20poly1305_ietf_encrypt(b(d["state_hex"]), aad, nonce, key)
        check(b"\x01" + nonce + ct, d["sealed_hex"], "device state")

    print(f"verify_vectors: {CHECKS} checks passed against {path.name} (argon2-cffi, libsodium, OpenSSL)")


if __name__ == "__main__":
    main()
