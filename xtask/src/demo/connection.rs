//! A TCP connection kept open and carrying traffic (a clinic's session with a service), whose
//! bytes are counted as they arrive, so the demo can show the moment a revocation cuts it.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{JoinHandle, sleep},
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::soak::traffic::{join, spawn_in};

/// An open connection: a reader in the service namespace, a writer in the client namespace.
pub(crate) struct Connection {
    received: Arc<AtomicU64>,
    last_byte: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<()>>>,
}

impl Connection {
    /// Connects from `client_ns` to `addr` (listened on in `service_ns`) and sends 1 KiB every
    /// 20 ms until closed.
    pub(crate) fn open(client_ns: &str, service_ns: &str, addr: SocketAddr) -> Result<Self> {
        let listener = join(spawn_in(service_ns, "demo-listen", move || {
            Ok(TcpListener::bind(addr)?)
        })?)?;
        let received = Arc::new(AtomicU64::new(0));
        let last_byte = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, l, s) = (received.clone(), last_byte.clone(), stop.clone());
        listener.set_nonblocking(true)?;
        let reader = std::thread::spawn(move || -> Result<()> {
            // Polled, so that a connection that never comes cannot hold `close` forever.
            let mut conn = loop {
                match listener.accept() {
                    Ok((conn, _)) => break conn,
                    Err(_) if s.load(Ordering::SeqCst) => return Ok(()),
                    Err(_) => sleep(Duration::from_millis(10)),
                }
            };
            conn.set_nonblocking(false)?;
            conn.set_read_timeout(Some(Duration::from_millis(100)))?;
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::SeqCst) {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        r.fetch_add(n as u64, Ordering::SeqCst);
                        if let Ok(mut last) = l.lock() {
                            *last = Some(Instant::now());
                        }
                    }
                    Err(_) => {}
                }
            }
            Ok(())
        });
        let s = stop.clone();
        let writer = spawn_in(client_ns, "demo-write", move || {
            let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            conn.set_write_timeout(Some(Duration::from_millis(200)))?;
            let chunk = [0x5au8; 1024];
            while !s.load(Ordering::SeqCst) {
                // Once the filter drops the flow the send buffer fills and writes time out;
                // the writer keeps trying, as an application would.
                let _ = conn.write_all(&chunk);
                sleep(Duration::from_millis(20));
            }
            Ok(())
        })?;
        Ok(Self {
            received,
            last_byte,
            stop,
            threads: vec![reader, writer],
        })
    }

    /// Bytes the service has read so far.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// When the service last read a byte.
    pub(crate) fn last_byte(&self) -> Option<Instant> {
        self.last_byte.lock().ok().and_then(|l| *l)
    }

    /// Stops both ends.
    pub(crate) fn close(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}
