//! Probe: 16 concurrent writers of 16 KiB blobs into a local directory, three ways in turn:
//! tenure's blob store's atomic `put_new` (object_store: staging file, hard link, staging name
//! removed), its `put_new_in_place` (what a job graph's payload uses) and plain create-new file
//! writes (the benchmark floor's)
//! (`cargo run --release -p tenure-bench --example blob_probe`).

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tenure_core::blob::BlobStore;

/// One way to write the blob with the given name.
type Write =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

/// 16 writers of 50 blobs each; the time until all are written.
async fn run(round: usize, write: &Write) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let write = write.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    write(format!("b{round}-{w}-{i}")).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(t.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = Bytes::from(vec![7u8; 16 * 1024]);
    let atomic = BlobStore::open(&dir.path().display().to_string(), "atomic")?;
    let in_place = BlobStore::open(&dir.path().display().to_string(), "in-place")?;
    let raw: PathBuf = dir.path().join("raw");
    std::fs::create_dir_all(&raw)?;
    let ways: [(&str, Write); 3] = [
        ("put_new", {
            let data = data.clone();
            Arc::new(move |name| {
                let (blobs, data) = (atomic.clone(), data.clone());
                Box::pin(async move { Ok(blobs.put_new(&name, data).await?) })
            })
        }),
        ("put_new_in_place", {
            let data = data.clone();
            Arc::new(move |name| {
                let (blobs, data) = (in_place.clone(), data.clone());
                Box::pin(async move { Ok(blobs.put_new_in_place(&name, data).await?) })
            })
        }),
        ("create-new file", {
            Arc::new(move |name| {
                let (path, data) = (raw.join(name), data.clone());
                Box::pin(async move {
                    tokio::task::spawn_blocking(move || {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(path)?
                            .write_all(&data)
                    })
                    .await??;
                    Ok(())
                })
            })
        }),
    ];
    for round in 0..3 {
        let mut line = format!("round {round}, 800 blobs:");
        for (label, write) in &ways {
            let took = run(round, write).await?;
            line += &format!(" {label} {took:.2?};");
        }
        println!("{line}");
    }
    Ok(())
}
