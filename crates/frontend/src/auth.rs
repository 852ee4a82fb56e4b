//! Checking a client's answer to the greeting's scramble, for `mysql_native_password` and
//! `caching_sha2_password`, against a plain password or a stored `mysql_native_password` hash.
//!
//! caching_sha2_password's fast path needs SHA256(SHA256(password)). It is computed from a plain
//! password; for a stored hash it is learned the first time the user logs in by full
//! authentication (the password sent RSA-encrypted with the server's public key, as MySQL 8 does
//! after a restart) and kept in memory, as MySQL's cache does.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// What the server knows of a user's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Plain(String),
    /// SHA1(SHA1(password)): MySQL's `mysql_native_password` hash (`*` + 40 hex digits).
    NativeHash([u8; 20]),
    /// MySQL's `caching_sha2_password` hash: `$A$` + rounds/1000 as 3 hex digits + `$` + a
    /// 20-byte salt + the 43-character SHA-256 crypt of the password. Only caching_sha2 logins
    /// can check it (by full authentication, then by the fast path it teaches).
    Sha2Hash(String),
}

impl Credential {
    fn is_empty(&self) -> bool {
        matches!(self, Credential::Plain(p) if p.is_empty())
    }

    /// Whether `password` is this credential's password.
    fn matches(&self, password: &[u8]) -> bool {
        match self {
            Credential::Plain(p) => p.as_bytes() == password,
            Credential::NativeHash(h) => sha1(&sha1(password)) == *h,
            Credential::Sha2Hash(stored) => {
                parse_sha2_hash(stored).is_some_and(|(rounds, salt, digest)| {
                    sha256_crypt(password, salt, rounds) == digest
                })
            }
        }
    }

    /// The bytes that identify the stored secret: a fast-path digest learned for it is stale
    /// once they change.
    fn fingerprint(&self) -> Vec<u8> {
        match self {
            Credential::Plain(p) => p.as_bytes().to_vec(),
            Credential::NativeHash(h) => h.to_vec(),
            Credential::Sha2Hash(s) => s.as_bytes().to_vec(),
        }
    }
}

/// `$A$005$<salt: 20 bytes><digest: 43 characters>` → (rounds, salt, digest).
fn parse_sha2_hash(stored: &str) -> Option<(u32, &[u8], &str)> {
    let rest = stored.strip_prefix("$A$")?;
    let rounds = u32::from_str_radix(rest.get(..3)?, 16).ok()? * 1000;
    let rest = rest.get(3..)?.strip_prefix('$')?.as_bytes();
    if rest.len() != 20 + 43 || rounds == 0 {
        return None;
    }
    let digest = std::str::from_utf8(&rest[20..]).ok()?;
    Some((rounds, &rest[..20], digest))
}

/// A caching_sha2_password hash of `password` with `salt` (20 bytes), as MySQL stores it.
pub fn sha2_password_hash(password: &str, salt: &[u8; 20]) -> String {
    let salt_text = String::from_utf8_lossy(salt);
    format!(
        "$A$005${salt_text}{}",
        sha256_crypt(password.as_bytes(), salt, 5000)
    )
}

/// SHA-256 crypt (Drepper's algorithm, as glibc's `$5$` and MySQL's caching_sha2 storage use),
/// the 43-character digest only.
fn sha256_crypt(password: &[u8], salt: &[u8], rounds: u32) -> String {
    let (p, s) = (password, salt);
    let b = sha256(&[p, s, p]);
    let mut a = Sha256::new();
    a.update(p);
    a.update(s);
    let mut n = p.len();
    while n > 32 {
        a.update(b);
        n -= 32;
    }
    a.update(&b[..n]);
    let mut bits = p.len();
    while bits > 0 {
        if bits & 1 == 1 {
            a.update(b);
        } else {
            a.update(p);
        }
        bits >>= 1;
    }
    let mut digest: [u8; 32] = a.finalize().into();
    let repeat = |block: &[u8], times: usize| {
        let mut h = Sha256::new();
        for _ in 0..times {
            h.update(block);
        }
        let d: [u8; 32] = h.finalize().into();
        d
    };
    let dp = repeat(p, p.len());
    let p_seq: Vec<u8> = dp.iter().cycle().take(p.len()).copied().collect();
    let ds = repeat(s, 16 + usize::from(digest[0]));
    let s_seq: Vec<u8> = ds.iter().cycle().take(s.len()).copied().collect();
    for i in 0..rounds {
        let mut c = Sha256::new();
        if i % 2 == 1 {
            c.update(&p_seq);
        } else {
            c.update(digest);
        }
        if i % 3 != 0 {
            c.update(&s_seq);
        }
        if i % 7 != 0 {
            c.update(&p_seq);
        }
        if i % 2 == 1 {
            c.update(digest);
        } else {
            c.update(&p_seq);
        }
        digest = c.finalize().into();
    }
    const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(43);
    let mut put = |b2: u8, b1: u8, b0: u8, n: usize| {
        let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
        for _ in 0..n {
            out.push(char::from(ITOA64[(w & 0x3f) as usize]));
            w >>= 6;
        }
    };
    let d = &digest;
    for (x, y, z) in [
        (0, 10, 20),
        (21, 1, 11),
        (12, 22, 2),
        (3, 13, 23),
        (24, 4, 14),
        (15, 25, 5),
        (6, 16, 26),
        (27, 7, 17),
        (18, 28, 8),
        (9, 19, 29),
    ] {
        put(d[x], d[y], d[z], 4);
    }
    put(0, d[31], d[30], 3);
    out
}

/// MySQL's `mysql_native_password` hash of a password, as `mysql.user` stores it:
/// `*` and the upper-case hex of SHA1(SHA1(password)).
pub fn native_password_hash(password: &str) -> String {
    let h = sha1(&sha1(password.as_bytes()));
    let hex: String = h.iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn xor<const N: usize>(a: &[u8; N], b: &[u8]) -> [u8; N] {
    let mut out = *a;
    for (o, b) in out.iter_mut().zip(b) {
        *o ^= b;
    }
    out
}

/// mysql_native_password: the client sends SHA1(pw) XOR SHA1(salt + SHA1(SHA1(pw))).
pub(crate) fn verify_native(cred: &Credential, salt: &[u8], answer: &[u8]) -> bool {
    if cred.is_empty() {
        return answer.is_empty();
    }
    let stored = match cred {
        Credential::Plain(p) => sha1(&sha1(p.as_bytes())),
        Credential::NativeHash(h) => *h,
        // No SHA1 of the password is known: only caching_sha2 can log this user in.
        Credential::Sha2Hash(_) => return false,
    };
    if answer.len() != 20 {
        return false;
    }
    let candidate = xor(&sha1(&[salt, &stored].concat()), answer);
    sha1(&candidate) == stored
}

/// caching_sha2_password's fast path, given D = SHA256(SHA256(pw)): the client sends
/// SHA256(pw) XOR SHA256(D + salt).
fn verify_sha2_fast(digest: &[u8; 32], salt: &[u8], answer: &[u8]) -> bool {
    if answer.len() != 32 {
        return false;
    }
    let candidate = xor(&sha256(&[digest, salt]), answer);
    sha256(&[&candidate]) == *digest
}

/// What a caching_sha2_password check decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sha2Verdict {
    Accepted,
    Denied,
    /// The server cannot tell from the scramble: full authentication is needed.
    NeedFullAuth,
}

/// Shared by every connection: the caching_sha2 digests learned so far.
#[derive(Default)]
pub(crate) struct AuthState {
    sha2_cache: Mutex<HashMap<String, Learned>>,
}

/// A user's SHA256(SHA256(password)), and the stored hash it was learned for (a changed hash
/// makes it stale).
type Learned = (Vec<u8>, [u8; 32]);

/// The process's RSA key pair (and its public key as PEM), made once, on first use.
fn key() -> &'static (RsaPrivateKey, String) {
    static KEY: OnceLock<(RsaPrivateKey, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key generation");
        let pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM encoding");
        (key, pem)
    })
}

/// Makes the key pair on a thread of its own (it takes a moment), so that no client waits for
/// it on an async worker. Once per process.
pub(crate) fn prepare_key() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            key();
        });
    });
}

impl AuthState {
    pub(crate) fn verify_sha2(
        &self,
        user: &str,
        cred: &Credential,
        salt: &[u8],
        answer: &[u8],
    ) -> Sha2Verdict {
        if cred.is_empty() {
            return if answer.is_empty() {
                Sha2Verdict::Accepted
            } else {
                Sha2Verdict::Denied
            };
        }
        let digest = match cred {
            Credential::Plain(p) => sha256(&[&sha256(&[p.as_bytes()])]),
            stored => {
                let fingerprint = stored.fingerprint();
                match self.sha2_cache.lock().expect("auth cache").get(user) {
                    Some((for_hash, digest)) if *for_hash == fingerprint => *digest,
                    _ => return Sha2Verdict::NeedFullAuth,
                }
            }
        };
        if verify_sha2_fast(&digest, salt, answer) {
            Sha2Verdict::Accepted
        } else {
            Sha2Verdict::Denied
        }
    }

    /// The public key as PEM, for clients that ask for it.
    pub(crate) fn public_key_pem(&self) -> &'static str {
        &key().1
    }

    /// Full authentication over TLS: the client's password and a NUL, in clear. On success the
    /// fast-path digest is remembered.
    pub(crate) fn verify_clear(&self, user: &str, cred: &Credential, reply: &[u8]) -> bool {
        let password = reply.strip_suffix(&[0]).unwrap_or(reply);
        self.accept_password(user, cred, password)
    }

    fn accept_password(&self, user: &str, cred: &Credential, password: &[u8]) -> bool {
        if !cred.matches(password) {
            return false;
        }
        if !matches!(cred, Credential::Plain(_)) {
            let digest = sha256(&[&sha256(&[password])]);
            self.sha2_cache
                .lock()
                .expect("auth cache")
                .insert(user.to_string(), (cred.fingerprint(), digest));
        }
        true
    }

    /// Full authentication: the client's RSA-OAEP-encrypted (password + NUL) XOR salt. On
    /// success the fast-path digest is remembered.
    pub(crate) fn verify_full(
        &self,
        user: &str,
        cred: &Credential,
        salt: &[u8],
        encrypted: &[u8],
    ) -> bool {
        let Ok(plain) = key().0.decrypt(Oaep::new::<Sha1>(), encrypted) else {
            return false;
        };
        let mut password: Vec<u8> = plain
            .iter()
            .zip(salt.iter().cycle())
            .map(|(p, s)| p ^ s)
            .collect();
        if password.last() == Some(&0) {
            password.pop();
        }
        self.accept_password(user, cred, &password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::scramble::{scramble_native, scramble_sha256};

    /// SELECT PASSWORD('secret') in MySQL 5.7 / MariaDB, checked against our SHA1(SHA1()).
    fn secret_hash() -> [u8; 20] {
        let h = sha1(&sha1(b"secret"));
        let hex: String = h.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, "14E65567ABDB5135D0CFD9A70B3032C179A49EE7");
        h
    }

    #[test]
    fn native_answers_check_against_plain_and_hash() {
        let salt = b"abcdefghij0123456789";
        let answer = scramble_native(salt, b"secret").unwrap();
        let hash = Credential::NativeHash(secret_hash());
        for cred in [Credential::Plain("secret".into()), hash.clone()] {
            assert!(verify_native(&cred, salt, &answer));
            assert!(!verify_native(
                &cred,
                salt,
                &scramble_native(salt, b"other").unwrap()
            ));
            assert!(!verify_native(&cred, salt, b""));
        }
        assert!(hash.matches(b"secret") && !hash.matches(b"Secret"));
    }

    #[test]
    fn sha2_fast_path_needs_the_digest() {
        let state = AuthState::default();
        let salt = b"abcdefghij0123456789";
        let answer = scramble_sha256(salt, b"secret").unwrap();
        let plain = Credential::Plain("secret".into());
        assert_eq!(
            state.verify_sha2("u", &plain, salt, &answer),
            Sha2Verdict::Accepted
        );
        let wrong = scramble_sha256(salt, b"nope").unwrap();
        assert_eq!(
            state.verify_sha2("u", &plain, salt, &wrong),
            Sha2Verdict::Denied
        );
        let hash = Credential::NativeHash(secret_hash());
        assert_eq!(
            state.verify_sha2("u", &hash, salt, &answer),
            Sha2Verdict::NeedFullAuth
        );
    }

    #[test]
    fn sha256_crypt_matches_the_published_vector() {
        // glibc: crypt("Hello world!", "$5$saltstring") = "$5$saltstring$" + this.
        assert_eq!(
            sha256_crypt(b"Hello world!", b"saltstring", 5000),
            "5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
        );
        let stored = sha2_password_hash("secret", b"abcdefghij0123456789");
        assert!(stored.starts_with("$A$005$abcdefghij0123456789"));
        let cred = Credential::Sha2Hash(stored);
        assert!(cred.matches(b"secret"));
        assert!(!cred.matches(b"Secret"));
    }
}
