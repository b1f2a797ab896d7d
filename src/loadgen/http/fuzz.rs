//! Entry point for fuzzing the HTTP client's response path: arbitrary bytes from a server, read
//! the way `a2a-bench http` reads them, must never panic, loop or allocate without bound. `tests/
//! fuzz` (cargo fuzz) runs it under libFuzzer (`make fuzz`); `make test` replays the committed
//! corpus through it.

use std::sync::Arc;
use std::time::Duration;

use super::{Http, Pattern, Plan, MCP_SESSIONLESS};
use crate::loadgen::group::{Adapter, Book, GroupConfig, Outgoing, Seats, MEASURED_BIT};
use crate::loadgen::{Pacing, Stop, Topology};
use crate::wire::{AgentId, Compression};

/// The mixes a fuzz input picks from (each client sends the first request of its own pattern:
/// the first four of a mix are the ones a run reaches). Mix [`WALKED`] walks its pages.
const MIXES: [&[Pattern]; 16] = [
    &[Pattern::Health, Pattern::RegistryList],
    &[Pattern::A2aMessage, Pattern::A2aStream, Pattern::A2aConversation, Pattern::AgentCard],
    &[Pattern::A2aV03Message, Pattern::A2aV03Stream, Pattern::A2aCancel, Pattern::A2aRestMessage],
    &[Pattern::McpToolsList, Pattern::McpToolsCall],
    &[
        Pattern::A2aGrpcMessage,
        Pattern::A2aGrpcStream,
        Pattern::A2aGrpcConversation,
        Pattern::A2aRestStream,
    ],
    &[
        Pattern::A2aRestConversation,
        Pattern::A2aV03GrpcStream,
        Pattern::A2aGrpcListTasks,
        Pattern::A2aStream,
    ],
    &[Pattern::A2aTask, Pattern::A2aRestTask, Pattern::A2aGrpcTask, Pattern::A2aV03Task],
    &[
        Pattern::A2aSubscribe,
        Pattern::A2aRestSubscribe,
        Pattern::A2aGrpcSubscribe,
        Pattern::A2aV03Subscribe,
    ],
    &[Pattern::A2aPush, Pattern::A2aRestPush, Pattern::A2aGrpcPush, Pattern::A2aV03Push],
    &[
        Pattern::RegistrySearch,
        Pattern::RegistryRegister,
        Pattern::RegistryGet,
        Pattern::RegistryHealth,
    ],
    &[
        Pattern::A2aExtendedCard,
        Pattern::A2aRestExtendedCard,
        Pattern::A2aGrpcExtendedCard,
        Pattern::A2aV03ExtendedCard,
    ],
    &[
        Pattern::A2aV03RestMessage,
        Pattern::A2aV03RestStream,
        Pattern::A2aV03RestTask,
        Pattern::A2aV03RestSubscribe,
    ],
    &[
        Pattern::A2aRestCancel,
        Pattern::A2aGrpcCancel,
        Pattern::A2aV03Cancel,
        Pattern::A2aV03RestCancel,
    ],
    &[
        Pattern::A2aListTasks,
        Pattern::A2aRestListTasks,
        Pattern::A2aGrpcListTasks,
        Pattern::A2aV03RestPush,
    ],
    &[
        Pattern::A2aV03RestExtendedCard,
        Pattern::A2aV03GrpcTask,
        Pattern::A2aV03GrpcSubscribe,
        Pattern::A2aV03GrpcAgentCard,
    ],
    &[
        Pattern::A2aRestConversation,
        Pattern::A2aV03GrpcConversation,
        Pattern::McpToolsCall,
        Pattern::A2aV03RestStream,
    ],
];

/// The mix whose list patterns walk their pages (`--page-walk`): each asks for the page after
/// the token its last answer gave, of the completed tasks alone (`--list-status`).
const WALKED: usize = 13;

/// Four clients on one connection send a request each (MCP clients queue the opening of their
/// session first);
/// the rest of `data` is the server's answer, read in pieces. The first byte picks the mix
/// (bits 0–1 and 7, with bit 7 of the second), the pipeline depth (bits 2–3), HTTP/2 (bit 4),
/// sessionless MCP (bit 5) and whether what is left after each piece is shown again, shorter
/// (bit 6); the second's other bits, the size of the pieces (1–127). Then the server closes
/// the connection (what its close ends is answered). With a push pattern in the mix, the same
/// bytes are also read as a push notification's body and path.
pub fn responses(data: &[u8]) {
    answered(data);
}

/// [`responses`], and the answers and errors counted over the patterns.
fn answered(data: &[u8]) -> (u64, u64) {
    let [sel, piece, input @ ..] = data else { return (0, 0) };
    let mix = usize::from((sel & 3) | ((sel >> 5) & 4) | ((piece >> 4) & 8)) % MIXES.len();
    if MIXES[mix].iter().any(|p| p.is_push()) {
        // The push receiver's reading of what a server POSTs it: the same bytes as a
        // notification's body and as its path.
        let _ = super::judge::notification(input);
        if let Ok(path) = std::str::from_utf8(input) {
            let _ = super::push::parse_path(path);
        }
    }
    let plan = Plan {
        host: "fuzz".into(),
        patterns: MIXES[mix].to_vec(),
        page_walk: mix == WALKED,
        list_status: if mix == WALKED { crate::grpc::TASK_STATE_COMPLETED as u8 } else { 0 },
        pipeline: u32::from((sel >> 2) & 3) + 1,
        http2: sel & 16 != 0,
        mcp_version: if sel & 32 != 0 { MCP_SESSIONLESS.into() } else { "2025-06-18".into() },
        // A task still working is asked about again at once, on the same wire.
        task_poll_ns: 0,
        ..Plan::default()
    };
    let cfg = group_config(4);
    let mut http = Http::new(&cfg, Arc::new(plan));
    let mut book = Book::new(cfg);
    let ids: Vec<AgentId> = (1..=4).map(AgentId).collect();
    http.register(0, &ids, &mut book);
    for from in 1..=4 {
        let message_id = 1 | MEASURED_BIT;
        let r = Outgoing { from, to: 1, message_id, measured: true, intended_ns: 1, sent_ns: 1 };
        http.request(0, &r);
    }
    drain(&mut http);
    let mut buf = Vec::new();
    let mut broken = false;
    for piece in input.chunks(usize::from(piece & 127).max(1)) {
        buf.extend_from_slice(piece);
        broken = true;
        match http.input(0, &buf, &mut book) {
            Ok(used) => {
                assert!(used <= buf.len(), "used {used} of {} bytes", buf.len());
                buf.drain(..used);
                // The reader may show what is left again, shorter (its buffer took over from
                // the ring's).
                if sel & 64 != 0 && !buf.is_empty() {
                    let half = buf.len() / 2;
                    match http.input(0, &buf[..half], &mut book) {
                        Ok(used) => {
                            assert!(used <= half, "used {used} of {half} bytes");
                            buf.drain(..used);
                        }
                        Err(_) => break,
                    }
                }
            }
            Err(_) => break, // the connection is useless: the loop closes it
        }
        broken = false;
        drain(&mut http);
    }
    if !broken {
        http.input_end(0, &mut book);
        drain(&mut http);
    }
    let stats = http.breakdown(&book);
    let errors = stats.iter().flat_map(|s| &s.errors).map(|(_, n)| n).sum();
    (stats.iter().map(|s| s.ok).sum(), errors)
}

/// A closed-loop group of `agents` on one connection, from agent id 1 (the fuzz target's, and
/// the adapter's unit tests').
pub(crate) fn group_config(agents: u32) -> GroupConfig {
    GroupConfig {
        topology: Topology::Star,
        agents_total: agents,
        first: 0,
        count: agents,
        id_base: 1,
        seats: Seats::Packed(agents),
        pacing: Pacing::Closed { window: 1 },
        stop: Stop::Duration(Duration::from_secs(1)),
        payload_bytes: 16,
        payload_mix: None,
        batch_max: 64,
        compression: Compression::None,
        late_after_ns: 1_000_000,
        priority: 5,
        workload: Default::default(),
    }
}

/// Takes every output, as the writer would.
fn drain(http: &mut Http) {
    while let Some(out) = http.take_output(0) {
        http.output_done(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &str, extra: &str) -> String {
        let n = body.len();
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {n}\r\n\r\n{body}")
    }

    #[test]
    fn the_harness_reaches_answers_and_errors() {
        // Proves the fuzz entry point drives the whole response path, not an early return:
        // four answers to /health read a byte at a time; an MCP session opened, then answers
        // to tools/list and tools/call; a JSON-RPC error counted as one.
        let ok = response(r#"{"status":"ok"}"#, "").repeat(4);
        assert_eq!(answered(&[&[0, 1][..], ok.as_bytes()].concat()), (4, 0));
        let init = response(r#"{"jsonrpc":"2.0","id":0,"result":{}}"#, "Mcp-Session-Id: s\r\n");
        let accepted = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
        let tools = response(r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}"#, "");
        let call = response(
            r#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"x"}]}}"#,
            "",
        );
        // The requests were queued behind the sessions' openings, and before their
        // confirmations (client k's request is tools/call for even k).
        let mcp = format!("{}{call}{tools}{call}{tools}{}", init.repeat(4), accepted.repeat(4));
        assert_eq!(answered(&[&[3, 0][..], mcp.as_bytes()].concat()), (4, 0));
        let err =
            response(r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"no"}}"#, "");
        assert_eq!(answered(&[&[1, 0][..], err.as_bytes()].concat()), (0, 1));
        // Interim responses before the final one are passed over.
        let hints = "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
        let ok = format!("{hints}{}", response(r#"{"status":"ok"}"#, ""));
        assert_eq!(answered(&[&[0, 5][..], ok.repeat(4).as_bytes()].concat()), (4, 0));
        // A body that ends at the close, read 3 bytes at a time: answered at the close.
        let until_close =
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\":\"ok\"}";
        assert_eq!(answered(&[&[0, 3][..], until_close.as_bytes()].concat()), (1, 0));
        // The second byte's bit 7 picks the mixes past the eighth: v0.3's HTTP+JSON binding
        // (client k's first request is pattern k + 1: the stream, two tasks that are done
        // when accepted, then the message), 7 bytes at a time.
        let done = r#"{"task":{"id":"t","status":{"state":"TASK_STATE_COMPLETED"}}}"#;
        let events = format!("data: {done}\n\n");
        let sse = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{events}",
            events.len()
        );
        let message = response(r#"{"message":{"content":[{"text":"x"}],"contextId":"c"}}"#, "");
        let all = format!("{sse}{}{}{message}", response(done, ""), response(done, ""));
        assert_eq!(answered(&[&[3, 128 | 7][..], all.as_bytes()].concat()), (4, 0));
        assert_eq!(answered(&[&[3, 7][..], all.as_bytes()].concat()).0, 0, "mix 3 is MCP's");
    }

    #[test]
    fn the_harness_reads_gzipped_answers_in_pieces() {
        // Proves the harness reaches the decoder: four gzipped answers read a byte at a time,
        // and with what is left shown again, shorter (bit 6); a chunked one; a body marked
        // gzip that is not, and one in a coding not read, an error each.
        let mut zipped = Vec::new();
        crate::wire::gzip::Zip::new(6).gzip(br#"{"status":"ok"}"#, &mut zipped);
        let head = |extra: &str, n: usize| {
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {n}\r\n\r\n")
        };
        let one = [head("Content-Encoding: gzip\r\n", zipped.len()).as_bytes(), &zipped].concat();
        assert_eq!(answered(&[&[0, 1][..], &one.repeat(4)].concat()), (4, 0));
        assert_eq!(answered(&[&[64, 3][..], &one.repeat(4)].concat()), (4, 0));
        let chunked = [
            &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            format!("{:x}\r\n", zipped.len()).as_bytes(),
            &zipped,
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        assert_eq!(answered(&[&[0, 2][..], &chunked.repeat(4)].concat()), (4, 0));
        let plain = r#"{"status":"ok"}"#;
        for coding in ["gzip", "br"] {
            let r = response(plain, &format!("Content-Encoding: {coding}\r\n")).repeat(4);
            assert_eq!(answered(&[&[0, 7][..], r.as_bytes()].concat()), (0, 4), "{coding}");
        }
    }

    #[test]
    fn the_corpus_reaches_v03_s_grpc_answers_over_http2() {
        // Proves a committed corpus input takes the fuzzer into v0.3's gRPC binding over h2c:
        // mix 14 (first byte 0x92: HTTP/2, the second's bit 7), the server's SETTINGS, then a
        // task done when accepted (`a2a-v03-grpc:task`, `:subscribe`), an agent card, and
        // v0.3's HTTP+JSON card, 64 bytes at a time: four answers.
        let input = include_bytes!(
            "../../../tests/fuzz/corpus/responses/d6e8fe0b1b0d802f97d88d8ab3e8c20c6759544e"
        );
        assert_eq!(MIXES[14][1], Pattern::A2aV03GrpcTask);
        assert_eq!(answered(input), (4, 0));
    }
}
