//! The connection phase: greeting, handshake response, optional auth switch, verdict.

use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthSwitchRequest, HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};
use rand::RngExt;

use crate::auth::{verify_native, AuthState, Credential, Sha2Verdict};
use crate::io::{PacketIo, ReadError};
use crate::SqlError;

const NATIVE: &[u8] = b"mysql_native_password";
const CACHING_SHA2: &[u8] = b"caching_sha2_password";
/// caching_sha2_password's "fast authentication succeeded" (AuthMoreData 0x03).
const FAST_AUTH_OK: &[u8] = &[0x01, 0x03];
/// caching_sha2_password's "the server needs the password itself" (AuthMoreData 0x04).
const PERFORM_FULL_AUTH: &[u8] = &[0x01, 0x04];
/// utf8mb4_general_ci: known to every client, old and new.
const DEFAULT_COLLATION: u8 = 45;

pub(crate) fn server_capabilities() -> CapabilityFlags {
    CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_FOUND_ROWS
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_NO_SCHEMA
        | CapabilityFlags::CLIENT_ODBC
        | CapabilityFlags::CLIENT_IGNORE_SPACE
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_INTERACTIVE
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_CONNECT_ATTRS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_COMPRESS
        | CapabilityFlags::CLIENT_ZSTD_COMPRESSION_ALGORITHM
}

/// 20 random printable bytes, never NUL or `$` (clients treat both specially), as MySQL does.
fn new_salt() -> [u8; 20] {
    let mut rng = rand::rng();
    let mut salt = [0u8; 20];
    for b in &mut salt {
        *b = loop {
            let c: u8 = rng.random_range(0x21..0x7f);
            if c != b'$' {
                break c;
            }
        };
    }
    salt
}

/// A client that passed authentication.
pub(crate) struct Authenticated {
    pub user: String,
    pub database: Option<String>,
    pub caps: CapabilityFlags,
    /// The greeting's scramble: COM_CHANGE_USER answers it again.
    pub salt: [u8; 20],
    /// The client chose zstd compression at this level.
    pub zstd_level: Option<i32>,
}

/// Decides a client's answer to `salt` under `plugin`, exchanging what the plugin needs after it
/// (caching_sha2's fast-auth notice, or full authentication). The caller sends the OK or ERR.
pub(crate) async fn authenticate(
    io: &mut PacketIo,
    state: &AuthState,
    plugin: &[u8],
    user: &str,
    cred: &Credential,
    salt: &[u8],
    answer: &[u8],
) -> Result<bool, ReadError> {
    match plugin {
        NATIVE => Ok(verify_native(cred, salt, answer)),
        CACHING_SHA2 => match state.verify_sha2(user, cred, salt, answer) {
            Sha2Verdict::Denied => Ok(false),
            Sha2Verdict::Accepted => {
                if cred != &Credential::Plain(String::new()) {
                    io.write_packet(FAST_AUTH_OK).await?;
                }
                Ok(true)
            }
            Sha2Verdict::NeedFullAuth => {
                io.write_packet(PERFORM_FULL_AUTH).await?;
                io.flush().await?;
                let mut reply = io.read_packet().await?;
                // Over TLS the client sends the password itself.
                if io.is_tls() {
                    return Ok(state.verify_clear(user, cred, &reply));
                }
                // Without TLS the password comes RSA-encrypted: the client may first ask for
                // the key (a cleartext password is refused: it would be one of these bytes).
                if reply == [0x02] {
                    let mut key = vec![0x01];
                    key.extend_from_slice(state.public_key_pem().as_bytes());
                    io.write_packet(&key).await?;
                    io.flush().await?;
                    reply = io.read_packet().await?;
                }
                Ok(state.verify_full(user, cred, salt, &reply))
            }
        },
        _ => Ok(false),
    }
}

/// The plugin a client named, if we speak it; else `None` (the client is asked to switch).
pub(crate) fn known_plugin(name: Option<&[u8]>) -> Option<&'static [u8]> {
    match name {
        None | Some(NATIVE) => Some(NATIVE),
        Some(CACHING_SHA2) => Some(CACHING_SHA2),
        Some(_) => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Sent to the client before closing.
    #[error("{0}")]
    Refused(SqlError),
}

fn malformed() -> HandshakeError {
    HandshakeError::Refused(SqlError::new(1043, "08S01", "Bad handshake"))
}

/// What the server offers and demands of TLS.
pub(crate) struct TlsPolicy<'a, R: Fn(&str) -> bool> {
    pub acceptor: Option<&'a tokio_rustls::TlsAcceptor>,
    /// Users who may only log in over TLS.
    pub required: R,
}

pub(crate) async fn handshake(
    io: &mut PacketIo,
    conn_id: u32,
    server_version: &str,
    state: &AuthState,
    credential_of: impl Fn(&str) -> Option<Credential>,
    tls: TlsPolicy<'_, impl Fn(&str) -> bool>,
) -> Result<Authenticated, HandshakeError> {
    let salt = new_salt();
    let mut scramble_2 = salt[8..].to_vec();
    scramble_2.push(0);
    let greeting = HandshakePacket::new(
        10,
        server_version.as_bytes(),
        conn_id,
        salt[..8].try_into().expect("8 bytes"),
        Some(scramble_2),
        if tls.acceptor.is_some() {
            server_capabilities() | CapabilityFlags::CLIENT_SSL
        } else {
            server_capabilities()
        },
        DEFAULT_COLLATION,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(NATIVE),
    );
    let mut buf = Vec::new();
    greeting.serialize(&mut buf);
    io.write_packet(&buf).await?;
    io.flush().await?;

    let mut packet = io.read_packet().await?;
    if packet.len() < 4 {
        return Err(malformed());
    }
    let mut client_caps = CapabilityFlags::from_bits_truncate(u32::from_le_bytes(
        packet[..4].try_into().expect("4 bytes"),
    ));
    // An SSL request (the response's first 32 bytes): TLS, then the whole response again.
    if let (Some(acceptor), true) = (
        tls.acceptor,
        client_caps.contains(CapabilityFlags::CLIENT_SSL) && packet.len() == 32,
    ) {
        io.upgrade_tls(acceptor).await?;
        packet = io.read_packet().await?;
        if packet.len() < 4 {
            return Err(malformed());
        }
        client_caps = CapabilityFlags::from_bits_truncate(u32::from_le_bytes(
            packet[..4].try_into().expect("4 bytes"),
        ));
    }
    if !client_caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
        return Err(HandshakeError::Refused(SqlError::new(
            1043,
            "08S01",
            "clients older than protocol 4.1 are not supported",
        )));
    }
    if client_caps.contains(CapabilityFlags::CLIENT_SSL) && !io.is_tls() {
        return Err(HandshakeError::Refused(SqlError::new(
            1043,
            "08S01",
            "TLS is not available on this server",
        )));
    }
    let response =
        HandshakeResponse::deserialize((), &mut ParseBuf(&packet)).map_err(|_| malformed())?;
    let caps = client_caps & server_capabilities();
    // zstd's level is the handshake response's last byte.
    let zstd_level = caps
        .contains(CapabilityFlags::CLIENT_ZSTD_COMPRESSION_ALGORITHM)
        .then(|| packet.last().map(|l| i32::from(*l).clamp(1, 22)))
        .flatten();
    let user = String::from_utf8_lossy(response.user()).into_owned();
    let database = response
        .db_name()
        .filter(|d| !d.is_empty())
        .map(|d| String::from_utf8_lossy(d).into_owned());

    let client_plugin = response.auth_plugin().map(|p| p.as_bytes().to_vec());
    let mut auth_data = response.scramble_buf().to_vec();
    // A plugin we do not speak is asked to switch to mysql_native_password. A caching_sha2
    // client that did not answer our scramble (MySQL's C library sends nothing when the greeting
    // named another plugin) is asked again, in its own plugin.
    let sha2_only = matches!(credential_of(&user), Some(Credential::Sha2Hash(_)));
    let (plugin, switch) = match known_plugin(client_plugin.as_deref()) {
        // Only caching_sha2 can check a caching_sha2 hash.
        None | Some(NATIVE) if sha2_only => (CACHING_SHA2, true),
        None => (NATIVE, true),
        Some(CACHING_SHA2)
            if auth_data.len() != 32
                && credential_of(&user).is_some_and(|c| c != Credential::Plain(String::new())) =>
        {
            (CACHING_SHA2, true)
        }
        Some(p) => (p, false),
    };
    if switch {
        buf.clear();
        let mut data = salt.to_vec();
        data.push(0);
        AuthSwitchRequest::new(plugin, data).serialize(&mut buf);
        io.write_packet(&buf).await?;
        io.flush().await?;
        auth_data = io.read_packet().await?;
    }

    let denied = || {
        HandshakeError::Refused(SqlError::new(
            1045,
            "28000",
            format!(
                "Access denied for user '{user}' (using password: {})",
                if auth_data.is_empty() { "NO" } else { "YES" }
            ),
        ))
    };
    let Some(cred) = credential_of(&user) else {
        return Err(denied());
    };
    // As MySQL answers a REQUIRE SSL account on a plain connection.
    if (tls.required)(&user) && !io.is_tls() {
        return Err(denied());
    }
    if !authenticate(io, state, plugin, &user, &cred, &salt, &auth_data).await? {
        return Err(denied());
    }
    Ok(Authenticated {
        user,
        database,
        caps,
        salt,
        zstd_level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_are_printable_and_differ() {
        let a = new_salt();
        assert!(a.iter().all(|b| (0x21..0x7f).contains(b) && *b != b'$'));
        assert_ne!(a, new_salt());
    }
}
