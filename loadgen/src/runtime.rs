//! Thread-per-core: one monoio runtime per thread, io_uring where the
//! kernel (and seccomp) allow it and the legacy epoll driver elsewhere, as
//! in the appliance (src/server.rs). Nothing is shared between threads on
//! the hot path; each thread reports once at the end.

use std::{future::Future, net::SocketAddr, sync::Arc};

/// io_uring submission queue entries per thread.
const URING_ENTRIES: u32 = 1024;
/// Listen backlog of the mock backends.
const LISTEN_BACKLOG: i32 = 4096;

/// Which driver the threads use; decided once per process.
pub fn uring_available() -> bool {
    // SLUICE_LOADGEN_IO_DRIVER=legacy forces epoll, to compare drivers.
    if std::env::var("SLUICE_LOADGEN_IO_DRIVER").as_deref() == Ok("legacy") {
        return false;
    }
    monoio::utils::detect_uring()
}

pub fn driver_name(uring: bool) -> &'static str {
    if uring {
        "io_uring"
    } else {
        "epoll"
    }
}

/// Runs `future` to completion on a fresh runtime on this thread.
pub fn block_on<F: Future>(uring: bool, future: F) -> std::io::Result<F::Output> {
    if uring {
        let mut runtime = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()?;
        Ok(runtime.block_on(future))
    } else {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()?;
        Ok(runtime.block_on(future))
    }
}

/// Starts `threads` threads, each running `make(index)` on its own runtime
/// (pinned to `cpus[index]` when CPUs are given), and returns their results
/// in thread order.
pub fn run_on_threads<T, F, Fut>(
    threads: usize,
    cpus: &[usize],
    name: &str,
    make: F,
) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
{
    let uring = uring_available();
    let make = Arc::new(make);
    let mut handles = Vec::with_capacity(threads);
    for index in 0..threads {
        let make = make.clone();
        let cpu = cpus.get(index).copied();
        let handle = std::thread::Builder::new()
            .name(format!("{name}-{index}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin_current_thread(cpu)?;
                }
                block_on(uring, make(index)).map_err(|e| format!("thread {index}: runtime: {e}"))
            })
            .map_err(|e| format!("cannot start thread {index}: {e}"))?;
        handles.push(handle);
    }
    let mut results = Vec::with_capacity(threads);
    for handle in handles {
        match handle.join() {
            Ok(Ok(result)) => results.push(result),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a load thread panicked".to_string()),
        }
    }
    Ok(results)
}

fn pin_current_thread(cpu: usize) -> Result<(), String> {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    let core = ids
        .into_iter()
        .find(|c| c.id == cpu)
        .ok_or_else(|| format!("--pin: CPU {cpu} is not available to this process"))?;
    if core_affinity::set_for_current(core) {
        Ok(())
    } else {
        Err(format!("--pin: cannot pin to CPU {cpu}"))
    }
}

/// One SO_REUSEPORT listener per thread on the same address; port 0 is
/// resolved once so every thread shares the port.
pub fn bind_listeners(
    address: SocketAddr,
    threads: usize,
) -> std::io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let first = bind_one(address)?;
    let local = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind_one(local)?);
    }
    Ok((local, listeners))
}

fn bind_one(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    sluice::server::bind_reuse_port(address, LISTEN_BACKLOG)
}
