//! Part two of `tether demo`: a real KCP session over loopback, echoing 64 MiB.
use std::time::Instant;

use tether_runtime_tokio::{Config, KcpListener, KcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BYTES: usize = 64 << 20;

/// Runs the loopback echo; returns the exit code.
pub fn run() -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether demo: cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(echo()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tether demo: {e}");
            1
        }
    }
}

async fn echo() -> std::io::Result<()> {
    let cfg = Config::default()
        .crypt("aes", "tether demo")
        .fec(10, 3)
        .mode("fast3")
        .windows(1024, 1024);
    let listener = KcpListener::bind("127.0.0.1:0", cfg.clone()).await?;
    let addr = listener.local_addr();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    });
    let stream = KcpStream::connect(addr, cfg).await?;
    let start = Instant::now();
    let data: Vec<u8> = (0..BYTES as u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (mut r, mut w) = tokio::io::split(stream);
    let d2 = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&d2).await?;
        w.flush().await
    });
    let mut got = vec![0u8; BYTES];
    r.read_exact(&mut got).await?;
    writer.await.map_err(std::io::Error::other)??;
    let secs = start.elapsed().as_secs_f64();
    let ok = got == data;
    println!(
        "  {} MiB each way in {secs:.2} s: {:.1} MiB/s per direction, echo {}",
        BYTES >> 20,
        (BYTES >> 20) as f64 / secs,
        if ok { "verified" } else { "CORRUPTED" }
    );
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::other("echoed bytes differ"))
    }
}
