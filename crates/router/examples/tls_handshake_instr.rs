//! TLS 1.3 handshakes in memory, client and server in one process, for counting the
//! server's instructions per handshake under callgrind (`benches/load/tls_instructions.sh`).
//!
//! Only the server's calls run inside `counted_*` functions; the script starts callgrind
//! with collection off and toggles it on in those, so the client's half, key generation
//! and set-up are not counted. A warm-up handshake runs first through the uncounted twins.
//!
//! Usage: `tls_handshake_instr PROVIDER KEY MODE N CERT KEYFILE` where PROVIDER is `ring` or
//! `aws-lc-rs`, KEY names the row only, MODE is `full` or `resumed`, and CERT/KEYFILE are
//! PEM files (the script makes them with `openssl req`).

use std::io::Write;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, ServerConnection,
};

fn main() {
    if let Err(e) = run() {
        eprintln!("tls_handshake_instr: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, provider, key_name, mode, n, cert, key] = args.as_slice() else {
        return Err("usage: tls_handshake_instr ring|aws-lc-rs KEY full|resumed N CERT KEY".into());
    };
    let n: u32 = n.parse().map_err(|e| format!("N: {e}"))?;
    let server_provider = match provider.as_str() {
        "ring" => rustls::crypto::ring::default_provider(),
        "aws-lc-rs" => rustls::crypto::aws_lc_rs::default_provider(),
        other => return Err(format!("unknown provider {other:?}")),
    };
    let server_provider = Arc::new(server_provider);
    let resumed = match mode.as_str() {
        "full" => false,
        "resumed" => true,
        other => return Err(format!("unknown mode {other:?}")),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{cert}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{cert}: {e}"))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;

    let mut server = ServerConfig::builder_with_provider(Arc::clone(&server_provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| e.to_string())?;
    // The same resumption set-up as the router's listener.
    spaced_router::tls::enable_resumption(&mut server).map_err(|e| e.to_string())?;
    // ...but with the measured provider's ticket key, so each row is one provider's work.
    server.ticketer = match provider.as_str() {
        "ring" => rustls::crypto::ring::Ticketer::new(),
        _ => rustls::crypto::aws_lc_rs::Ticketer::new(),
    }
    .map_err(|e| e.to_string())?;
    let server = Arc::new(server);

    // The client always uses ring and offers X25519 only, as the peers' clients
    // (OpenSSL 3.0's s_time) do; its work is not counted anyway.
    let client_provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(Arc::clone(&client_provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(client_provider)))
        .with_no_client_auth();
    if !resumed {
        client.resumption = rustls::client::Resumption::disabled();
    }
    let client = Arc::new(client);

    // Warm-up: first-use costs (lazy tables, the first ticket key) and, for resumed runs,
    // the first ticket.
    handshake(&server, &client, false)?;
    for _ in 0..n {
        let kind = handshake(&server, &client, true)?;
        if kind != resumed {
            return Err(format!("expected resumed={resumed}, got resumed={kind}"));
        }
    }
    // What was measured, for the callgrind log (stdout is the script's to ignore).
    let _ = writeln!(std::io::stdout(), "{provider} {key_name} {mode} n={n}");
    Ok(())
}

/// One handshake to completion (tickets included); returns whether it was resumed.
fn handshake(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    count: bool,
) -> Result<bool, String> {
    let name = ServerName::try_from("bench.test").map_err(|e| e.to_string())?;
    let mut c = ClientConnection::new(Arc::clone(client), name).map_err(|e| e.to_string())?;
    let mut s = if count {
        counted_new(server)?
    } else {
        uncounted_new(server)?
    };
    let mut to_server = Vec::with_capacity(8192);
    let mut to_client = Vec::with_capacity(8192);
    for _ in 0..16 {
        to_server.clear();
        while c.wants_write() {
            c.write_tls(&mut to_server).map_err(|e| e.to_string())?;
        }
        to_client.clear();
        if count {
            counted_step(&mut s, &to_server, &mut to_client)?;
        } else {
            uncounted_step(&mut s, &to_server, &mut to_client)?;
        }
        let mut rd = to_client.as_slice();
        while !rd.is_empty() {
            c.read_tls(&mut rd).map_err(|e| e.to_string())?;
            c.process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
        }
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && to_client.is_empty() {
            if std::env::var_os("TLS_INSTR_DEBUG").is_some() {
                eprintln!(
                    "server {:?} client {:?}",
                    s.handshake_kind(),
                    c.handshake_kind()
                );
            }
            return Ok(s.handshake_kind() == Some(rustls::HandshakeKind::Resumed));
        }
    }
    Err("handshake did not finish in 16 rounds".into())
}

#[inline(never)]
fn counted_new(server: &Arc<ServerConfig>) -> Result<ServerConnection, String> {
    ServerConnection::new(Arc::clone(server)).map_err(|e| e.to_string())
}

// The uncounted twins differ from the counted ones by a `black_box`, so that the compiler
// cannot fold each pair into one function (it did: the warm-up was counted).
#[inline(never)]
fn uncounted_new(server: &Arc<ServerConfig>) -> Result<ServerConnection, String> {
    std::hint::black_box(1u8);
    ServerConnection::new(Arc::clone(server)).map_err(|e| e.to_string())
}

#[inline(never)]
fn counted_step(s: &mut ServerConnection, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    step(s, input, out)
}

#[inline(never)]
fn uncounted_step(s: &mut ServerConnection, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    std::hint::black_box(2u8);
    step(s, input, out)
}

/// The server's whole share of one flight: read, process, write.
#[inline(always)]
fn step(s: &mut ServerConnection, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    while !input.is_empty() {
        s.read_tls(&mut input).map_err(|e| e.to_string())?;
        s.process_new_packets()
            .map_err(|e| format!("server: {e}"))?;
    }
    while s.wants_write() {
        s.write_tls(out).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The bench's client trusts anything: certificate checking is the client's cost, not
/// the server's, and the certificates are throwaway.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
