//! Probe: 16 concurrent 16 KiB blob writes through tenure's blob store (object_store, local
//! directory) next to plain create-new file writes
//! (`cargo run --release -p tenure-bench --example blob_probe`).

use std::io::Write as _;
use std::time::Instant;

use bytes::Bytes;
use tenure_core::blob::BlobStore;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let blobs = BlobStore::open(&dir.path().display().to_string(), "probe")?;
    let raw = dir.path().join("raw");
    std::fs::create_dir_all(&raw)?;
    let data = Bytes::from(vec![7u8; 16 * 1024]);
    for round in 0..3 {
        let t = Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|w| {
                let (blobs, data) = (blobs.clone(), data.clone());
                tokio::spawn(async move {
                    for i in 0..50 {
                        blobs
                            .put_new(&format!("b{round}-{w}-{i}"), data.clone())
                            .await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        let store = t.elapsed();
        let t = Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|w| {
                let (raw, data) = (raw.clone(), data.clone());
                tokio::spawn(async move {
                    for i in 0..50 {
                        let path = raw.join(format!("b{round}-{w}-{i}"));
                        let data = data.clone();
                        tokio::task::spawn_blocking(move || {
                            std::fs::OpenOptions::new()
                                .write(true)
                                .create_new(true)
                                .open(path)?
                                .write_all(&data)
                        })
                        .await??;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        println!(
            "800 blobs: blob store {:?}, plain create-new writes {:?}",
            store,
            t.elapsed()
        );
    }
    Ok(())
}
