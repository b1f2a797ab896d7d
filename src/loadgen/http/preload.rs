//! `--preload N`: agents registered with a registry before the run, over HTTP/1.1 or h2c.

use super::*;

/// Registers `n` agents with the registry at `addr` before a run (`--preload`), over one
/// keep-alive connection (HTTP/1.1, or h2c with `--http2`, 32 registrations at a time); returns
/// their ids.
pub fn preload(
    addr: std::net::SocketAddr,
    plan: &Plan,
    n: std::ops::Range<u32>,
    timeout: std::time::Duration,
) -> Result<Vec<String>, String> {
    if plan.http2 {
        return preload_h2(addr, plan, n, timeout);
    }
    let s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("--preload: connecting to {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_nodelay(true);
    match &plan.tls {
        Some(tls) => {
            let c = tls.connect().map_err(|e| format!("--preload: {e}"))?;
            preload_h1(rustls::StreamOwned::new(c, s), plan, n)
        }
        None => preload_h1(s, plan, n),
    }
}

/// `--preload` over HTTP/1.1, one registration at a time.
pub(super) fn preload_h1(
    mut s: impl std::io::Read + std::io::Write,
    plan: &Plan,
    n: std::ops::Range<u32>,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::with_capacity(n.len());
    let (mut buf, mut filled) = (vec![0u8; 64 << 10], 0usize);
    for i in n {
        s.write_all(&preload_request(plan, i)).map_err(|e| format!("--preload: writing: {e}"))?;
        loop {
            let head = match parse::head(&buf[..filled]) {
                Ok(h) => h,
                Err(why) => return Err(format!("--preload: the registry sent {why}")),
            };
            if let Some(h) = head.filter(|h| h.interim()) {
                buf.copy_within(h.head_len..filled, 0);
                filled -= h.head_len;
                continue;
            }
            if let Some(h) = head {
                let Framing::Length(len) = h.framing else {
                    return Err("--preload: the registry's answers need a Content-Length (chunked or close-delimited ones are not supported)".into());
                };
                if filled >= h.head_len + len {
                    let body = &buf[h.head_len..h.head_len + len];
                    ids.push(preloaded_id(plan, h.status, body)?);
                    buf.copy_within(h.head_len + len..filled, 0);
                    filled -= h.head_len + len;
                    break;
                }
            }
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match s.read(&mut buf[filled..]) {
                Ok(0) => return Err("--preload: the registry closed the connection".into()),
                Ok(k) => filled += k,
                Err(e) => return Err(format!("--preload: reading: {e}")),
            }
        }
    }
    Ok(ids)
}

/// `--preload` over HTTP/2 (h2c, or h2 over TLS): the same requests, carried over as the run's
/// are ([`h2c::to_h2`]).
pub(super) fn preload_h2(
    addr: std::net::SocketAddr,
    plan: &Plan,
    n: std::ops::Range<u32>,
    timeout: std::time::Duration,
) -> Result<Vec<String>, String> {
    let bounded = |what: &'static str| {
        move |_| format!("--preload: no {what} from the registry within {} s", timeout.as_secs())
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("--preload: {e}"))?;
    rt.block_on(async {
        let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(bounded("connection"))?
            .map_err(|e| format!("--preload: connecting to {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match &plan.tls {
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                let io = tokio::time::timeout(timeout, connector.connect(tls.name.clone(), tcp))
                    .await
                    .map_err(bounded("TLS handshake"))?
                    .map_err(|e| format!("--preload: the registry's TLS: {e}"))?;
                register_h2(io, plan, n, timeout).await
            }
            None => register_h2(tcp, plan, n, timeout).await,
        }
    })
}

/// `--preload`'s registrations over an HTTP/2 connection on `io`.
pub(super) async fn register_h2<T>(
    io: T,
    plan: &Plan,
    n: std::ops::Range<u32>,
    timeout: std::time::Duration,
) -> Result<Vec<String>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let bounded = |what: &'static str| {
        move |_| format!("--preload: no {what} from the registry within {} s", timeout.as_secs())
    };
    let h2 = |e: h2::Error| format!("--preload: HTTP/2: {e}");
    {
        let (mut send, conn) = tokio::time::timeout(timeout, h2::client::handshake(io))
            .await
            .map_err(bounded("HTTP/2 handshake"))?
            .map_err(h2)?;
        let driver = tokio::spawn(conn);
        let mut ids = Vec::with_capacity(n.len());
        for first in n.clone().step_by(32) {
            let mut pending = Vec::with_capacity(32);
            for i in first..(first + 32).min(n.end) {
                let (req, body) = h2c::to_h2(&preload_request(plan, i), &plan.host)
                    .map_err(|e| format!("--preload: {e}"))?;
                send = tokio::time::timeout(timeout, send.ready())
                    .await
                    .map_err(bounded("free stream"))?
                    .map_err(h2)?;
                let (resp, mut out) = send.send_request(req, false).map_err(h2)?;
                out.send_data(body, true).map_err(h2)?;
                pending.push(resp);
            }
            for resp in pending {
                let r = tokio::time::timeout(timeout, resp)
                    .await
                    .map_err(bounded("answer"))?
                    .map_err(h2)?;
                let status = r.status().as_u16();
                let mut body = r.into_body();
                let mut bytes = Vec::new();
                while let Some(data) = tokio::time::timeout(timeout, body.data())
                    .await
                    .map_err(bounded("answer body"))?
                {
                    let data = data.map_err(h2)?;
                    let _ = body.flow_control().release_capacity(data.len());
                    bytes.extend_from_slice(&data);
                }
                ids.push(preloaded_id(plan, status, &bytes)?);
            }
        }
        driver.abort();
        Ok(ids)
    }
}

/// Preloaded agent `i`'s registration, as HTTP/1.1 text.
pub(super) fn preload_request(plan: &Plan, i: u32) -> Vec<u8> {
    let body = format!(
        r#"{{"agent_card":{{"name":"preloaded-{i}","description":"a2a-bench preloaded agent {i}","url":"http://preloaded-{i}.invalid/","version":"1.0.0","protocolVersion":"0.3.0","protocol_version":"0.3.0","capabilities":{{}},"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[{{"id":"s{i}","name":"skill {i}","description":"preloaded","tags":["skill-{}"]}}]}}}}"#,
        i % 16
    );
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        plan.join("agents"),
        plan.host,
        body.len()
    );
    if let Some(t) = &plan.token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    req.into_bytes()
}

/// The id in a registration's answer.
pub(super) fn preloaded_id(plan: &Plan, status: u16, body: &[u8]) -> Result<String, String> {
    if !(200..300).contains(&status) {
        let path = plan.join("agents");
        return Err(format!("--preload: the registry answered POST {path} with HTTP {status}"));
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("--preload: the registry's answer: {e}"))?;
    match v.get("agent_id").or_else(|| v.get("id")).and_then(|x| x.as_str()) {
        Some(id) => Ok(id.to_string()),
        None => Err(format!("--preload: no agent_id in the registry's answer {v}")),
    }
}
