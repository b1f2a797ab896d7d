//! The async tasks of a JSON connection: a reader feeding the translator and a writer sending
//! what it produces, one request at a time.

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::Poll;

use async_tungstenite::tungstenite::Utf8Bytes;
use async_tungstenite::WebSocketStream;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_util::{Sink, Stream};

use super::{error, Session};
use crate::route::shell::{self, Finished, Runtime};
use crate::route::{ConnId, Shard, Source};
use crate::transport::ws::Message as WsMessage;
use crate::transport::SocketHandle;
use crate::wire::{decode_frame, Limits};

type Ws<S> = Rc<RefCell<WebSocketStream<S>>>;

/// Serves a JSON connection until it closes.
pub(in crate::route) fn serve<R: Runtime, S: AsyncRead + AsyncWrite + Unpin + 'static>(
    shard: Rc<RefCell<Shard>>,
    ws: WebSocketStream<S>,
    first: Option<Utf8Bytes>,
    control: Rc<SocketHandle>,
    live: Arc<AtomicUsize>,
    done: Finished,
) {
    let ws: Ws<S> = Rc::new(RefCell::new(ws));
    let session = Rc::new(RefCell::new(Session::new()));
    let id = shard.borrow_mut().open_conn();
    R::spawn(reader(shard.clone(), ws.clone(), session.clone(), id, first, live.clone()));
    R::spawn(writer(shard, ws, session, id, control, live, done));
}

async fn reader<S: AsyncRead + AsyncWrite + Unpin>(
    shard: Rc<RefCell<Shard>>,
    ws: Ws<S>,
    session: Rc<RefCell<Session>>,
    id: ConnId,
    mut first: Option<Utf8Bytes>,
    live: Arc<AtomicUsize>,
) {
    let mut inflate = Vec::new();
    loop {
        // One request at a time: wait for the previous one's answer, then for the shard's gate.
        poll_fn(|cx| {
            let mut s = session.borrow_mut();
            if s.awaiting.is_some() {
                s.reader = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        poll_fn(|cx| shard.borrow_mut().poll_gate(Source::Conn(id), cx)).await;
        let text = match first.take() {
            Some(t) => t,
            None => match poll_fn(|cx| Pin::new(&mut *ws.borrow_mut()).poll_next(cx)).await {
                Some(Ok(WsMessage::Text(t))) => t,
                Some(Ok(WsMessage::Binary(_))) => {
                    session
                        .borrow_mut()
                        .send(error("invalid_json", "binary messages are the native protocol"));
                    continue;
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
        };
        let frame = {
            let s = shard.borrow();
            session.borrow_mut().on_text(&text, &s)
        };
        if let Some(frame) = frame {
            shard.borrow_mut().on_input(id, &frame);
            session.borrow_mut().pool.put(frame);
        }
        // The answer is often queued already (a shard answers most requests as it takes them):
        // translated here, the next request is read without waiting for the writer's turn.
        while session.borrow().awaiting.is_some() {
            let Some(frame) = shard.borrow_mut().take_output(id) else { break };
            translate(&shard, &session, id, frame, &mut inflate);
        }
    }
    let mut s = shard.borrow_mut();
    s.close_conn(id);
    shell::release_conn(&mut s, id, &live);
}

async fn writer<S: AsyncRead + AsyncWrite + Unpin>(
    shard: Rc<RefCell<Shard>>,
    ws: Ws<S>,
    session: Rc<RefCell<Session>>,
    id: ConnId,
    control: Rc<SocketHandle>,
    live: Arc<AtomicUsize>,
    _done: Finished,
) {
    let mut inflate = Vec::new();
    'outer: loop {
        // Translate what the shard queued, then write what the session has to say.
        let closed = poll_fn(|cx| {
            if !session.borrow().out.is_empty() {
                return Poll::Ready(false);
            }
            // Bound first: a RefMut in the match scrutinee would live through the arms.
            let polled = shard.borrow_mut().poll_output(id, cx);
            match polled {
                Poll::Ready(Some(frame)) => {
                    translate(&shard, &session, id, frame, &mut inflate);
                    Poll::Ready(false)
                }
                Poll::Ready(None) => Poll::Ready(true),
                Poll::Pending => {
                    session.borrow_mut().writer = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        // A client that stops reading is cut off by the shard (slow consumer, or an error it
        // did not take): the pending write is abandoned then.
        let cut_off = async {
            poll_fn(|cx| shard.borrow_mut().poll_closed(id, cx)).await;
            Err(())
        };
        if futures_lite::future::or(send_texts(&ws, &session), cut_off).await.is_err() {
            shard.borrow_mut().close_conn(id);
            break 'outer;
        }
        if closed {
            break;
        }
    }
    let _ = poll_fn(|cx| Sink::<WsMessage>::poll_close(Pin::new(&mut *ws.borrow_mut()), cx)).await;
    control.shutdown();
    let mut s = shard.borrow_mut();
    shell::release_conn(&mut s, id, &live);
}

/// Translates `frame`, queued by the shard for connection `id`, into the session's texts, and
/// feeds the shard what that gives back (the next page of a discovery).
fn translate(
    shard: &RefCell<Shard>,
    session: &RefCell<Session>,
    id: ConnId,
    frame: Vec<u8>,
    inflate: &mut Vec<u8>,
) {
    // Empty, so never allocated, but for a discovery of more than a page.
    let mut feedback = Vec::new();
    if let Ok(Some((_, batch))) = decode_frame(&frame, &Limits::DEFAULT, inflate) {
        for (msg, _) in batch.flatten() {
            feedback.extend(session.borrow_mut().on_native(msg));
        }
    }
    shard.borrow_mut().output_done(frame);
    for f in feedback {
        shard.borrow_mut().on_input(id, &f);
        session.borrow_mut().pool.put(f);
    }
}

/// Writes every text the session has, in order, then flushes once: one send for all of them
/// (tungstenite writes out earlier ones itself past its write buffer's size).
async fn send_texts<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &Ws<S>,
    session: &RefCell<Session>,
) -> Result<(), ()> {
    loop {
        poll_fn(|cx| Sink::<WsMessage>::poll_ready(Pin::new(&mut *ws.borrow_mut()), cx))
            .await
            .map_err(drop)?;
        let Some(text) = session.borrow_mut().next_text() else { break };
        Sink::<WsMessage>::start_send(Pin::new(&mut *ws.borrow_mut()), WsMessage::Text(text))
            .map_err(drop)?;
    }
    poll_fn(|cx| Sink::<WsMessage>::poll_flush(Pin::new(&mut *ws.borrow_mut()), cx))
        .await
        .map_err(drop)
}
