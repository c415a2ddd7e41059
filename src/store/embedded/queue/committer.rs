//! The committer thread: the writes that answer a request (accepts, and attempts' outcomes)
//! queue up while a commit runs, and go to disk together in the next one (group commit).

use super::file::REOPEN_EVERY;
use super::tables::*;
use super::*;

/// Messages to store together (one body), with their idempotency key.
pub(super) struct NewMessages {
    pub(super) records: Vec<Record>,
    /// Each record as stored (JSON, its secrets sealed), made by the caller: the committer
    /// thread, which every accept waits for, only writes.
    pub(super) encoded: Vec<Vec<u8>>,
    /// Each record's own sealed body (`store.encryption`); in clear they share `body`.
    pub(super) sealed_bodies: Option<Vec<Vec<u8>>>,
    pub(super) body: Bytes,
    pub(super) idempotency: Option<Idempotency>,
    /// When they were accepted (unix ms): idempotency windows are measured from it.
    pub(super) accepted_ms: u64,
}

/// An attempt on a claimed message (identified by its lease's end) and what follows it.
pub(super) struct Outcome {
    pub(super) id: String,
    pub(super) lease_end: u64,
    pub(super) attempt: Attempt,
    pub(super) next: Next,
}

/// A write waiting for the committer, and where its answer goes: each waits for the
/// fsync of the commit that holds it.
pub(super) enum Write {
    Accept(NewMessages, oneshot::Sender<Result<Enqueued, StoreError>>),
    Finish(Outcome, oneshot::Sender<Result<bool, StoreError>>),
}

/// Most writes in one commit: bounds a commit's size and its wait.
pub(super) const MAX_BATCH: usize = 256;

/// Takes the writes that queued up while the last commit ran, and stores them in one
/// commit; each waiting request gets its own answer once that commit is on disk.
pub(super) fn commit_loop(redb: &Weak<Redb>, health: &StoreHealth, queued: &mpsc::Receiver<Write>) {
    loop {
        let first = match queued.recv_timeout(REOPEN_EVERY) {
            Ok(write) => write,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Idle while broken: find out when the file takes writes again. (The health
                // is asked first: holding the file even briefly could make a reopen fail.)
                if health.is_broken("queue") {
                    if let Some(redb) = redb.upgrade() {
                        redb.recover();
                    }
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let Some(redb) = redb.upgrade() else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let answers = redb.commit_batch(&batch);
        match &answers {
            Err(e) => {
                redb.health.failed("queue", e);
                redb.recover();
            }
            // Recovery is the probe's to say: a small commit passing on a full disk says
            // nothing of the next accept.
            Ok(_) if redb.health.is_broken("queue") => redb.recover(),
            Ok(_) => {}
        }
        // The file is let go before anyone hears back: a caller that drops the queue on its
        // answer can open the file again at once.
        drop(redb);
        reply(batch, answers);
    }
}

/// Sends each write its answer, or the commit's error.
pub(super) fn reply(batch: Vec<Write>, answers: Result<Vec<Answer>, StoreError>) {
    match answers {
        Ok(answers) => {
            for (write, answer) in batch.into_iter().zip(answers) {
                match (write, answer) {
                    (Write::Accept(_, reply), Answer::Accept(a)) => drop(reply.send(Ok(a))),
                    (Write::Finish(_, reply), Answer::Finish(a)) => drop(reply.send(a)),
                    _ => unreachable!("answers are made in the order of the writes"),
                }
            }
        }
        Err(e) => {
            for write in batch {
                match write {
                    Write::Accept(_, reply) => drop(reply.send(Err(e.clone()))),
                    Write::Finish(_, reply) => drop(reply.send(Err(e.clone()))),
                }
            }
        }
    }
}

impl Redb {
    /// Applies a batch of writes in one durable commit, in order: each one's answer. A
    /// write that fails on its own (a corrupt record) gets its error; a failure of the
    /// transaction fails them all.
    pub(super) fn commit_batch(&self, batch: &[Write]) -> Result<Vec<Answer>, StoreError> {
        let txn = self.db()?.begin_write()?;
        let mut answers = Vec::with_capacity(batch.len());
        {
            let mut keys = txn.open_table(IDEMPOTENCY)?;
            let mut expiry = txn.open_table(IDEMPOTENCY_EXPIRY)?;
            let mut tables = Tables::open(&txn, &self.sealer)?;
            for write in batch.iter() {
                let answer = match write {
                    Write::Accept(message, _) => {
                        Answer::Accept(accept(&mut tables, &mut keys, &mut expiry, message)?)
                    }
                    Write::Finish(outcome, _) => match finish(&mut tables, outcome) {
                        Err(e @ (StoreError::Corrupt(_) | StoreError::Sealed(_))) => {
                            Answer::Finish(Err(e))
                        }
                        other => Answer::Finish(Ok(other?)),
                    },
                };
                answers.push(answer);
            }
        }
        txn.commit()?;
        Ok(answers)
    }
}

/// What a write in a batch answers.
pub(super) enum Answer {
    Accept(Enqueued),
    Finish(Result<bool, StoreError>),
}

/// Stores new messages, unless their idempotency key is held by an earlier one (in this
/// batch or before, within its window): then they are a duplicate.
pub(super) fn accept(
    tables: &mut Tables,
    keys: &mut redb::Table<&str, (u64, &str)>,
    expiry: &mut redb::Table<(u64, &str), ()>,
    messages: &NewMessages,
) -> Result<Enqueued, StoreError> {
    let NewMessages {
        records,
        encoded,
        sealed_bodies,
        body,
        idempotency,
        accepted_ms,
    } = messages;
    if let Some(Idempotency {
        key,
        expires_ms,
        receipt,
    }) = idempotency
    {
        sweep_expired(keys, expiry, *accepted_ms)?;
        let earlier = keys
            .get(key.as_str())?
            .filter(|v| v.value().0 > *accepted_ms)
            .map(|v| v.value().1.to_string());
        if let Some(receipt) = earlier {
            return Ok(Enqueued::Duplicate(receipt));
        }
        keys.insert(key.as_str(), (*expires_ms, receipt.as_str()))?;
        expiry.insert((*expires_ms, key.as_str()), ())?;
    }
    for (i, record) in records.iter().enumerate() {
        let body = sealed_bodies
            .as_ref()
            .map_or(body.as_ref(), |b| b[i].as_slice());
        tables.bodies.insert(record.id.as_str(), body)?;
        tables.store_encoded(record, &encoded[i])?;
    }
    Ok(Enqueued::New)
}

/// Records an attempt on a claimed message, if the claim is still current.
pub(super) fn finish(tables: &mut Tables, outcome: &Outcome) -> Result<bool, StoreError> {
    let Some(mut record) = tables.read(&outcome.id)? else {
        return Ok(false);
    };
    if record.state != State::Pending || record.due_ms != outcome.lease_end {
        return Ok(false); // not this claim's any more
    }
    if outcome.next == Next::Delivered {
        tables.delete(&record)?;
        return Ok(true);
    }
    tables.unindex(&record)?;
    record.attempts.push(outcome.attempt.clone());
    record.round_attempts += 1;
    match outcome.next {
        Next::RetryAt(due_ms) => record.due_ms = due_ms,
        _ => record.state = State::Dead,
    }
    tables.store(&record)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created_ms: u64) -> Record {
        Record {
            timestamp: 1_700_000_000,
            ..Record::json(id.into(), "acme", created_ms)
        }
    }

    #[test]
    fn expired_idempotency_keys_are_swept_as_messages_come() {
        let dir = tempfile::tempdir().unwrap();
        let redb = Redb::open(dir.path(), Arc::default(), Arc::new(Sealer::new(None))).unwrap();
        // Each key's window ends before the next message arrives.
        for i in 0..200u64 {
            let key = format!("acme:k{i}");
            let records = vec![record(&format!("m{i}"), i * 10)];
            let message = NewMessages {
                encoded: records.iter().map(|r| encode(&redb.sealer, r)).collect(),
                sealed_bodies: None,
                records,
                body: Bytes::from_static(b"x"),
                idempotency: Some(Idempotency {
                    key,
                    expires_ms: i * 10 + 5,
                    receipt: format!("m{i}"),
                }),
                accepted_ms: i * 10,
            };
            let (reply_to, mut answer) = oneshot::channel();
            let batch = vec![Write::Accept(message, reply_to)];
            let answers = redb.commit_batch(&batch);
            reply(batch, answers);
            assert_eq!(answer.try_recv().unwrap().unwrap(), Enqueued::New);
        }
        let txn = redb.db().unwrap().begin_read().unwrap();
        let keys = txn.open_table(IDEMPOTENCY).unwrap().len().unwrap();
        let index = txn.open_table(IDEMPOTENCY_EXPIRY).unwrap().len().unwrap();
        assert!(
            keys <= 1 && index <= 1,
            "{keys} keys and {index} index entries left"
        );
    }
}
