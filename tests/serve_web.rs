//! What a web page talks to, seen from a client: beacons (text/plain, form, JSON object and
//! batch) and their limits, CORS, the tracker script, click redirects, and HTTPS with a
//! certificate re-read on SIGHUP. Every accepted way in ends in Redis exactly once; every
//! refusal has its status, no record, and its reason counted.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(10);

struct Setup {
    redis: Redis,
    server: Pixelpipe,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// `pixelpipe serve` with `toml` as its config file and `extra` serve flags.
fn setup(toml: &str, extra: &[&str]) -> Setup {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    setup_in(redis, dir, toml, extra)
}

fn setup_in(redis: Redis, dir: tempfile::TempDir, toml: &str, extra: &[&str]) -> Setup {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("pixelpipe.toml");
    std::fs::write(&config, toml).unwrap();
    let (config, url, listen) = (config.display().to_string(), redis.url(), addr.to_string());
    let mut args = vec![
        "--config", &config, "--redis", &url, "serve", "--listen", &listen,
    ];
    args.extend_from_slice(extra);
    let server = Pixelpipe::start(&dir.path().join("data"), &args);
    Setup {
        redis,
        server,
        addr,
        dir,
    }
}

impl Setup {
    fn post(&self, path: &str, content_type: Option<&str>, body: &[u8], headers: &str) -> Response {
        let ct = content_type.map_or(String::new(), |t| format!("Content-Type: {t}\r\n"));
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: collector\r\n{ct}{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        raw_request(self.addr, &req, false).expect("a response")
    }

    fn request(&self, head: &str) -> Response {
        raw_request(self.addr, head.as_bytes(), head.starts_with("HEAD")).expect("a response")
    }

    /// Waits for `n` records, then for a marker hit behind them: the list holds exactly
    /// what was accepted before the marker, and nothing more is in flight.
    fn records_then_marker(&self, n: usize) -> Vec<String> {
        let r = http_get(self.addr, "/pixel.gif?marker").unwrap();
        assert_eq!(r.status, 200);
        wait_until(&format!("{} records", n + 1), WAIT, || {
            self.redis.llen("pixel") > n
        });
        let mut records = self.redis.list_oldest_first("pixel");
        assert_eq!(records.len(), n + 1, "{records:#?}");
        assert!(records.pop().unwrap().contains(",marker"));
        records
    }

    fn rejected(&self, reason: &str) -> f64 {
        self.server.metric(
            "pixelpipe_http_rejected_total",
            &format!("reason=\"{reason}\""),
        )
    }
}

/// The query strings of `ts,query` records.
fn queries(records: &[String]) -> Vec<&str> {
    records
        .iter()
        .map(|r| {
            let (ts, q) = r.split_once(',').unwrap();
            assert!(ts.parse::<f64>().is_ok(), "{r}");
            q
        })
        .collect()
}

#[test]
fn beacons_become_query_string_records() {
    let s = setup("", &[]);
    // sendBeacon with a string: text/plain JSON.
    let r = s.post(
        "/e",
        Some("text/plain;charset=UTF-8"),
        br#"{"event":"pageview","url":"https://shop.example/a b?c=1#x","sw":1280,"o":{"k":[1, 2]}}"#,
        "",
    );
    assert_eq!(r.status, 204, "{}", r.head);
    assert!(r.body.is_empty());
    assert!(r.header("content-length").is_none());
    // A form post, to the pixel path, with a query string of its own.
    let r = s.post(
        "/pixel.gif?site=shop",
        Some("application/x-www-form-urlencoded"),
        b"event=signup&variant=B",
        "",
    );
    assert_eq!(r.status, 204);
    // A JSON batch: one record per event, in order.
    let r = s.post(
        "/e",
        Some("application/json"),
        br#"[{"event":"a","n":1},{"event":"b","v":null},{"event":"c","t":"\u00e9 x"}]"#,
        "",
    );
    assert_eq!(r.status, 204);
    // No body at all: the query is the event.
    let r = s.post("/pixel.gif?event=ping", None, b"", "");
    assert_eq!(r.status, 204);
    let records = s.records_then_marker(6);
    assert_eq!(
        queries(&records),
        [
            "event=pageview&url=https%3A%2F%2Fshop.example%2Fa+b%3Fc%3D1%23x&sw=1280&o=%7B%22k%22%3A%5B1%2C2%5D%7D",
            "site=shop&event=signup&variant=B",
            "event=a&n=1",
            "event=b&v=",
            "event=c&t=%C3%A9+x",
            "event=ping",
        ]
    );
    assert_eq!(s.server.metric("pixelpipe_http_hits_total", ""), 7.0);
}

#[test]
fn bad_beacons_are_refused_whole_and_counted() {
    let s = setup("[http]\nmax_batch = 3\nmax_body_bytes = 1000\n", &[]);
    let json = Some("application/json");
    let cases: &[(Option<&str>, Vec<u8>, u16, &str)] = &[
        (json, br#"{"a":1"#.to_vec(), 400, "bad_body"),
        (json, br#"[{"a":1},2]"#.to_vec(), 400, "bad_body"),
        (
            json,
            br#"[{"a":1},{"b":2},{"c":3},{"d":4}]"#.to_vec(),
            413,
            "batch_too_large",
        ),
        (json, b"[]".to_vec(), 400, "bad_body"),
        (
            json,
            format!(r#"{{"a":"{}"}}"#, "x".repeat(1000)).into_bytes(),
            413,
            "payload_too_large",
        ),
        (
            Some("multipart/form-data; boundary=x"),
            b"--x--".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (Some("text/plain"), b"{\"a\":".to_vec(), 400, "bad_body"),
    ];
    for (ct, body, status, reason) in cases {
        let before = s.rejected(reason);
        let r = s.post("/e", *ct, body, "");
        assert_eq!(
            r.status,
            *status,
            "{ct:?} {}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(s.rejected(reason), before + 1.0, "{reason}");
    }
    // Methods the paths do not take.
    let r =
        s.request("PUT /e HTTP/1.1\r\nHost: c\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap().contains("POST"));
    let r = s.request(
        "POST /p.js HTTP/1.1\r\nHost: c\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    // Nothing of any of them was recorded.
    assert!(s.records_then_marker(0).is_empty());
}

#[test]
fn body_variable_keeps_the_raw_body() {
    let s = setup("[http]\nformat = '$msec,$args,$body'\n", &[]);
    let r = s.post("/e?s=1", Some("text/plain"), br#"{"a":"b,c"}"#, "");
    assert_eq!(r.status, 204);
    let records = s.records_then_marker(1);
    let (_, rest) = records[0].split_once(',').unwrap();
    // The body as sent, escaped the nginx way as any value is.
    assert_eq!(rest, r#"s=1&a=b%2Cc,{\x22a\x22:\x22b,c\x22}"#);
}

#[test]
fn beacons_can_answer_with_the_gif() {
    let s = setup("[http]\nbeacon_reply = \"gif\"\n", &[]);
    let r = s.post("/e", Some("text/plain"), b"a=1", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/gif"));
    assert_eq!(r.body.len(), 43);
    assert_eq!(queries(&s.records_then_marker(1)), ["a=1"]);
}

#[test]
fn cors_allow_list() {
    let s = setup(
        "[http]\ncors_origins = [\"https://shop.example\", \"https://app.example\"]\ncors_credentials = true\n",
        &[],
    );
    // Preflight from a listed origin.
    let r = s.request(
        "OPTIONS /e HTTP/1.1\r\nHost: c\r\nOrigin: https://shop.example\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\
         Connection: close\r\n\r\n",
    );
    assert_eq!(r.status, 204, "{}", r.head);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Content-Type")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    // The beacon itself.
    let r = s.post(
        "/e",
        Some("application/json"),
        br#"{"e":"ok"}"#,
        "Origin: https://shop.example\r\n",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    // The GIF fetched by a listed origin.
    let r = s.request("GET /pixel.gif?g=1 HTTP/1.1\r\nHost: c\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    // An origin not on the list: no CORS header, refused, counted, not recorded.
    let before = s.rejected("cors_origin");
    let r = s.request("OPTIONS /e HTTP/1.1\r\nHost: c\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    let r = s.post(
        "/e",
        Some("text/plain"),
        br#"{"e":"foreign"}"#,
        "Origin: https://evil.example\r\n",
    );
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_eq!(s.rejected("cors_origin"), before + 2.0);
    // No Origin (an <img>, a server): no CORS in play.
    let r = s.post("/e", Some("text/plain"), b"e=server", "");
    assert_eq!(r.status, 204);
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(
        queries(&s.records_then_marker(3)),
        ["e=ok", "g=1", "e=server"]
    );
}

#[test]
fn cors_star_and_recording_foreign_origins() {
    let s = setup(
        "[http]\ncors_origins = [\"*\"]\ncors_credentials = true\n",
        &[],
    );
    let r = s.post(
        "/e",
        Some("text/plain"),
        b"e=1",
        "Origin: https://any.example\r\n",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-credentials").is_none());
    assert_eq!(queries(&s.records_then_marker(1)), ["e=1"]);

    let s = setup(
        "[http]\ncors_origins = [\"https://shop.example\"]\ncors_record_foreign = true\n",
        &[],
    );
    let r = s.post(
        "/e",
        Some("text/plain"),
        b"e=2",
        "Origin: https://evil.example\r\n",
    );
    assert_eq!(r.status, 204);
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(queries(&s.records_then_marker(1)), ["e=2"]);
}

#[test]
fn tracker_script_gzip_etag_cache() {
    let s = setup("[http]\nscript_path = \"/assets/site.js\"\nscript_max_age = \"10m\"\nbeacon_path = \"/collect\"\n", &[]);
    let r = s.request("GET /assets/site.js HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=600"));
    assert!(r.header("content-encoding").is_none());
    assert!(r.body.len() < 2048, "{} bytes", r.body.len());
    let js = String::from_utf8(r.body.clone()).unwrap();
    assert!(js.contains("\"/collect\""), "the beacon path is filled in");
    let etag = r.header("etag").unwrap().to_owned();

    let r = s.request("GET /assets/site.js HTTP/1.1\r\nHost: c\r\nAccept-Encoding: gzip, br\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.len() < js.len());
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, js);

    let r = s.request(&format!(
        "GET /assets/site.js HTTP/1.1\r\nHost: c\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = s.request("HEAD /assets/site.js HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(js.len().to_string().as_str())
    );
    // The default path is free again, and a script fetch is not a record.
    assert_eq!(http_get(s.addr, "/p.js").unwrap().status, 404);
    assert!(s.records_then_marker(0).is_empty());
}

#[test]
fn click_redirects_only_to_listed_hosts() {
    let s = setup(
        "[http]\nredirect_hosts = [\"good.example\", \"*.shop.example\"]\nmax_request_line = 16384\nmax_header_bytes = 32768\n",
        &[],
    );
    let r = http_get(
        s.addr,
        "/r?u=https%3A%2F%2Fa.shop.example%2Fsale%3Fx%3D1&c=banner",
    )
    .unwrap();
    assert_eq!(r.status, 302, "{}", r.head);
    assert_eq!(
        r.header("location"),
        Some("https://a.shop.example/sale?x=1")
    );
    let r = http_get(s.addr, "/r?c=2&u=http://good.example/").unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://good.example/"));

    let before = s.rejected("redirect_refused");
    let long = format!("https://good.example/{}", "a".repeat(10 * 1024));
    let refused = [
        "//evil.com",
        "https:evil.com",
        "https:/evil.com",
        "\\\\evil.com",
        "/\\evil.com",
        "https://good.example@evil.com/",
        "https://evil.com@good.example/",
        "https://evil.com%2F@good.example/",
        "https://evil%2Ecom/",
        "https://good.example%2F.evil.com/",
        "https://g\u{43e}\u{43e}d.example/",
        "https://good.example.evil.com/",
        "https://shop.example/",
        "javascript:alert(1)",
        "ftp://good.example/",
        long.as_str(),
    ];
    for u in refused {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("u", u)
            .finish();
        let r = http_get(s.addr, &format!("/r?{q}")).unwrap();
        assert_eq!(r.status, 400, "{u:?}");
        assert!(r.header("location").is_none(), "{u:?}");
    }
    let r = http_get(s.addr, "/r?x=1").unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        s.rejected("redirect_refused"),
        before + refused.len() as f64 + 1.0
    );
    // The clicks that redirected were recorded, with their whole query.
    assert_eq!(
        queries(&s.records_then_marker(2)),
        [
            "u=https%3A%2F%2Fa.shop.example%2Fsale%3Fx%3D1&c=banner",
            "c=2&u=http://good.example/"
        ]
    );
}

// ---- HTTPS ---------------------------------------------------------------------------

/// A TLS client for the tests that accepts whatever certificate the server shows and
/// remembers it: the tests compare it with the files, they do not need a CA.
mod tls_client {
    use super::*;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

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
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    pub type Conn = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

    pub fn connect(addr: SocketAddr) -> Conn {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        let conn = rustls::ClientConnection::new(Arc::new(config), "127.0.0.1".try_into().unwrap())
            .unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
        }
        tls
    }

    /// The DER of the certificate the server showed.
    pub fn peer_cert(conn: &Conn) -> Vec<u8> {
        conn.conn.peer_certificates().unwrap()[0].to_vec()
    }

    pub fn get(conn: &mut Conn, target: &str) -> Response {
        write!(conn, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        conn.flush().unwrap();
        let mut reader = BufReader::new(conn);
        read_response(&mut reader, false).expect("a response over TLS")
    }
}

fn der_of(cert_pem: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(cert_pem)
        .unwrap()
        .to_vec()
}

#[test]
fn https_with_certificate_reload_on_sighup() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let (cert1, key1) = self_signed_cert(&first);
    let (cert2, key2) = self_signed_cert(&second);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(&cert1, &cert).unwrap();
    std::fs::copy(&key1, &key).unwrap();
    let tls_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // The flags, not the file, this time.
    let (tls_listen, cert_arg, key_arg) = (
        tls_addr.to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    let s = setup_in(
        redis,
        dir,
        "",
        &[
            "--tls-listen",
            &tls_listen,
            "--tls-cert",
            &cert_arg,
            "--tls-key",
            &key_arg,
        ],
    );

    let mut kept = tls_client::connect(tls_addr);
    assert_eq!(tls_client::peer_cert(&kept), der_of(&cert1));
    let r = tls_client::get(&mut kept, "/pixel.gif?over=tls");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 43);

    // New files, SIGHUP: new handshakes get the new certificate, the open connection
    // goes on.
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    s.server.signal("HUP");
    wait_until("the new certificate to be served", WAIT, || {
        tls_client::peer_cert(&tls_client::connect(tls_addr)) == der_of(&cert2)
    });
    assert_eq!(
        tls_client::get(&mut kept, "/pixel.gif?still=open").status,
        200
    );

    // A bad certificate at reload: the old one stays, and the log says why.
    std::fs::write(&cert, "not a certificate").unwrap();
    s.server.signal("HUP");
    wait_until("the failed reload to be logged", WAIT, || {
        s.server.stderr().contains("keeping the certificate in use")
    });
    assert_eq!(
        tls_client::peer_cert(&tls_client::connect(tls_addr)),
        der_of(&cert2)
    );
    let mut c = tls_client::connect(tls_addr);
    assert_eq!(tls_client::get(&mut c, "/pixel.gif?after=bad").status, 200);

    // Plain HTTP alongside; not TLS on the TLS port is refused without a record.
    let mut plain = TcpStream::connect(tls_addr).unwrap();
    plain.set_read_timeout(Some(WAIT)).unwrap();
    let _ = plain.write_all(b"GET /pixel.gif?plain HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!buf.starts_with(b"HTTP/1.1 200"));
    let records = s.records_then_marker(3);
    assert_eq!(queries(&records), ["over=tls", "still=open", "after=bad"]);
    drop(s.dir);
}

#[test]
fn a_bad_certificate_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--tls-listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&bad)
        .arg("--tls-key")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.pem"), "{err}");
    // And a TLS listener without files is a config error naming the field.
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--tls-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http.tls"));
}

#[test]
fn bad_web_settings_name_their_field() {
    for (toml, field) in [
        ("cors_origins = [\"shop.example\"]", "http.cors_origins"),
        (
            "cors_origins = [\"https://shop.example/path\"]",
            "http.cors_origins",
        ),
        ("redirect_hosts = [\"*.*.example\"]", "http.redirect_hosts"),
        (
            "redirect_hosts = [\"https://shop.example\"]",
            "http.redirect_hosts",
        ),
        ("beacon_path = \"e\"", "http.beacon_path"),
        ("script_path = \"/p\\\".js\"", "http.script_path"),
        ("script_path = \"/pixel.gif\"", "http.script_path"),
        ("max_body_bytes = 2000000", "http.max_body_bytes"),
        ("max_batch = 0", "http.max_batch"),
        ("beacon_reply = \"maybe\"", "beacon_reply"),
        ("tls_listen = \"127.0.0.1:0\"", "http.tls"),
        (
            "tls = { cert = \"c.pem\", key = \"k.pem\" }",
            "http.tls_listen",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pixelpipe.toml");
        std::fs::write(&file, format!("[http]\n{toml}\n")).unwrap();
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&file)
            .arg("serve")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{toml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{toml}: {err}");
    }
}
