//! Fenced checkpoint add throughput on etcd: the completed checkpoint store's add (retain 3)
//! against the same etcd transaction made directly; one after the other and from 16 concurrent
//! workers on one session.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use tenure::services::ElectionMode;
use tenure_core::ids::JobId;
use tenure_core::kv::FencingToken;
use tenure_core::layout::Layout;
use tenure_core::store::{Payload, encode_checkpoint};

use crate::bench::{Ctx, cluster_id};
use crate::results::{Group, ScenarioResult, who};
use crate::scenarios::store::{Op, measure_pair, nth_checkpoint, subsumed};

use super::metrics::FewestRequests;
use super::server::{Etcd, etcd_key};

/// Bytes of checkpoint metadata (stored inline in the value, as small metadata is).
const CHECKPOINT_METADATA: usize = 256;
/// Checkpoints retained.
const RETAIN: usize = 3;

fn tenure_op(stores: &tenure::ha_stores::HaStores, metadata: &Bytes) -> anyhow::Result<Op> {
    let job = JobId::new_random();
    let store = stores
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, RETAIN)?;
    let metadata = metadata.clone();
    Ok(Arc::new(move |i| {
        let (store, metadata) = (store.clone(), metadata.clone());
        Box::pin(async move {
            store.add(nth_checkpoint(job, i, metadata)).await?;
            Ok(())
        })
    }))
}

/// The transaction tenure's add sends, made directly: the fence (the leader key's create
/// revision), the new key absent ⇒ put it; past `RETAIN`, the oldest exists at its revision
/// and has no keys below it ⇒ delete it; on failure, read back what each compare looked at.
fn floor_txn(
    fence: &FencingToken,
    key: &str,
    value: Vec<u8>,
    oldest: Option<&(String, i64)>,
) -> Txn {
    let mut compares = vec![
        Compare::create_revision(fence.lock(), CompareOp::Equal, fence.epoch()),
        Compare::create_revision(key, CompareOp::Equal, 0),
    ];
    let mut reads = vec![TxnOp::get(fence.lock(), None), TxnOp::get(key, None)];
    let mut writes = vec![TxnOp::put(key, value, None)];
    if let Some((old, version)) = oldest {
        let start = format!("{old}/").into_bytes();
        let end = tenure_etcd::keys::range_end(&start);
        compares.push(Compare::create_revision(
            old.as_str(),
            CompareOp::Greater,
            0,
        ));
        compares.push(Compare::mod_revision(
            old.as_str(),
            CompareOp::Equal,
            *version,
        ));
        compares.push(
            Compare::create_revision(start.clone(), CompareOp::Equal, 0).with_range(end.clone()),
        );
        reads.push(TxnOp::get(old.as_str(), None));
        reads.push(TxnOp::get(old.as_str(), None));
        reads.push(TxnOp::get(
            start,
            Some(
                GetOptions::new()
                    .with_range(end)
                    .with_keys_only()
                    .with_limit(1),
            ),
        ));
        writes.push(TxnOp::delete(old.as_str(), None));
    }
    Txn::new().when(compares).and_then(writes).or_else(reads)
}

fn floor_op(client: &Client, fence: &FencingToken, cid: &str, metadata: &Bytes) -> Op {
    let layout = Layout::default();
    let job = JobId::new_random();
    let retained = Arc::new(Mutex::new(VecDeque::<(String, i64)>::new()));
    let (client, fence, cid, metadata) = (
        client.clone(),
        fence.clone(),
        cid.to_owned(),
        metadata.clone(),
    );
    Arc::new(move |i| {
        let (mut client, fence, retained, cid) =
            (client.clone(), fence.clone(), retained.clone(), cid.clone());
        let cp = nth_checkpoint(job, i, metadata.clone());
        Box::pin(async move {
            let key = etcd_key(&cid, &layout.checkpoint(&job, cp.id));
            let value = Payload::Inline(encode_checkpoint(&cp)).encode();
            let oldest = subsumed(&retained, RETAIN);
            let resp = client
                .txn(floor_txn(&fence, &key, value.to_vec(), oldest.as_ref()))
                .await?;
            if !resp.succeeded() {
                anyhow::bail!("the floor's fenced add of {key} failed");
            }
            let revision = resp.header().map_or(0, |h| h.revision());
            let mut r = tenure_core::sync::lock(&retained);
            r.push_back((key, revision));
            if oldest.is_some() {
                r.pop_front();
            }
            Ok(())
        })
    })
}

/// The fewest requests of one operation of `op` in steady state: it runs `RETAIN + 3` times
/// on its own job (the oldest is deleted only once more than `RETAIN` are stored); the last
/// two are counted.
async fn requests_of(etcd: &Etcd, op: Op) -> anyhow::Result<FewestRequests> {
    let mut fewest = FewestRequests::default();
    for i in 0..RETAIN + 3 {
        if i <= RETAIN {
            op(i).await?;
        } else {
            let ((), count) = etcd.counted(op(i)).await?;
            fewest.add(count);
        }
    }
    Ok(fewest)
}

/// Measures fenced checkpoint adds.
pub async fn run(ctx: &Ctx, etcd: &Etcd, out: &mut ScenarioResult) -> anyhow::Result<()> {
    out.title = "E4. Fenced checkpoint add throughput (etcd)".into();
    out.method = format!(
        "One session; the writer leads the process-wide election and every write is fenced by \
        its term: one etcd transaction whose first compare is the leader key's create \
        revision. Sequential: one add after the other; concurrent: {c} workers on the one \
        session, each on its own job. Throughput = adds ÷ wall time of the series; tenure's \
        timed adds and the floor's alternate in four rounds, so both meet the machine in the \
        same state. **tenure**: \
        `CompletedCheckpointStore::add` of the term's stores (retain {RETAIN}). **floor**: the \
        transaction tenure's add sends, made directly with etcd-client: compares (fence; new key \
        absent; past {RETAIN} retained: the oldest exists at its revision and has no keys \
        below it), puts the new checkpoint, deletes the oldest, and reads back what the \
        compares looked at if one fails (retained keys and revisions kept in memory, as \
        tenure's store does). Checkpoint metadata {CHECKPOINT_METADATA} B (inline). No peer: \
        etcdctl has no HA stores. *requests*: gRPC messages the server received during one \
        add in steady state (past {RETAIN} retained), keep-alives left out, over two untimed \
        adds (fewest seen).",
        c = ctx.sizes.concurrency,
    );
    let cid = cluster_id("etcd-store");
    let (services, _backend) = etcd
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let mut election = services.dispatcher_leader_election().await?;
    let term = election.wait_for_leadership().await?;
    let stores = services.leader_stores(&term);
    let fence = term.fencing_token.clone();
    let client = etcd.raw().await?;
    let metadata = Bytes::from(vec![7u8; CHECKPOINT_METADATA]);
    let warmup = ctx.sizes.warmup;
    let conc = ctx.sizes.concurrency;
    let seq_n = ctx.sizes.store_sequential;
    let per_worker = ctx.sizes.store_concurrent.div_ceil(conc);
    let tenure_what = "CompletedCheckpointStore::add";
    let floor_what = "txn(fence, absent ⇒ put [, oldest at its revision ⇒ delete])";

    ctx.progress.begin("etcd store: checkpoint add sequential");
    let mut seq = Group::new(
        "etcd-checkpoint-seq",
        "Fenced checkpoint add on etcd (retain 3), sequential",
        "µs",
    )
    .with_cdf();
    let t_requests = requests_of(etcd, tenure_op(&stores, &metadata)?).await?;
    let f_requests = requests_of(etcd, floor_op(&client, &fence, &cid, &metadata)).await?;
    let (t, f) = measure_pair(
        vec![tenure_op(&stores, &metadata)?],
        vec![floor_op(&client, &fence, &cid, &metadata)],
        warmup,
        seq_n,
    )
    .await?;
    seq.rows
        .push(t_requests.on(t.row(who::TENURE, tenure_what)));
    seq.rows.push(f_requests.on(f.row(who::FLOOR, floor_what)));
    out.groups.push(seq);
    ctx.progress.end();

    ctx.progress
        .begin(&format!("etcd store: checkpoint add, {conc} workers"));
    let mut par = Group::new(
        &format!("etcd-checkpoint-c{conc}"),
        format!("Fenced checkpoint add on etcd (retain 3), {conc} concurrent workers"),
        "µs",
    );
    let ops = (0..conc)
        .map(|_| tenure_op(&stores, &metadata))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let floor_ops = (0..conc)
        .map(|_| floor_op(&client, &fence, &cid, &metadata))
        .collect();
    let (t, f) = measure_pair(ops, floor_ops, warmup.min(3), per_worker).await?;
    par.rows
        .push(t_requests.on(t.row(who::TENURE, tenure_what)));
    par.rows.push(f_requests.on(f.row(who::FLOOR, floor_what)));
    out.groups.push(par);
    ctx.progress.end();

    election.stop().await?;
    services.close().await?;
    Ok(())
}
