//! The list sink's usual way to apply a batch: one `MULTI`/`EXEC` holding an `LPUSH` per
//! list with the records as they are, then `list_check.lua`, which keeps them and moves
//! the shipped position only where `ship.lua` would have applied the batch, and takes
//! them back off otherwise.
//!
//! Why not `ship.lua` alone: inside a script each record becomes a Lua string and then a
//! Redis string again, which costs Redis about twice what a bare `LPUSH` does per record
//! (`bench/catchup/script_cost.py`), and Redis's work is most of what delivery costs a
//! hit.
//!
//! Why this is still all or nothing: nothing runs inside `EXEC` between the pushes and
//! the check, so the newest entries of each list are the batch's. Redis refuses a
//! transaction whole (`EXECABORT`) when a command was refused while queued, or when
//! `EXEC` would write over `maxmemory`, on a read-only replica or after a failed save.
//! At run time the one push that can fail is an `LPUSH` on a key of another type
//! (`WRONGTYPE`): the check sees that type, takes the other lists' pushes back, and
//! answers "refused"; the batch then goes through `ship.lua`, which holds it or
//! dead-letters that key's records, and says which key. The check is sent whole (`EVAL`,
//! not `EVALSHA`): a script cache flushed between two batches must not leave a
//! transaction's pushes without their check.

use std::sync::OnceLock;

use redis::aio::MultiplexedConnection;
use redis::Value;

use super::redis_list::classify;
use super::script::call::{text, ShipCall};
use super::sink::{Shipped, SinkError};

/// What the transaction did.
pub enum Pushed {
    /// As `ship.lua` would answer: applied, or Redis holds a position at or past the
    /// batch's start.
    Done(Shipped),
    /// A key holds another type: nothing applied, and `ship.lua` has to decide.
    Refused,
}

/// The check script without its comments: Redis hashes the whole text on every `EVAL`.
fn check_script() -> &'static str {
    static CHECK: OnceLock<String> = OnceLock::new();
    CHECK.get_or_init(|| {
        include_str!("list_check.lua")
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

pub async fn push(
    conn: &mut MultiplexedConnection,
    position_key: &str,
    ship: &ShipCall<'_>,
) -> Result<Pushed, SinkError> {
    let lists = ship.groups().count();
    let (start, end) = ship.span();
    let mut check = redis::cmd("EVAL");
    check.arg(check_script()).arg(1 + lists).arg(position_key);
    let mut counts = Vec::with_capacity(lists);
    // MULTI and EXEC by hand, not `atomic()`: every answer comes back as it is, so an
    // `EXECABORT` (nothing applied) is told apart from a broken connection.
    let mut pipe = redis::pipe();
    pipe.ignore_errors().cmd("MULTI");
    for (key, records) in ship.groups() {
        counts.push(records.len());
        check.arg(key);
        let push = pipe.cmd("LPUSH").arg(key);
        for record in records {
            push.arg(record);
        }
    }
    check.arg(start).arg(end).arg(counts);
    pipe.add_command(check).cmd("EXEC");
    let mut answers: Vec<Value> = pipe.query_async(conn).await.map_err(classify)?;
    let unreadable = |what: &Value| {
        SinkError::Broken(format!("unexpected answer to the batch's EXEC: {what:?}"))
    };
    match answers.pop() {
        // Refused while queued, or EXEC refused whole: nothing applied. The reason is
        // the first command refused while queued, if one was.
        Some(Value::ServerError(e)) => {
            let queued = answers.iter().find_map(|a| match a {
                Value::ServerError(why) => Some(why),
                _ => None,
            });
            Err(SinkError::Refused(queued.unwrap_or(&e).to_string()))
        }
        Some(Value::Array(results)) if results.len() == lists + 1 => {
            let Some(Value::Array(answer)) = results.last() else {
                return Err(unreadable(&Value::Array(results)));
            };
            match text(answer.first()).as_deref() {
                Some("refused") => Ok(Pushed::Refused),
                // The check moved the position, so every push must have gone through. One
                // failing anyway (only an ACL change between queueing and EXEC can do
                // that) is no success: said, and the position read back.
                Some("ok") if results.iter().any(|r| matches!(r, Value::ServerError(_))) => {
                    Err(unreadable(&Value::Array(results)))
                }
                _ => ship.answer(answer).map(Pushed::Done),
            }
        }
        other => Err(unreadable(&other.unwrap_or(Value::Nil))),
    }
}
