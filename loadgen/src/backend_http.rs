//! `sluice-loadgen backend http`: an HTTP/1.1 keep-alive responder. Every
//! well-formed request gets `200 OK` with a body of `--body-bytes`; a bad
//! one gets its status (400, 413, 431, 501, 505) with a text body, and the
//! connection is closed.

use std::{rc::Rc, sync::Arc};

use bytes::{Buf, Bytes, BytesMut};
use monoio::{
    io::{AsyncWriteRent, AsyncWriteRentExt},
    net::{TcpListener, TcpStream},
};

use crate::{
    backend_pg::read_more,
    cli::HttpBackendSettings,
    http_wire::{HttpError, RequestReader},
    runtime,
};

/// Bodies up to this size are copied into the batched output; larger ones
/// are written from the shared buffer without copying.
const INLINE_BODY_BYTES_MAX: usize = 16 * 1024;
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The fixed responses of one backend.
pub struct Responses {
    head: Bytes,
    head_close: Bytes,
    body: Bytes,
}

impl Responses {
    pub fn new(body_bytes: usize) -> Responses {
        let head = |extra: &str| {
            Bytes::from(format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {body_bytes}\r\nContent-Type: application/octet-stream\r\n{extra}\r\n"
            ))
        };
        Responses {
            head: head(""),
            head_close: head("Connection: close\r\n"),
            body: Bytes::from(vec![b'x'; body_bytes]),
        }
    }
}

/// The answer to a bad request.
pub fn error_response(error: &HttpError) -> Bytes {
    let (status, reason) = error.status();
    let body = format!("{error}\n");
    Bytes::from(format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// Serves until the process is killed.
pub fn serve(settings: HttpBackendSettings) -> Result<(), String> {
    let (address, listeners) = runtime::bind_listeners(settings.listen, settings.threads)
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    println!("sluice-loadgen backend http listening on {address}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let responses = Arc::new(Responses::new(settings.body_bytes));
    let listeners = Arc::new(std::sync::Mutex::new(
        listeners.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let settings = Arc::new(settings);
    let cpus = settings.cpus.clone();
    runtime::run_on_threads(settings.threads, &cpus, "backend-http", move |thread| {
        let listener = listeners.lock().ok().and_then(|mut l| l[thread].take());
        let responses = responses.clone();
        let settings = settings.clone();
        async move {
            let Some(listener) = listener else { return };
            let listener = match TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(e) => {
                    eprintln!("sluice-loadgen backend http: thread {thread}: {e}");
                    return;
                }
            };
            let settings = Rc::new((*settings).clone());
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        monoio::spawn(serve_connection(
                            stream,
                            responses.clone(),
                            settings.clone(),
                        ));
                    }
                    Err(e) => {
                        eprintln!("sluice-loadgen backend http: accept: {e}");
                        monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        }
    })?;
    Ok(())
}

async fn serve_connection(
    mut stream: TcpStream,
    responses: Arc<Responses>,
    settings: Rc<HttpBackendSettings>,
) {
    let mut reader = RequestReader::new(
        settings.request_head_bytes_max,
        settings.request_body_bytes_max,
    );
    let mut input = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut out = BytesMut::with_capacity(READ_BUFFER_BYTES);
    loop {
        let mut close = false;
        let mut large: Vec<Bytes> = Vec::new();
        loop {
            match reader.next(&input) {
                Ok((used, request)) => {
                    input.advance(used);
                    if let Some(request) = request {
                        let head = if request.keep_alive {
                            &responses.head
                        } else {
                            &responses.head_close
                        };
                        let with_body = !request.head_only;
                        if !with_body || responses.body.len() <= INLINE_BODY_BYTES_MAX {
                            out.extend_from_slice(head);
                            if with_body {
                                out.extend_from_slice(&responses.body);
                            }
                        } else {
                            out.extend_from_slice(head);
                            large.push(out.split().freeze());
                            large.push(responses.body.clone());
                        }
                        if !request.keep_alive {
                            close = true;
                            break;
                        }
                    } else if used == 0 {
                        break;
                    }
                }
                Err(e) => {
                    out.extend_from_slice(&error_response(&e));
                    close = true;
                    break;
                }
            }
        }
        // `large` holds everything before the last large body, in order;
        // `out` what came after it.
        if !out.is_empty() {
            large.push(out.split().freeze());
        }
        for piece in large {
            let (result, _) = stream.write_all(piece).await;
            if result.is_err() {
                return;
            }
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
        if !read_more(&mut stream, &mut input).await {
            return;
        }
    }
}
